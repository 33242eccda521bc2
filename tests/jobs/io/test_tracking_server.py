"""MLflow tracking with run artifacts on S3 (SeaweedFS): through a shared ``mlflow server`` that
proxies them, and from a SQLite store with ``storage.mlflow_artifacts`` set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pinrec.jobs.config import StorageConfig
from pinrec.jobs.io.tracking import mlflow_artifact_root, tracked_run

pytestmark = pytest.mark.integration

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL")


def _unset(monkeypatch, *names: str) -> None:
    """Removes variables for this test only (``delenv`` of an absent variable would not restore the
    absence: tracked_run may set MLFLOW_S3_ENDPOINT_URL, which must not leak into later tests)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _objects(s3, prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                          aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="pinrec", Prefix=prefix)
            for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket="pinrec", Key=k)["Body"].read() for k in keys}


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1, 2], [1, 0, 1])
    return figure


def test_a_run_through_the_server_keeps_params_metrics_and_artifacts_and_the_artifacts_are_on_s3(
        mlflow_server, tmp_path, monkeypatch):
    import mlflow

    _unset(monkeypatch, *AWS_VARIABLES)  # the client holds no S3 endpoint or key: the server proxies
    local = tmp_path / "notes.csv"
    local.write_text("pin_id,score\n7,0.5\n")
    with tracked_run(mlflow_server.uri, "server-run", "ranker", params={"ranker": {"dim": 8}, "rows": 20},
                     tags={"job": "ranker"}) as run:
        run.log_metrics({"auc": 0.71, "skipped": float("inf")}, step=1)
        run.log_dict({"recall_at_10": 0.4}, "report.json")
        run.log_text("blessed\n", "notes/verdict.txt")
        run.log_figure(_figure(), "plots/curve.png")
        run.log_artifact(str(local), "inputs")

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.uri)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"ranker.dim": "8", "rows": "20"}
    assert got.data.metrics == {"auc": 0.71}
    assert got.data.tags["job"] == "ranker"
    assert got.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied, not a bucket the client must reach
    top = {a.path for a in client.list_artifacts(run.run_id)}
    assert top == {"report.json", "notes", "plots", "inputs"}
    assert [a.path for a in client.list_artifacts(run.run_id, "plots")] == ["plots/curve.png"]
    fetched = mlflow.artifacts.download_artifacts(run_id=run.run_id, artifact_path="inputs/notes.csv",
                                                  dst_path=str(tmp_path / "down"), tracking_uri=mlflow_server.uri)
    assert Path(fetched).read_text() == "pin_id,score\n7,0.5\n"

    prefix = f"mlflow-artifacts/{run.experiment_id}/{run.run_id}/artifacts/"
    objects = _objects(mlflow_server.s3, prefix)
    assert sorted(k[len(prefix):] for k in objects) == ["inputs/notes.csv", "notes/verdict.txt", "plots/curve.png",
                                                        "report.json"]
    assert json.loads(objects[prefix + "report.json"]) == {"recall_at_10": 0.4}
    assert objects[prefix + "notes/verdict.txt"] == b"blessed\n"
    assert objects[prefix + "plots/curve.png"].startswith(b"\x89PNG")


def test_mlflow_artifacts_puts_a_sqlite_stores_artifacts_on_s3_at_the_configured_endpoint(
        s3_server, tmp_path, monkeypatch):
    import mlflow

    s3 = s3_server.options
    _unset(monkeypatch, *AWS_VARIABLES)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)  # keys from the AWS environment, never config
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    prefix = f"sqlite-artifacts/{tmp_path.name}"
    storage = StorageConfig(mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", s3_endpoint_url=s3.endpoint_url,
                            mlflow_artifacts=f"s3a://pinrec/{prefix}/")
    root = mlflow_artifact_root(storage)
    assert (root.uri, root.s3_endpoint_url) == (f"s3://pinrec/{prefix}", s3.endpoint_url)

    with tracked_run(storage.mlflow_tracking_uri, "sqlite-s3", "index", artifact_root=root) as run:
        run.log_dict({"factory": "Flat"}, "index.json")
        run.log_metrics({"recall_at_10": 0.9})

    got = mlflow.MlflowClient(tracking_uri=storage.mlflow_tracking_uri).get_run(run.run_id)
    assert got.info.artifact_uri == f"s3://pinrec/{prefix}/{run.run_id}/artifacts"
    assert got.data.metrics == {"recall_at_10": 0.9}
    objects = _objects(s3, f"{prefix}/")
    assert {k: json.loads(v) for k, v in objects.items()} == {
        f"{prefix}/{run.run_id}/artifacts/index.json": {"factory": "Flat"}}
    assert not (tmp_path / "mlartifacts").exists()  # not the SQLite store's default beside the database
    assert s3.secret_key not in json.dumps({**got.data.params, **got.data.tags})
