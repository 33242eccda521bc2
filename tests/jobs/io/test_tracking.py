"""MLflow tracking behind one seam: a SQLite store keeps run artifacts beside its database."""
from __future__ import annotations

import os
from pathlib import Path


def test_artifacts_of_a_sqlite_store_land_beside_the_database_not_in_the_working_directory(tmp_path, monkeypatch):
    from pinrec.jobs.io.tracking import tracked_run

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    with tracked_run(uri, "exp", "run", params={"a": {"b": 1}}) as run:
        run.log_dict({"x": 1}, "report.json")
        run.log_metrics({"auc": 0.7, "bad": float("nan")})
    import mlflow

    got = mlflow.get_run(run.run_id)
    assert got.info.artifact_uri.startswith((tmp_path / "store" / "mlartifacts").as_uri())
    assert got.data.params == {"a.b": "1"} and got.data.metrics == {"auc": 0.7}
    assert list((tmp_path / "store" / "mlartifacts").rglob("report.json"))
    assert os.listdir(cwd) == []  # nothing in ./mlruns
    assert not Path("mlruns").exists()


def test_artifact_root_speaks_mlflows_schemes_and_takes_the_endpoint_of_the_storage_section(tmp_path, monkeypatch):
    import pytest

    from pinrec.jobs.config import StorageConfig
    from pinrec.jobs.io.tracking import ArtifactRoot, mlflow_artifact_root

    monkeypatch.chdir(tmp_path)
    assert mlflow_artifact_root(StorageConfig()) is None
    s3 = StorageConfig(mlflow_artifacts="s3a://lake/mlflow/", s3_endpoint_url="http://127.0.0.1:8333")
    assert mlflow_artifact_root(s3) == ArtifactRoot("s3://lake/mlflow", "http://127.0.0.1:8333")
    assert mlflow_artifact_root(StorageConfig(mlflow_artifacts="s3://lake")) == ArtifactRoot("s3://lake", None)
    assert mlflow_artifact_root(StorageConfig(mlflow_artifacts="runs/art")).uri == (tmp_path / "runs" / "art").as_uri()
    assert mlflow_artifact_root(StorageConfig(mlflow_artifacts=f"file://{tmp_path}/x")).uri == (tmp_path / "x").as_uri()
    with pytest.raises(ValueError, match="must be s3://bucket"):
        ArtifactRoot("s3a://lake/mlflow")


def test_the_configured_s3_endpoint_reaches_mlflow_unless_the_user_set_its_variable(monkeypatch):
    from pinrec.jobs.io.tracking import ArtifactRoot, _export_s3_endpoint

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "")
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")  # absent for this test, restored afterwards
    _export_s3_endpoint(ArtifactRoot(Path("/tmp/x").as_uri(), "http://127.0.0.1:1"))  # not S3: nothing to do
    assert "MLFLOW_S3_ENDPOINT_URL" not in os.environ
    _export_s3_endpoint(ArtifactRoot("s3://lake/mlflow", "http://127.0.0.1:8333"))
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    _export_s3_endpoint(ArtifactRoot("s3://lake/mlflow", "http://elsewhere:9000"))
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"  # a variable already set wins
