"""Shared fixtures: one local[1] Spark session with Delta for the whole run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def torchrun(*args: str, nproc: int = 2, timeout: int = 300, env: dict[str, str] | None = None) -> str:
    """Runs ``python -m torch.distributed.run --standalone --nproc_per_node=<nproc> <args>`` from the
    repository root, one thread per rank; fails with the tail of stderr unless it exits 0; returns stdout."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="session")
def spark():
    from jobs.config import SparkConfig
    from jobs.spark import get_spark

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = get_spark(SparkConfig(master="local[1]", shuffle_partitions=1, jars_dir=str(REPO / "var" / "jars"),
                                    app_name="pinrec-tests"))
    yield session
    session.stop()


@pytest.fixture()
def lake(tmp_path):
    """A fresh landing zone + warehouse under tmp_path."""
    from jobs.ingest import IngestPaths

    return IngestPaths(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))


@pytest.fixture(scope="session")
def tiny_world(spark, tmp_path_factory):
    """A small synthetic world generated and ingested once per test run: (config, DemoResult).

    Negative sampling is off and faults/duplicates are on, so tests can compare with the
    generator's ground truth.
    """
    from jobs.config import load_config
    from jobs.demo import run_demo

    root = tmp_path_factory.mktemp("tiny_world")
    cfg = load_config(overrides={
        "storage": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse"),
                    "artifacts": str(root / "artifacts"), "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db"},
        "publish": {"store_uri": str(root / "serving")},
        "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
        "synthetic": {"users": 60, "pins": 300, "days": 3, "impressions_per_day": 3000,
                      "fault_rate": 0.01, "duplicate_rate": 0.01},
        "pinsage": {"epochs": 2, "progress": False, "hard_negatives_from_epoch": 1},
        "ranker_train": {"epochs": 4, "batch_size": 256, "progress": False, "device": "cpu"},
        "ranker_job": {"baselines": ["logreg"], "int8": False},
        "blessing": {"min_auc": 0.0},  # the tiny world's test day holds ~30 saves: AUC is noise
    })
    return cfg, run_demo(cfg, echo=lambda line: None)
