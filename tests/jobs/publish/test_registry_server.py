"""The Model Registry through a shared ``mlflow server``, bundles on S3 (SeaweedFS); and
``pinrec publish`` refusing, before it builds anything, a local bundle store a server cannot register."""
from __future__ import annotations

import dataclasses
import hashlib
import uuid
from pathlib import Path

import pytest

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import publish
from pinrec.export.serving.store import Store
from pinrec.jobs.publish.registry import register_bundle
from tests.support.bundles import LINEAGE, T0, metrics, write_bundle_files
from tests.support.s3 import BUCKET


@pytest.mark.integration
def test_register_bundle_through_the_server_points_at_the_bundle_on_s3(mlflow_server, tmp_path):
    import boto3
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.create_run(client.create_experiment(f"ranker-{uuid.uuid4().hex[:8]}"))
    lineage = dataclasses.replace(LINEAGE, mlflow_run_ids={"ranker": run.info.run_id})
    root = f"s3://{BUCKET}/serving/{uuid.uuid4().hex[:8]}"
    store = Store(root, mlflow_server.s3)
    gate = BlessingConfig(min_recall=0.1)
    prefix = f"t{uuid.uuid4().hex[:6]}"  # the server is shared by the session: names of this test only
    files, _, _ = write_bundle_files(tmp_path / "c1", seed=1)
    v1 = publish(store, "homefeed", files, metrics(), lineage, version="v1", now=T0, blessing=gate).manifest

    assert register_bundle(mlflow_server.uri, root, v1, channel="prod", prefix=prefix) == {"ranker": "1", "index": "1"}
    ranker = client.get_model_version_by_alias(f"{prefix}-homefeed-ranker", "prod")
    assert ranker.source == f"{root}/bundles/homefeed/v1/ranker/ranker.onnx"
    assert ranker.run_id == run.info.run_id
    sha = hashlib.sha256(Path(files.ranker).read_bytes()).hexdigest()
    assert (ranker.tags["sha256"], ranker.tags["bundle_version"], ranker.tags["blessed"]) == (sha, "v1", "true")
    index = client.get_model_version_by_alias(f"{prefix}-homefeed-index", "prod")
    assert index.source == f"{root}/bundles/homefeed/v1/index/index.json" and not index.run_id
    s3 = mlflow_server.s3
    objects = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region, aws_access_key_id=s3.access_key,
                           aws_secret_access_key=s3.secret_key)
    key = ranker.source[len(f"s3://{BUCKET}/"):]  # the registry's source is the published object itself
    assert hashlib.sha256(objects.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == sha

    assert register_bundle(mlflow_server.uri, root, v1, channel="prod", prefix=prefix) == {"ranker": "1", "index": "1"}
    files2, _, _ = write_bundle_files(tmp_path / "c2", seed=2)
    v2 = publish(store, "homefeed", files2, metrics(recall=0.31), lineage, version="v2", now=T0,
                 blessing=gate).manifest
    assert register_bundle(mlflow_server.uri, root, v2, channel="prod", prefix=prefix) == {"ranker": "2", "index": "2"}
    moved = client.get_model_version_by_alias(f"{prefix}-homefeed-ranker", "prod")
    assert (moved.version, moved.tags["bundle_version"]) == ("2", "v2")
    assert client.get_registered_model(f"{prefix}-homefeed-index").aliases == {"prod": "2"}
    assert [v.version for v in client.search_model_versions(f"name = '{prefix}-homefeed-ranker'",
                                                            order_by=["version_number"])] == ["1", "2"]


@pytest.mark.integration
def test_a_server_is_refused_a_local_bundle_store_before_anything_is_registered(mlflow_server, tmp_path):
    import mlflow

    files, _, _ = write_bundle_files(tmp_path / "c1", seed=1)
    store = Store(str(tmp_path / "store"))
    v1 = publish(store, "homefeed", files, metrics(), LINEAGE, version="v1", now=T0,
                 blessing=BlessingConfig(min_recall=0.1)).manifest
    prefix = f"t{uuid.uuid4().hex[:6]}"
    with pytest.raises(ValueError, match=f"the MLflow server {mlflow_server.uri} cannot register bundles of the "
                                         f"local store '{tmp_path}/store'"):
        register_bundle(mlflow_server.uri, store.uri, v1, prefix=prefix)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.uri)
    assert client.search_registered_models(f"name LIKE '{prefix}-%'") == []


def test_publish_with_a_server_and_a_local_store_fails_before_building_the_bundle(tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg = load_config(overrides={"storage": {"artifacts": str(tmp_path / "artifacts"),
                                             "mlflow_tracking_uri": "http://127.0.0.1:9"}})
    with pytest.raises(ValueError, match=r"cannot register bundles of the local store .*artifacts/serving'"):
        publish_serving_bundle(None, cfg)  # no Spark: the check comes before the first read
    assert not (tmp_path / "artifacts").exists()
