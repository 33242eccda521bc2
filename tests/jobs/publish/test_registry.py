import dataclasses
import hashlib
from pathlib import Path

import pytest

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import publish
from pinrec.export.serving.store import Store
from pinrec.jobs.publish.registry import register_bundle
from tests.support.bundles import LINEAGE, T0, metrics, write_bundle_files


@pytest.mark.slow  # MLflow's sqlite schema migrations: ~20 s on 2 busy cores
def test_register_bundle_points_the_registry_at_the_published_files(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    run = client.create_run(client.create_experiment("ranker"))
    lineage = dataclasses.replace(LINEAGE, mlflow_run_ids={"ranker": run.info.run_id, "index": "no-such-run"})
    store = Store(str(tmp_path / "store"))
    gate = BlessingConfig(min_recall=0.1)
    files, _, _ = write_bundle_files(tmp_path / "c1", seed=1)
    v1 = publish(store, "homefeed", files, metrics(), lineage, version="v1", now=T0, blessing=gate).manifest

    assert register_bundle(tracking, store.uri, v1, channel="prod") == {"ranker": "1", "index": "1"}
    ranker = client.get_model_version_by_alias("pinrec-homefeed-ranker", "prod")
    assert ranker.source == f"file://{tmp_path}/store/bundles/homefeed/v1/ranker/ranker.onnx"
    assert ranker.run_id == run.info.run_id
    sha = hashlib.sha256(Path(files.ranker).read_bytes()).hexdigest()
    assert ranker.tags["sha256"] == sha and ranker.tags["bundle_version"] == "v1" and ranker.tags["blessed"] == "true"
    assert ranker.tags["code_version"] == LINEAGE.code_version
    index = client.get_model_version_by_alias("pinrec-homefeed-index", "prod")
    assert index.source.endswith("/bundles/homefeed/v1/index/index.json") and not index.run_id

    assert register_bundle(tracking, store.uri, v1, channel="prod") == {"ranker": "1", "index": "1"}  # idempotent
    files2, _, _ = write_bundle_files(tmp_path / "c2", seed=2)
    v2 = publish(store, "homefeed", files2, metrics(recall=0.31), lineage, version="v2", now=T0, blessing=gate).manifest
    assert register_bundle(tracking, store.uri, v2, channel="prod") == {"ranker": "2", "index": "2"}
    assert client.get_model_version_by_alias("pinrec-homefeed-ranker", "prod").tags["bundle_version"] == "v2"


def test_registry_sources_use_mlflows_s3_scheme_for_an_s3a_store(tmp_path, monkeypatch):
    # `pinrec stack` writes storage.artifacts = s3a://...: MLflow has no s3a artifact repository
    from pinrec.jobs.publish.registry import _absolute

    assert _absolute("s3a://pinrec/artifacts/serving/") == "s3://pinrec/artifacts/serving"
    assert _absolute("s3://pinrec/artifacts/serving") == "s3://pinrec/artifacts/serving"
    monkeypatch.chdir(tmp_path)
    assert _absolute("store") == f"file://{tmp_path}/store"
