"""The `pinrec` CLI: help mirrors the jobs, bad input fails with a clear message and exit code."""
from __future__ import annotations

import argparse
import subprocess
import sys
import uuid

import pytest

from pinrec.jobs.orchestration.cli import build_parser, main


@pytest.mark.parametrize("command, flags", [
    ("generate", ["--config", "--set", "--verbose"]),
    ("load-dataset", ["--kind", "--path"]),
    ("ingest", ["--date", "--start", "--end", "--tables"]),
    ("tables", ["--config"]),
    ("demo", ["--days-per-batch"]),
    ("recommend", ["--user", "--k", "--context", "--version", "--redis-url", "--no-redis"]),
    ("publish", ["bundle", "rollback", "prune"]),
    ("publish bundle", ["--force", "--fail-unblessed", "--index-dir", "--ranker-dir", "--cutoff"]),
    ("publish rollback", ["--to", "--force"]),
    ("publish prune", ["--keep-blessed", "--keep-unblessed", "--grace-s"]),
    ("feature-snapshot", ["--cutoff", "--out", "--redis-url", "--bundle-version"]),
    ("pinsage", ["--inference-edges", "torch.distributed.run", "pinrec.jobs.orchestration.cli pinsage"]),
    ("ranker", ["torch.distributed.run", "pinrec.jobs.orchestration.cli ranker"]),
    ("two-tower", ["--config", "--set"]),
    ("task", ["--date", "--result"]),
])
def test_every_subcommand_has_help(command, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out


def test_config_errors_exit_2_with_the_key(capsys):
    assert main(["generate", "--set", "synthetic.dayz=1"]) == 2
    assert "unknown key `synthetic.dayz`; did you mean `synthetic.days`?" in capsys.readouterr().err


def test_ingest_without_landed_data_exits_3(tmp_path, capsys):
    code = main(["ingest", "--set", f"storage.landing={tmp_path}", "--start", "2026-01-01", "--end", "2026-01-02"])
    assert code == 3
    assert "no impressions landed between 2026-01-01 and 2026-01-02" in capsys.readouterr().err


def test_dates_are_validated_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ingest", "--date", "01/02/2026"])
    assert "expected a date YYYY-MM-DD" in capsys.readouterr().err
    for command in (["graph"], ["cf"], ["feature-snapshot"], ["publish", "bundle"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--cutoff", "yesterday"])
        assert "argument --cutoff: expected an ISO 8601 time YYYY-MM-DD[THH:MM[:SS]], got 'yesterday'" \
            in capsys.readouterr().err


def test_generate_writes_the_landing_zone(tmp_path, capsys):
    code = main(["generate", "--set", f"storage.landing={tmp_path}", "--set", "synthetic.users=20",
                 "--set", "synthetic.pins=60", "--set", "synthetic.days=1", "--set", "synthetic.impressions_per_day=200"])
    assert code == 0
    assert (tmp_path / "impressions").is_dir()
    assert "impressions" in capsys.readouterr().out


def test_load_dataset_with_a_missing_folder_exits_2(tmp_path, capsys):
    code = main(["load-dataset", "--kind", "movielens-100k", "--path", str(tmp_path / "nope"),
                 "--set", f"storage.landing={tmp_path / 'landing'}"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_scale_multiplies_population_and_traffic():
    from pinrec.jobs.config import ConfigError, load_config
    from pinrec.jobs.orchestration.cli_jobs import scale_world

    cfg = scale_world(load_config(), 125)
    assert cfg.synthetic.impressions_per_day * cfg.synthetic.days == 10_000_000
    assert (cfg.synthetic.users, cfg.synthetic.pins, cfg.synthetic.days) == (125_000, 500_000, 4)
    with pytest.raises(ConfigError, match="positive"):
        scale_world(cfg, 0)


def test_scale_one_changes_nothing():
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.cli_jobs import scale_world

    cfg = load_config(overrides={"synthetic": {"new_users_per_day": 0, "users": 50}})
    assert scale_world(cfg, 1.0) == cfg


@pytest.mark.spark
def test_training_set_without_tables_exits_2(tmp_path, capsys):
    from tests.support.repo import REPO

    code = main(["training-set", "--date", "2026-01-05", "--set", f"storage.warehouse={tmp_path}",
                 "--set", "spark.master=local[1]", "--set", f"spark.jars_dir={REPO / 'var' / 'jars'}"])
    assert code == 2
    assert "run `pinrec ingest` and `pinrec features`" in capsys.readouterr().err


AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE")


@pytest.mark.integration
def test_publish_rollback_and_prune_reach_the_s3_endpoint_of_the_environment(s3_server, tmp_path, monkeypatch,
                                                                              capsys):
    """pyarrow ignores AWS_ENDPOINT_URL: the CLI must pass it on, or it talks to the public AWS host."""
    from pinrec.export.build.blessing import BlessingConfig
    from pinrec.export.build.publish import publish
    from pinrec.export.serving.store import Store, read_channel
    from tests.support.bundles import LINEAGE, T0, metrics, write_bundle_files
    from tests.support.s3 import BUCKET

    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    store = Store(uri, s3_server.options)
    for seed, version in ((0, "v1"), (1, "v2"), (2, "v3")):
        publish(store, "homefeed", write_bundle_files(tmp_path / version, seed=seed)[0],
                metrics(recall=0.30 + seed / 100), LINEAGE, version=version, now=T0,
                blessing=BlessingConfig(min_recall=0.1, min_auc=0.55))
    assert read_channel(store, "homefeed", "prod").version == "v3"
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    opts = s3_server.options
    monkeypatch.setenv("AWS_ENDPOINT_URL", opts.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", opts.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", opts.secret_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    sets = ["--set", f"publish.store_uri={uri}", "--set", "publish.name=homefeed"]
    assert main(["publish", "rollback", "--to", "v1", *sets]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "channel prod of homefeed -> v1"
    assert read_channel(store, "homefeed", "prod").version == "v1"
    assert main(["publish", "prune", *sets, "--keep-blessed", "1"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "removed 1 version(s): v2"
    assert main(["recommend", "--user", "1", *sets]) == 2  # v1 loads from the store; its tiny encoder cannot serve
    assert capsys.readouterr().err.strip() == "pinrec recommend: not a pinrec encoder (format None)"


def test_an_unreachable_store_and_a_bad_context_exit_2_with_the_cause(monkeypatch, capsys):
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    assert main(["publish", "rollback", "--to", "v1", "--set", "publish.store_uri=s3://pinrec/x"]) == 2
    assert "Failed to connect to 127.0.0.1 port 9" in capsys.readouterr().err  # the endpoint of the environment
    assert main(["recommend", "--user", "1", "--context", "hour=nine"]) == 2
    assert "pinrec recommend: configuration error: --context hour expects an int, got 'nine'" in capsys.readouterr().err


# --- publish bundle | rollback | prune: nested, each with only its own options ---------------------------------

def test_publish_subcommands_parse_their_own_options():
    parse = build_parser().parse_args
    args = parse(["publish", "bundle", "--force", "--fail-unblessed", "--cutoff", "2026-01-09T00:00:00",
                  "--index-dir", "/i", "--set", "seed=3"])
    assert (args.handler, args.force, args.fail_unblessed, args.index_dir, args.set) == \
        ("publish bundle", True, True, "/i", ["seed=3"])
    assert args.cutoff.isoformat() == "2026-01-09T00:00:00" and args.ranker_dir is None
    args = parse(["publish", "rollback", "--to", "v7", "--force"])
    assert (args.handler, args.to, args.force) == ("publish rollback", "v7", True)
    args = parse(["publish", "prune", "--keep-blessed", "3", "--grace-s", "60"])
    assert (args.handler, args.keep_blessed, args.keep_unblessed, args.grace_s) == ("publish prune", 3, None, 60)


@pytest.mark.parametrize("argv, message", [
    (["publish"], "the following arguments are required: ACTION"),
    (["publish", "--force"], "the following arguments are required: ACTION"),
    (["publish", "bundel"], "invalid choice: 'bundel' (choose from 'bundle', 'rollback', 'online-features', 'prune')"),
    (["publish", "rollback"], "the following arguments are required: --to"),
    (["publish", "rollback", "--to", "v1", "--fail-unblessed"], "unrecognized arguments: --fail-unblessed"),
    (["publish", "prune", "--to", "v1"], "unrecognized arguments: --to v1"),
    (["publish", "prune", "--force"], "unrecognized arguments: --force"),
    (["publish", "bundle", "--keep-blessed", "2"], "unrecognized arguments: --keep-blessed 2"),
    (["publish", "prune", "--keep-blessed", "many"], "argument --keep-blessed: invalid int value: 'many'"),
])
def test_publish_usage_errors_exit_2_naming_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["index", "--queries", "0"], "argument --queries: expected an integer >= 1, got 0"),
    (["demo", "--days-per-batch", "-1"], "argument --days-per-batch: expected an integer >= 0, got -1"),
    (["stack", "up", "--worker-cores", "two"], "argument --worker-cores: expected an integer >= 1, got 'two'"),
    (["recommend", "--user", "2", "--k", "0"], "argument --k: expected an integer >= 1, got 0"),  # before any load
])
def test_counts_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["generate", "--scale", "inf"], "--scale must be a positive finite number, got inf"),
    (["generate", "--scale", "nan"], "--scale must be a positive finite number, got nan"),
    (["publish", "prune", "--set", "publish=null", "--keep-blessed", "1"],
     "--set gave publish a value (None), so the option for publish.keep_blessed has no key to set"),
    (["ingest", "--start", "2026-02-01", "--end", "2026-01-01"], "--start 2026-02-01 is after --end 2026-01-01"),
    (["features", "--start", "2026-02-01", "--end", "2026-01-01"], "--start 2026-02-01 is after --end 2026-01-01"),
])
def test_contradictory_or_non_finite_options_exit_2_naming_them(argv, message, tmp_path, capsys):
    assert main([*argv, "--set", f"storage.landing={tmp_path}/l", "--set", f"storage.warehouse={tmp_path}/w"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _handlers(parser: argparse.ArgumentParser | None = None):
    """Each leaf command's ``handler`` ("ingest", "publish rollback", ...), walking the parser's subcommands."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser.get_default("handler")
    for sub in subs:
        for child in sub.choices.values():
            yield from _handlers(child)


def test_every_command_the_parser_knows_has_a_body():
    from pinrec.jobs.orchestration import cli_jobs, cli_ops

    handlers = list(_handlers())
    assert len(handlers) == len(set(handlers)) == 30
    assert set(handlers) == set(cli_jobs.COMMANDS) | set(cli_ops.COMMANDS)


def test_rollback_and_prune_on_a_local_store(tmp_path, capsys):
    from pinrec.export.build.blessing import BlessingConfig
    from pinrec.export.build.publish import publish
    from pinrec.export.serving.store import Store, read_channel
    from tests.support.bundles import LINEAGE, T0, metrics, write_bundle_files

    store = Store(str(tmp_path / "serving"))
    for seed, version in ((0, "v1"), (1, "v2"), (2, "v3")):
        publish(store, "homefeed", write_bundle_files(tmp_path / version, seed=seed)[0],
                metrics(recall=0.30 + seed / 100), LINEAGE, version=version, now=T0,
                blessing=BlessingConfig(min_recall=0.1, min_auc=0.55))
    sets = ["--set", f"publish.store_uri={tmp_path / 'serving'}"]
    assert main(["publish", "rollback", "--to", "v2", *sets]) == 0
    assert capsys.readouterr().out.strip() == "channel prod of homefeed -> v2"
    assert main(["publish", "prune", "--keep-blessed", "0", *sets]) == 2  # the config's bound, through the option
    assert capsys.readouterr().err.startswith("pinrec publish prune: configuration error: ")
    assert main(["publish", "prune", "--keep-blessed", "1", *sets]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 version(s): v1"  # v3 is the newest, v2 the channel's
    assert read_channel(store, "homefeed", "prod").version == "v2"
    assert main(["publish", "rollback", "--to", "v9", *sets]) == 2  # a PublishError: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("pinrec publish rollback: homefeed/v9 is not a complete version") and "Traceback" not in err


# --- feature-snapshot: the Redis export takes every redis.* setting of the config ---------------------------------

def test_feature_snapshot_redis_url_overrides_only_the_url():
    from pinrec.jobs.orchestration.cli_jobs import config_of

    args = build_parser().parse_args(["feature-snapshot", "--cutoff", "2026-01-09T00:00:00", "--redis-url",
                                      "redis://127.0.0.1:6399/2", "--set", "redis.key_prefix=hf",
                                      "--set", "redis.batch_size=7", "--set", "redis.url=redis://elsewhere:1/0"])
    redis = config_of(args, {"redis.url": args.redis_url}).redis
    assert (redis.url, redis.key_prefix, redis.batch_size) == ("redis://127.0.0.1:6399/2", "hf", 7)
    assert config_of(args, {"redis.url": None}).redis.url == "redis://elsewhere:1/0"  # not given: the config's


def test_the_default_snapshot_folder_is_the_cutoffs_utc_instant():
    import datetime as dt

    from pinrec.jobs.orchestration.cli_ops import snapshot_folder_name

    parse = build_parser().parse_args
    naive = parse(["feature-snapshot", "--cutoff", "2026-01-09T00:00:00"]).cutoff
    offset = parse(["feature-snapshot", "--cutoff", "2026-01-08T19:00:00-05:00"]).cutoff  # the same instant
    assert snapshot_folder_name(naive) == snapshot_folder_name(offset) == "20260109T000000"
    # two cut-offs within one second are two folders, not one snapshot overwriting the other
    assert snapshot_folder_name(naive + dt.timedelta(microseconds=250)) == "20260109T000000.000250"


def test_feature_snapshot_redis_without_a_bundle_version_exits_2_before_any_work(tmp_path, capsys):
    code = main(["feature-snapshot", "--cutoff", "2026-01-09T00:00:00", "--set", "redis.url=redis://127.0.0.1:1/0",
                 "--set", f"storage.warehouse={tmp_path / 'nowhere'}"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "pinrec feature-snapshot: configuration error: a Redis export (--redis-url or redis.url) needs "
        "--bundle-version (Redis keys are versioned by bundle)")
    assert not (tmp_path / "nowhere").exists()


def test_feature_snapshot_with_redis_down_exits_2_naming_the_url(tmp_path, monkeypatch, capsys):
    """redis-py's ConnectionError is no OSError: it was a raw traceback, as for a bug."""
    import datetime as dt
    import socket

    import pyarrow as pa

    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
    from pinrec.export.serving.snapshot_meta import SnapshotMeta, with_meta
    from pinrec.jobs.features import feature_snapshot
    from pinrec.jobs.orchestration import cli_ops
    from pinrec.schemas.features import Feature, FeatureView

    pytest.importorskip("redis")
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(hours=1))
    cutoff = dt.datetime(2026, 1, 9)
    table = pa.table({"user_id": pa.array([1], pa.int64()), "u__saves": pa.array([3], pa.int64()),
                      "u__feature_ts": pa.array([cutoff], pa.timestamp("us", tz="UTC"))})
    snapshot = FeatureSnapshot.open(with_meta(table, SnapshotMeta.from_view(view, cutoff)))

    class Built:
        def render(self) -> str:
            return "snapshot built"

    monkeypatch.setattr(cli_ops, "spark_and_paths", lambda cfg: (None, None))  # no Spark: the snapshot is given
    monkeypatch.setattr(feature_snapshot, "build_feature_snapshot", lambda spark, warehouse, cutoff, out, allow_empty: Built())
    monkeypatch.setattr(feature_snapshot, "open_snapshot", lambda out: snapshot)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens once closed
    code = main(["feature-snapshot", "--cutoff", "2026-01-09T00:00:00", "--redis-url", url, "--bundle-version", "v1",
                 "--out", str(tmp_path / "snapshot")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "snapshot built\n"
    assert err.startswith(f"pinrec feature-snapshot: redis export of version v1 to {url} failed: ConnectionError: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_stack_up_prints_the_next_steps(tmp_path, monkeypatch, capsys):
    from pinrec.jobs.orchestration import stack

    seen = {}

    def fake_up(state_dir, worker_cores, worker_memory):
        seen.update(state_dir=state_dir, cores=worker_cores, memory=worker_memory)
        return stack.StackReport(tmp_path, (stack.ServiceState("seaweedfs", "running", 42, 8333, "http://x"),),
                                 already_running=True)

    monkeypatch.setattr(stack, "up", fake_up)
    assert main(["stack", "up", "--state-dir", str(tmp_path), "--worker-cores", "1"]) == 0
    assert seen == {"state_dir": str(tmp_path), "cores": 1, "memory": "2g"}
    out = capsys.readouterr().out
    assert "seaweedfs     running" in out and "already running: nothing started; next:" in out
    assert f"source {tmp_path}/env.sh" in out and f"pinrec demo --config {tmp_path}/pinrec.yaml" in out


# --- errors: one line without -v, the traceback with it; a bug always shows its traceback -------------------------

def test_a_domain_error_is_one_line_and_verbose_adds_the_traceback(capsys):
    assert main(["generate", "--set", "synthetic.dayz=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pinrec generate: configuration error: ")
    assert "unknown key `synthetic.dayz`" in err and "Traceback" not in err
    for argv in (["generate", "-v", "--set", "synthetic.dayz=1"], ["--verbose", "generate", "--set", "synthetic.dayz=1"]):
        assert main(argv) == 2
        verbose = capsys.readouterr().err
        assert verbose.startswith("Traceback (most recent call last):")
        assert "pinrec.jobs.config.ConfigError" in verbose or "ConfigError: " in verbose
        assert verbose.splitlines()[-1] == err.strip()  # the same line closes it


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_a_bug_always_shows_its_traceback(verbose, monkeypatch):
    from pinrec.jobs.orchestration import cli_jobs

    def broken(args):
        return {}["missing"]

    monkeypatch.setitem(cli_jobs.COMMANDS, "tables", broken)
    with pytest.raises(KeyError, match="missing"):
        main([*verbose, "tables"])


@pytest.mark.parametrize("error, code", [("PublishError", 2), ("IngestError", 3), ("OSError", 2)])
def test_domain_errors_keep_their_exit_codes(error, code, monkeypatch, capsys):
    from pinrec.export.build import publish
    from pinrec.jobs.ingest import ingest_read
    from pinrec.jobs.orchestration import cli_jobs

    cls = {"PublishError": publish.PublishError, "IngestError": ingest_read.SchemaDriftError,
           "OSError": FileNotFoundError}[error]

    def fails(args):
        raise cls("what went wrong")

    monkeypatch.setitem(cli_jobs.COMMANDS, "tables", fails)
    assert main(["tables"]) == code
    assert capsys.readouterr().err == "pinrec tables: what went wrong\n"


def test_a_missing_extra_is_one_line_naming_it_and_a_missing_pinrec_module_is_a_bug(monkeypatch, capsys):
    from pinrec.jobs.orchestration import cli_jobs

    def needs(name):
        def run(args):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return run

    monkeypatch.setitem(cli_jobs.COMMANDS, "tables", needs("pyspark.sql"))
    assert main(["tables"]) == 2
    assert capsys.readouterr().err == ("pinrec tables: this command needs 'pyspark', which the base install (serving "
                                       "only) does not include: pip install 'pinrec[pipeline]' (DAGs: [airflow], "
                                       "Redis: [redis]). No module named 'pyspark.sql'\n")
    monkeypatch.setitem(cli_jobs.COMMANDS, "tables", needs("pinrec.jobs.nowhere"))
    with pytest.raises(ModuleNotFoundError):
        main(["tables"])


def test_on_a_base_install_a_command_says_which_extra_it_needs():
    """Where pydantic and yaml are not installed (``pip install pinrec``, serving only) the CLI still parses,
    and a command that needs the config says so in one line, exit 2, no traceback."""
    code = ("import sys\n"
            "for name in ('pydantic', 'yaml', 'pyspark', 'torch', 'mlflow', 'great_expectations'):\n"
            "    sys.modules[name] = None  # not installed: importing it raises ModuleNotFoundError\n"
            "from pinrec.jobs.orchestration.cli import main\n"
            "sys.exit(main(['recommend', '--user', '2', '--no-redis']))\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("pinrec recommend: this command needs ") and "pinrec[pipeline]" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1

def test_every_domain_error_is_looked_up_where_it_is_defined():
    """The lookup sees only loaded modules: a facade that re-exports a class may never be imported by the code
    that raises it (the serving and publish modules were split behind facades), its defining module always is."""
    import importlib

    from pinrec.jobs.orchestration.cli import DOMAIN_ERRORS

    for module, name, _, _ in DOMAIN_ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, BaseException) and cls.__module__ == module, (module, name)

# --- one front end, and a --help that loads nothing heavy ---------------------------------------------------------

def test_the_cli_is_the_only_python_entry_point_of_the_jobs():
    """No ``main()`` or ``if __name__ == "__main__"`` outside the CLI, except spark-submit's file (it hands
    its arguments to the CLI) and the jar set-up tool of .ci/setup.sh."""
    import ast

    from tests.test_layout import pinrec_modules

    entry_points = set()
    for name, (path, _) in pinrec_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" or \
                    isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                entry_points.add(name)
    assert entry_points == {"pinrec.jobs.orchestration.cli", "pinrec.jobs.orchestration.spark_app",
                            "pinrec.jobs.io.jars"}


HEAVY = ("pyspark", "delta", "pandas", "torch", "torch_geometric", "faiss", "onnxruntime", "onnx", "mlflow",
         "great_expectations", "airflow", "numpy", "pyarrow", "fsspec", "yaml", "duckdb", "sklearn", "scipy",
         "pydantic")
LIGHT = {"pinrec", "pinrec.jobs", "pinrec.jobs.orchestration", "pinrec.jobs.orchestration.cli",
         "pinrec.jobs.orchestration.cli_parser", "pinrec.jobs.orchestration.stack",
         "pinrec.jobs.orchestration.stack_services"}
PROBE = """
import json, sys
from pinrec.jobs.orchestration.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as e:
        codes.append(e.code)
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def _modules_after(*argvs: list[str]) -> tuple[list, set[str]]:
    """Exit codes and the modules a fresh interpreter holds after ``pinrec <argv>`` for each of ``argvs``."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], capture_output=True, text=True,
                          check=True, timeout=120)
    result = json.loads(done.stdout.splitlines()[-1])
    return result["codes"], set(result["modules"])


def test_help_imports_no_job_config_or_heavy_library():
    """``pinrec --help`` and every command's and group's ``--help``, in one fresh interpreter."""
    commands = [[], ["publish"], ["stack"], ["config"], *(h.split() for h in _handlers())]
    assert len(commands) == 34
    codes, modules = _modules_after(*([*c, "--help"] for c in commands))
    assert codes == [0] * len(commands)
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    assert sorted(m for m in modules if m.startswith("pinrec") and m not in LIGHT) == []


def test_the_import_probe_sees_what_a_command_loads():
    """The probe above is not blind: a command that runs loads the config (and its libraries)."""
    codes, modules = _modules_after(["generate", "--set", "synthetic.dayz=1"])
    assert codes == [2]
    assert {"pinrec.jobs.config", "pinrec.jobs.orchestration.cli_jobs", "yaml", "numpy"} <= modules


def test_the_demos_force_choices_are_the_pipelines_steps():
    from pinrec.jobs.config import PIPELINE_STEPS
    from pinrec.jobs.orchestration import cli_parser

    assert cli_parser.PIPELINE_STEPS == PIPELINE_STEPS
    args = build_parser().parse_args(["demo", "--force", "ranker", "--force", "index", "--no-cache"])
    assert args.force == ["ranker", "index"] and args.no_cache
    # the funnel replays are cached too (the champion's, the DAG's funnel task): so they can be forced
    from pinrec.jobs.config import StepCacheConfig
    from pinrec.jobs.orchestration.step_cache import StepCache

    assert build_parser().parse_args(["demo", "--force", "funnel"]).force == ["funnel"]
    assert not StepCache(StepCacheConfig(force=("funnel",))).hit("funnel", "f1", "f1")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--force", "rankr"])


def test_main_quiets_third_party_noise_that_no_user_can_act_on():
    """Every demo printed torch_geometric's import-time FutureWarning (torch.jit.script) and one line per
    torchvision op the ONNX exporter skips; main() silences both (a library importing pinrec does not)."""
    code = ("import logging, sys\n"
            "from pinrec.jobs.orchestration.cli import NOISY_LOGGERS, quiet_third_party_noise\n"
            "if sys.argv[1] == 'quiet': quiet_third_party_noise()\n"
            "import torch_geometric.nn\n"
            "print(all(not logging.getLogger(n).isEnabledFor(logging.WARNING) for n, _ in NOISY_LOGGERS))\n")
    runs = {mode: subprocess.run([sys.executable, "-c", code, mode], check=False, capture_output=True, text=True,
                                 timeout=300) for mode in ("quiet", "loud")}
    assert runs["quiet"].returncode == 0 and runs["quiet"].stdout.strip() == "True", runs["quiet"].stderr
    assert "torch.jit.script" not in runs["quiet"].stderr
    assert "torch.jit.script" in runs["loud"].stderr and runs["loud"].stdout.strip() == "False"
