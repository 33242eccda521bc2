"""Typed, frozen configuration: defaults, YAML, overrides, and loud failures."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from jobs.config import ConfigError, PinrecConfig, load_config, parse_overrides, replace


def test_defaults_are_the_embedded_local_setup():
    cfg = load_config()
    assert cfg.storage.warehouse == "./var/warehouse"
    assert cfg.storage.artifacts == "./var/artifacts"
    assert cfg.storage.mlflow_tracking_uri == "sqlite:///var/mlflow.db"
    assert cfg.spark.master == "local[*]"
    assert cfg.dataset.kind == "synthetic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3


def test_yaml_then_overrides_with_type_coercion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 11\nsynthetic:\n  days: 2\n  start_date: 2025-03-01\nspark:\n  extra:\n    a.b: 1\n")
    cfg = load_config(path, parse_overrides(["synthetic.days=3", "ingest.max_failing_fraction=0.5",
                                             "ingest.optional_tables=[users]"]))
    assert cfg.seed == 11
    assert cfg.synthetic.days == 3
    assert cfg.synthetic.start_date == dt.date(2025, 3, 1)
    assert cfg.synthetic.users == 1_000  # untouched default
    assert cfg.spark.extra == {"a.b": "1"}
    assert cfg.ingest.max_failing_fraction == 0.5
    assert cfg.ingest.optional_tables == ("users",)


@pytest.mark.parametrize("overrides, message", [
    ({"synthetic": {"dayz": 2}}, r"synthetic: unknown key\(s\) \['dayz'\]"),
    ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
    ({"synthetic": {"days": "many"}}, "synthetic.days: expected an integer"),
    ({"synthetic": {"days": 2.5}}, "synthetic.days: expected an integer"),
    ({"ingest": {"max_failing_fraction": 2}}, r"max_failing_fraction must be in \[0, 1\]"),
    ({"dataset": {"kind": "movielens-100k"}}, "dataset.path is required"),
    ({"dataset": {"kind": "netflix"}}, "dataset.kind must be"),
    ({"synthetic": {"start_date": "yesterday"}}, "expected a YYYY-MM-DD date"),
    ({"spark": "local"}, "spark: expected a mapping"),
    ({"training": {"broadcast_max_mb": -1}}, "training.broadcast_max_mb must be >= 0"),
])
def test_bad_config_raises_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["seed"])


def test_replace_merges_nested_sections():
    cfg = replace(PinrecConfig(), synthetic={"days": 1}, seed=3)
    assert (cfg.synthetic.days, cfg.synthetic.users, cfg.seed) == (1, 1_000, 3)


def test_the_example_config_spells_out_the_defaults():
    from tests.conftest import REPO

    assert load_config(REPO / "config" / "pinrec.example.yaml") == PinrecConfig()
