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
