"""Publishing the exported ranker files: every file then ``metrics.json``, locally and on S3
(SeaweedFS), read back as the publish job reads them."""
from __future__ import annotations

import json

import pytest

from pinrec.jobs.io.lake import Location
from pinrec.jobs.publish.bundle import ranker_metrics
from pinrec.jobs.ranking.ranker import RankerReport
from pinrec.jobs.ranking.ranker_artifacts import publish_artifacts
from pinrec.jobs.ranking.ranker_eval import MetricRow


@pytest.fixture()
def artifacts(any_location) -> Location:
    return any_location / "artifacts"


def _report(version: str, auc: float) -> RankerReport:
    row = MetricRow("ranker", "save", auc, logloss=0.3, ece=0.02, ndcg=0.1)
    return RankerReport(version, ("save",), {"train": 80, "validation": 10, "test": 10}, 0.1, 2, 3, "cpu", (row,),
                        embedding_version="pinsage-1")


def test_publish_artifacts_writes_the_files_and_metrics(artifacts, tmp_path):
    (tmp_path / "ranker.onnx").write_bytes(b"onnx-bytes")
    (tmp_path / "encoder.json").write_text('{"spec": 1}')
    files = {"ranker.onnx": str(tmp_path / "ranker.onnx"), "encoder.json": str(tmp_path / "encoder.json")}
    target = artifacts / "ranker" / "ranker-0001"
    assert publish_artifacts(files, target, _report("ranker-0001", 0.71)) == str(target)
    assert sorted(name for name, _ in target.entries()) == ["encoder.json", "metrics.json", "ranker.onnx"]
    assert (target / "ranker.onnx").read_bytes() == b"onnx-bytes"
    assert (target / "encoder.json").read_text() == '{"spec": 1}'
    metrics = json.loads((target / "metrics.json").read_text())
    assert (metrics["model_version"], metrics["embedding_version"]) == ("ranker-0001", "pinsage-1")
    assert metrics["metrics"][0]["auc"] == 0.71
    auc, ece, _ = ranker_metrics(target)
    assert (auc, ece) == ({"save": 0.71}, {"save": 0.02})

