"""The `pinrec` CLI: help mirrors the jobs, bad input fails with a clear message and exit code."""
from __future__ import annotations

import pytest

from jobs.cli import build_parser, main


@pytest.mark.parametrize("command, flags", [
    ("generate", ["--config", "--set"]),
    ("load-dataset", ["--kind", "--path"]),
    ("ingest", ["--date", "--start", "--end", "--tables"]),
    ("tables", ["--config"]),
    ("demo", ["--days-per-batch"]),
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
    assert "unknown key(s) ['dayz']" in capsys.readouterr().err


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
    from jobs.cli import scale_world
    from jobs.config import ConfigError, load_config

    cfg = scale_world(load_config(), 125)
    assert cfg.synthetic.impressions_per_day * cfg.synthetic.days == 10_000_000
    assert (cfg.synthetic.users, cfg.synthetic.pins, cfg.synthetic.days) == (125_000, 500_000, 4)
    with pytest.raises(ConfigError, match="positive"):
        scale_world(cfg, 0)


def test_scale_one_changes_nothing():
    from jobs.cli import scale_world
    from jobs.config import load_config

    cfg = load_config(overrides={"synthetic": {"new_users_per_day": 0, "users": 50}})
    assert scale_world(cfg, 1.0) == cfg


def test_training_set_without_tables_exits_2(tmp_path, capsys):
    from tests.conftest import REPO

    code = main(["training-set", "--date", "2026-01-05", "--set", f"storage.warehouse={tmp_path}",
                 "--set", "spark.master=local[1]", "--set", f"spark.jars_dir={REPO / 'var' / 'jars'}"])
    assert code == 2
    assert "run `pinrec ingest` and `pinrec features`" in capsys.readouterr().err
