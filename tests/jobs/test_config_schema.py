"""The JSON Schema and the reference page of the config: complete, strict, and committed up to date."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from pinrec.jobs.config import PinrecConfig
from pinrec.jobs.config_schema import (
    REFERENCE_PATH,
    SCHEMA_PATH,
    json_schema,
    render_reference,
    render_schema,
    write_docs,
)
from tests.support.repo import REPO


@pytest.mark.parametrize("rel, render", [(REFERENCE_PATH, render_reference), (SCHEMA_PATH, render_schema)])
def test_the_committed_files_are_up_to_date(rel, render):
    committed = (REPO / rel).read_text() if (REPO / rel).is_file() else ""
    assert committed == render(), f"{rel} is stale: regenerate it from the repository root with " \
                                  f"`pinrec config docs`"


def test_the_reference_lists_every_key_with_type_default_and_bounds():
    page = render_reference()
    cfg = PinrecConfig()
    for f in dataclasses.fields(PinrecConfig):
        sub = getattr(cfg, f.name)
        keys = [f"{f.name}.{g.name}" for g in dataclasses.fields(sub)] if dataclasses.is_dataclass(sub) else [f.name]
        for key in keys:
            assert f"| `{key}` |" in page, key
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in page.splitlines() if line.startswith("| `")}
    assert rows["| `training.maturity_s`"][:3] == ["int", "`21600`", ">= 1"]
    assert rows["| `ranker.dropout`"][:3] == ["float", "`0.0`", "[0, 1)"]
    assert rows["| `training.negative_rate`"][:3] == ["float", "`1.0`", "(0, 1]"]
    assert rows["| `ranker_train.loss`"][:3] == ["str", '`"bce"`', "one of `bce`, `focal`"]
    assert rows["| `index.shards`"][:2] == ["int", "`2`"]  # the pipeline's default, not IndexConfig's 1
    assert rows["| `storage.s3_region`"][:2] == ["str or null", "`null`"]
    assert rows["| `ranker.deep_channels`"][:3] == ["list of int", "`[128, 64]`", "at least 1 item(s); each >= 1"]
    assert rows["| `training.maturity_s`"][3].startswith("an action counts as a label when it happens within")


def test_the_schema_is_strict_and_validates_the_yaml_files():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert all(d["additionalProperties"] is False for d in schema["$defs"].values())
    training = schema["$defs"]["TrainingSetConfig"]["properties"]
    assert training["maturity_s"] == {"default": 21600, "minimum": 1, "title": "Maturity S", "type": "integer"}
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "config").glob("*.yaml")):
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))  # dates as YYYY-MM-DD
        assert not list(validator.iter_errors(data)), path.name
    assert [e.message for e in validator.iter_errors({"training": {"maturty_s": 1}})] == [
        "Additional properties are not allowed ('maturty_s' was unexpected)"]
    assert not validator.is_valid({"ranker_train": {"loss": "hinge"}})


def test_pinrec_config_docs_writes_then_checks(tmp_path, capsys):
    from pinrec.jobs.orchestration.cli import main

    assert main(["config", "docs", "--root", str(tmp_path), "--check"]) == 1
    assert "regenerate with `pinrec config docs`" in capsys.readouterr().err
    assert main(["config", "docs", "--root", str(tmp_path)]) == 0
    assert (tmp_path / REFERENCE_PATH).read_text() == render_reference()
    assert json.loads((tmp_path / SCHEMA_PATH).read_text()) == json_schema()
    assert main(["config", "docs", "--root", str(tmp_path), "--check"]) == 0
    assert write_docs(tmp_path, check=True) == []


def test_pinrec_config_show_prints_the_resolved_config(tmp_path, capsys):
    from pinrec.jobs.orchestration.cli import main

    assert main(["config", "show", "--set", "training.maturity_s=60", "--set", "spark.extra={spark.a: 2}"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["training"]["maturity_s"] == 60 and shown["spark"]["extra"] == {"spark.a": "2"}
    assert set(shown) == {f.name for f in dataclasses.fields(PinrecConfig)}
    assert main(["config", "show", "--set", "training.maturty_s=60"]) == 2
    assert "did you mean `training.maturity_s`" in capsys.readouterr().err
