import dataclasses
import datetime as dt
import json

import pytest

from pinrec.export.serving.store import Store
from pinrec.jobs.io.lake import Location
from pinrec.jobs.report.gather import (
    resolve,
    retrieval_eval_facts,
)
from pinrec.schemas.manifest import MANIFEST_FILE, bundle_prefix
from tests.support.run_facts import facts


def _publish(store: Store, version: str, hour: int, blessed: bool = True) -> None:
    m = facts().manifest
    blessing = dataclasses.replace(m.blessing, blessed=True, reasons=()) if blessed else m.blessing
    m = dataclasses.replace(m, version=version, created_at=dt.datetime(2026, 1, 10, hour, tzinfo=dt.UTC),
                            blessing=blessing)
    store.put_bytes(bundle_prefix(m.name, version) + MANIFEST_FILE, m.to_json().encode())


def test_resolve_defaults_to_the_newest_version_promoted_or_not(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no published bundle of 'homefeed'.*pinrec publish bundle"):
        resolve(store, "homefeed", None)
    _publish(store, "v1", 10)
    _publish(store, "v3", 12, blessed=False)  # rejected by the gate: still the newest run's bundle
    _publish(store, "v2", 11)
    store.put_bytes(bundle_prefix("homefeed", "v4") + "index/index.json", b"{}")  # incomplete: no manifest yet
    assert resolve(store, "homefeed", None).version == "v3"
    assert resolve(store, "homefeed", "v1").version == "v1"
    assert resolve(store, "other", "homefeed/v2").version == "v2"
    with pytest.raises(FileNotFoundError, match=r"no bundle homefeed/v9 .*stored versions: v1, v2, v3, v4"):
        resolve(store, "homefeed", "v9")


def test_retrieval_eval_report_is_read_when_present(tmp_path):
    artifacts = Location(str(tmp_path))
    assert retrieval_eval_facts(artifacts).startswith(f"no {tmp_path}/retrieval_eval/report.json")
    (tmp_path / "retrieval_eval").mkdir()
    rows = [{"task": "leave_one_out", "model": "popularity", "metrics": {"hr@10": 0.1}, "queries": 40, "ci95": {}}]
    (tmp_path / "retrieval_eval" / "report.json").write_text(json.dumps({"config": {}, "rows": rows, "notes": {}}))
    found = retrieval_eval_facts(artifacts)
    assert found["rows"] == rows and found["where"] == f"{tmp_path}/retrieval_eval/report.json"
    assert dt.datetime.fromisoformat(found["modified"]).tzinfo is not None


def test_a_ranker_run_missing_from_mlflow_is_said_in_its_section(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from pinrec.jobs.report.gather import ranker_facts

    store, manifest = Store(str(tmp_path / "store")), facts().manifest  # lineage: ranker run "r1"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    onnx.helper.set_model_props(model, {"pinrec.model_version": "ranker-abc"})
    store.put_bytes(bundle_prefix(manifest.name, manifest.version) + "ranker/ranker.onnx", model.SerializeToString())
    (tmp_path / "artifacts" / "ranker" / "ranker-abc").mkdir(parents=True)
    (tmp_path / "artifacts" / "ranker" / "ranker-abc" / "metrics.json").write_text("{}")
    got = ranker_facts(store, manifest, Location(str(tmp_path / "artifacts")), f"file://{tmp_path}/mlruns")
    assert got.run_id == "r1" and got.evaluation is None
    assert got.plots.startswith(f"MLflow run r1 is not readable in file://{tmp_path}/mlruns: ")
