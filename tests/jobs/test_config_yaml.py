"""jobs/config_yaml.py: a value is the text typed, malformed YAML and repeated keys are ConfigErrors."""
from __future__ import annotations

import re

import pytest

from pinrec.jobs.config import ConfigError, load_config, parse_overrides
from pinrec.jobs.orchestration.cli import main


@pytest.mark.parametrize("text", ["2024_01", "0700", "12:30", "0x1F", "1_000", "yes", "off"])
def test_a_string_key_keeps_the_text_given(text, tmp_path):
    cfg = load_config(overrides=parse_overrides([f"storage.landing={text}", f"dataset.item_column={text}"]))
    assert (cfg.storage.landing, cfg.dataset.item_column) == (text, text)
    (tmp_path / "c.yaml").write_text(f"storage:\n  landing: {text}\n")
    assert load_config(tmp_path / "c.yaml").storage.landing == text


def test_plain_numbers_booleans_and_nulls_still_parse():
    got = parse_overrides(["a=12", "b=-3", "c=0.5", "d=1e3", "e=true", "f=False", "g=null", "h=~", "i=''", "j=[1, x]",
                           "k={a: 1}", "l=0", "m=.inf"])
    assert got == {"a": 12, "b": -3, "c": 0.5, "d": 1000.0, "e": True, "f": False, "g": None, "h": None, "i": "",
                   "j": [1, "x"], "k": {"a": 1}, "l": 0, "m": float("inf")}
    assert load_config(overrides=parse_overrides(["synthetic.days=3", "seed=1e1"])).synthetic.days == 3


@pytest.mark.parametrize("key", ["label_sep", "sep", "items_sep"])
@pytest.mark.parametrize("text", ["|", ">", "#"])
def test_a_separator_is_the_character_typed(key, text):
    assert getattr(load_config(overrides=parse_overrides([f"dataset.{key}={text}"])).dataset, key) == text


def test_a_commented_out_looking_value_is_text_and_an_empty_separator_is_refused():
    cfg = load_config(overrides=parse_overrides(["dataset.timestamp_column=#ts"]))
    assert cfg.dataset.timestamp_column == "#ts"
    with pytest.raises(ConfigError, match="dataset.label_sep"):
        load_config(overrides=parse_overrides(["dataset.label_sep=''"]))


@pytest.mark.parametrize("value", ["[a", "*a", "'", "!x", "a: b: c", "{a: 1"])
def test_an_unparsable_override_is_a_config_error_naming_it(value):
    with pytest.raises(ConfigError, match=r"override .dataset.names=.*not valid YAML"):
        parse_overrides([f"dataset.names={value}"])


@pytest.mark.parametrize("value, expected", [(",", ","), ("::", "::"), ('"::"', "::"), ("|", "|"), ("[a", "[a"),
                                             ("a: b", "a: b"), ("~", None), ("1", "1")])
def test_a_text_setting_takes_the_text_typed(value, expected):
    """What docs/datasets.md tells users to type: ``--set dataset.sep=,`` was "not valid YAML" and ``::`` a
    mapping; a text setting now keeps the text (YAML still reads quotes and null)."""
    cfg = load_config(overrides=parse_overrides([f"dataset.sep={value}", f"dataset.items_sep={value}"]))
    assert cfg.dataset.sep == expected and cfg.dataset.items_sep == expected


def test_a_malformed_file_an_impossible_date_and_a_repeated_key_are_config_errors(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("seed: [1\n")
    with pytest.raises(ConfigError, match=r"config file .*c.yaml: not valid YAML"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"synthetic.start_date=2025-02-30.*not valid YAML.*day is out of range"):
        parse_overrides(["synthetic.start_date=2025-02-30"])
    (tmp_path / "d.yaml").write_text("synthetic:\n  days: 2\nseed: 3\nsynthetic:\n  users: 50\n")
    with pytest.raises(ConfigError, match=r"d.yaml: key 'synthetic' is given twice \(lines 1 and 4\)"):
        load_config(tmp_path / "d.yaml")
    assert main(["config", "show", "--set", "seed=[1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinrec config show: configuration error: override 'seed=[1'") and "Traceback" not in err


def test_overrides_that_disagree_on_a_section_are_config_errors():
    with pytest.raises(ConfigError, match=r"override 'dataset.kind=log': dataset was given a value"):
        parse_overrides(["dataset=foo", "dataset.kind=log"])
    with pytest.raises(ConfigError, match=r"override 'dataset=foo': an earlier override set keys inside dataset"):
        parse_overrides(["dataset.kind=log", "dataset=foo"])


def test_spark_extra_refuses_mappings_and_nulls():
    with pytest.raises(ConfigError, match=r"spark.extra\['spark'\] must be a string, number or boolean"):
        load_config(overrides=parse_overrides(["spark.extra.spark.executor.instances=4"]))
    with pytest.raises(ConfigError, match=r"spark.extra\['spark.x'\] must be"):
        load_config(overrides=parse_overrides(["spark.extra={spark.x: null}"]))
    extra = load_config(overrides=parse_overrides(["spark.extra={spark.a.b: 4, spark.c: true}"])).spark.extra
    assert extra == {"spark.a.b": "4", "spark.c": "true"}


@pytest.mark.parametrize("key", ["executor.memory", "fs.s3a.endpoint", "spark", "spark.", "Spark.master"])
def test_spark_extra_refuses_keys_spark_would_drop(key):
    # SparkConf keeps only spark.* keys: anything else would be lost on a cluster without a word
    with pytest.raises(ConfigError, match=rf"spark.extra key '{re.escape(key)}' is not a Spark setting: keys start "
                                          r"with 'spark.' \(Hadoop settings as spark.hadoop.<key>\)"):
        load_config(overrides=parse_overrides([f"spark.extra={{'{key}': x}}"]))


@pytest.mark.parametrize("key", ["max_future_skew_s", "reference_lookback_days", "report_sample_rows"])
def test_ingest_counts_are_bounded(key):
    with pytest.raises(ConfigError, match=f"ingest.{key}"):
        load_config(overrides={"ingest": {key: -1}})
    with pytest.raises(ConfigError, match="ingest.max_future_skew_s"):
        load_config(overrides={"ingest": {"max_future_skew_s": 10 ** 12}})


@pytest.mark.parametrize("pair, message", [
    ("seed=true", "seed: expected a number, got True"),
    ("synthetic.days=false", "synthetic.days: expected a number, got False"),
    ("ranker_train.lr=true", "ranker_train.lr: expected a number, got True"),
    ("index.shards=true", "index.shards: expected a number, got True"),  # a stdlib serving section
    ("ranker.deep_channels=[64, true]", r"ranker.deep_channels\[1\]: expected a number, got True"),
])
def test_a_boolean_is_not_taken_as_a_number(pair, message):
    # pydantic's lax mode reads True as 1: `seed: true` would silently be seed 1
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=parse_overrides([pair]))


def test_booleans_still_go_where_booleans_or_strings_belong():
    cfg = load_config(overrides=parse_overrides(["spark.adaptive=true", "spark.extra={spark.x: true}",
                                                        "ranker_train.lr=1"]))
    assert (cfg.spark.adaptive, cfg.spark.extra["spark.x"], cfg.ranker_train.lr) == (True, "true", 1.0)


def test_a_section_built_in_code_refuses_a_boolean_number():
    from pinrec.export.index_choice import IndexConfig
    from pinrec.jobs.config import PinrecConfig, RankerTrainConfig, replace

    with pytest.raises(ConfigError, match="ranker_train.epochs: expected a number, got True"):
        RankerTrainConfig(epochs=True)
    with pytest.raises(ConfigError, match="seed: expected a number, got False"):
        replace(PinrecConfig(), seed=False)
    with pytest.raises(ValueError, match="index.shards must be a number, got True"):
        IndexConfig(shards=True)
