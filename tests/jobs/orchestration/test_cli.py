"""The `pinrec` CLI: help mirrors the jobs, bad input fails with a clear message and exit code."""
from __future__ import annotations

import uuid

import pytest

from pinrec.jobs.orchestration.cli import build_parser, main


@pytest.mark.parametrize("command, flags", [
    ("generate", ["--config", "--set"]),
    ("load-dataset", ["--kind", "--path"]),
    ("ingest", ["--date", "--start", "--end", "--tables"]),
    ("tables", ["--config"]),
    ("demo", ["--days-per-batch"]),
    ("recommend", ["--user", "--k", "--context", "--version"]),
    ("publish", ["--force", "--fail-unblessed"]),
    ("task", ["--date", "--result"]),
])
def test_every_subcommand_has_help(command, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
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
    from pinrec.jobs.orchestration.cli import scale_world

    cfg = scale_world(load_config(), 125)
    assert cfg.synthetic.impressions_per_day * cfg.synthetic.days == 10_000_000
    assert (cfg.synthetic.users, cfg.synthetic.pins, cfg.synthetic.days) == (125_000, 500_000, 4)
    with pytest.raises(ConfigError, match="positive"):
        scale_world(cfg, 0)


def test_scale_one_changes_nothing():
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.cli import scale_world

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
    assert main(["publish", "prune", *sets, "--set", "publish.keep_blessed=1"]) == 0, capsys.readouterr().err
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
