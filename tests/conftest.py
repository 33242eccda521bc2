"""Shared fixtures: one local[1] Spark session with Delta for the whole run; and two guards.

* A test that starts Spark (itself or through a fixture such as ``spark``/``tiny_world``) must carry
  the ``spark`` marker, so ``make test-fast`` never starts a JVM: checked before set-up from the
  fixture closure, and after the test for a session started inside it.
* Tests never write into the checkout: every file under the repository is listed (path, size,
  mtime) when the run starts and again when it ends; any file added, changed or removed fails the
  run (bytecode and pytest's cache excepted).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from tests.support.cluster import standalone_cluster  # noqa: F401  (fixtures)
from tests.support.mlflow_server import mlflow_server  # noqa: F401  (fixtures)
from tests.support.redis_server import redis_url  # noqa: F401  (fixtures)
from tests.support.repo import REPO
from tests.support.s3 import s3_server  # noqa: F401  (fixtures)

SPARK_FIXTURES = frozenset({"spark", "tiny_world"})
_SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".import_linter_cache"})  # bytecode, tool caches


def _checkout_files() -> dict[str, tuple[int, int]]:
    """Every file under the repository (symlinks not followed) -> (size, mtime_ns)."""
    files = {}
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            files[os.path.relpath(path, REPO)] = (st.st_size, st.st_mtime_ns)
    return files


def pytest_configure(config):
    config._pinrec_checkout = _checkout_files()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # every JVM a test starts binds to loopback
    try:  # hypothesis keeps examples and source constants in .hypothesis/ of the working directory
        from hypothesis import settings
        from hypothesis.configuration import set_hypothesis_home_dir

        config._pinrec_hypothesis = tempfile.mkdtemp(prefix="pinrec-hypothesis-")
        set_hypothesis_home_dir(config._pinrec_hypothesis)
        settings.register_profile("pinrec", database=None)
        settings.load_profile("pinrec")
    except ImportError:
        pass


def pytest_runtest_setup(item):
    """Before any fixture starts: a test whose fixtures start Spark must be marked ``spark``."""
    used = SPARK_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used and item.get_closest_marker("spark") is None:
        pytest.fail(f"{item.nodeid} uses {sorted(used)} (Spark) but has no @pytest.mark.spark", pytrace=False)


def _spark_context():
    pyspark = sys.modules.get("pyspark")
    return None if pyspark is None else pyspark.SparkContext._active_spark_context


@pytest.fixture(autouse=True)
def _spark_needs_marker(request):
    """Fails a test without the ``spark`` marker that started a Spark session in its body."""
    before = _spark_context()
    yield
    if request.node.get_closest_marker("spark") is None and before is None and _spark_context() is not None:
        pytest.fail(f"{request.node.nodeid} started Spark but has no @pytest.mark.spark", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(getattr(session.config, "_pinrec_hypothesis", "") or "/nonexistent", ignore_errors=True)
    before = getattr(session.config, "_pinrec_checkout", None)
    if before is None or getattr(session.config.option, "collectonly", False):
        return
    after = _checkout_files()
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    added, removed = sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys())
    if changed or added or removed:
        lines = [f"  {what} {path}" for what, paths in (("added", added), ("changed", changed), ("removed", removed))
                 for path in paths[:20]]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "tests wrote into the checkout (they must work in tmp_path):\n" + "\n".join(lines)
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def spark():
    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.spark import get_spark

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # With the s3a jars (S3Options(): AWS until a test points s3a at the test server, see any_lake)
    session = get_spark(SparkConfig(master="local[1]", shuffle_partitions=1, jars_dir=str(REPO / "var" / "jars"),
                                    app_name="pinrec-tests"), s3=S3Options())
    yield session
    session.stop()


@pytest.fixture()
def lake(tmp_path):
    """A fresh landing zone + warehouse under tmp_path."""
    from pinrec.jobs.ingest.ingest import IngestPaths

    return IngestPaths(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def any_location(request, tmp_path):
    """A fresh, empty folder as a :class:`~pinrec.jobs.io.lake.Location`: under tmp_path, and
    under a fresh prefix of the SeaweedFS server (``s3a://``, with the server's keys)."""
    import uuid

    from pinrec.jobs.io.lake import Location
    from tests.support.s3 import BUCKET

    if request.param == "local":
        return Location(str(tmp_path / "here"))
    server = request.getfixturevalue("s3_server")
    return Location(f"s3a://{BUCKET}/t-{uuid.uuid4().hex[:12]}/here", server.options)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def any_lake(request, tmp_path):
    """:func:`lake` twice: on local disk, and on the SeaweedFS S3 server (landing a Location,
    warehouse an ``s3a://`` URI, both under a fresh prefix) with the ``spark`` session's s3a
    pointed at that server."""
    import uuid

    from pinrec.jobs.ingest.ingest import IngestPaths
    from pinrec.jobs.io.lake import Location
    from pinrec.jobs.io.spark import configure_s3a
    from tests.support.s3 import BUCKET

    if request.param == "local":
        return IngestPaths(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))
    server = request.getfixturevalue("s3_server")
    configure_s3a(request.getfixturevalue("spark"), server.options)
    root = f"s3a://{BUCKET}/lake-{uuid.uuid4().hex[:12]}"
    return IngestPaths(landing=Location(f"{root}/landing", server.options), warehouse=f"{root}/warehouse")


@pytest.fixture(scope="session")
def tiny_world(spark, tmp_path_factory):
    """A small synthetic world generated and ingested once per test run: (config, DemoResult).

    Negative sampling is off and faults/duplicates are on, so tests can compare with the
    generator's ground truth.
    """
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.demo import run_demo

    root = tmp_path_factory.mktemp("tiny_world")
    cfg = load_config(overrides={
        "storage": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse"),
                    "artifacts": str(root / "artifacts"), "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db"},
        "publish": {"store_uri": str(root / "serving")},
        "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
        "synthetic": {"users": 60, "pins": 300, "days": 3, "impressions_per_day": 3000,
                      "fault_rate": 0.01, "duplicate_rate": 0.01},
        "pinsage": {"epochs": 2, "progress": False, "hard_negatives_from_epoch": 1},
        "two_tower": {"epochs": 3, "temperatures": [0.1, 0.2], "progress": False, "device": "cpu"},
        "ranker_train": {"epochs": 4, "batch_size": 256, "progress": False, "device": "cpu"},
        "ranker_job": {"baselines": ["logreg"], "int8": False, "evaluation": "full"},
        "blessing": {"min_auc": 0.0},  # the tiny world's test day holds ~30 saves: AUC is noise
    })
    result = run_demo(cfg, echo=lambda line: None)
    # as the demo left it, before other tests write to it: what the step cache's rerun test starts from
    shutil.copytree(root, f"{root}-pristine")
    return cfg, result
