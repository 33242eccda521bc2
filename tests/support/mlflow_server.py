"""The ``mlflow_server`` fixture (the root conftest provides it): one ``mlflow server`` per test run,
the service of ``pinrec stack`` (:func:`pinrec.jobs.orchestration.stack_services.mlflow_spec`).

A SQLite backend in a temporary folder and artifact proxying to ``s3://pinrec/mlflow-artifacts`` on
the SeaweedFS server of ``s3_server``: clients log artifacts over HTTP and need no S3 keys; only
the server process gets the endpoint and keys, in its own environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pinrec.export.serving.store import S3Options
from pinrec.jobs.orchestration.stack import running
from pinrec.jobs.orchestration.stack_services import (
    BUCKET,
    find_binary,
    free_ports,
    mlflow_spec,
)

ARTIFACTS = f"s3://{BUCKET}/mlflow-artifacts"


@dataclass(frozen=True)
class MlflowServer:
    """``uri``: the tracking (and registry) URI clients use; ``artifacts``: where the server puts
    run artifacts; ``s3``: the S3 server behind it (for checks with boto3); ``log``: the server's log."""

    uri: str
    artifacts: str
    s3: S3Options
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(s3_server, tmp_path_factory):
    if find_binary("mlflow") is None:
        pytest.skip("the 'mlflow' command was not found (pip install mlflow: the pipeline extra)")
    root = tmp_path_factory.mktemp("mlflow-server")
    s3 = s3_server.options
    keys = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_DEFAULT_REGION": s3.region}
    spec = mlflow_spec(f"sqlite:///{root / 'mlflow.db'}", ARTIFACTS, free_ports(1)[0], s3.endpoint_url, keys)
    with running(spec, root):
        yield MlflowServer(spec.url, ARTIFACTS, s3, root / "logs" / "mlflow.log")
