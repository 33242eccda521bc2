"""The ``mlflow_server`` fixture (the root conftest provides it): one ``mlflow server`` per test run.

A SQLite backend in a temporary folder and artifact proxying to ``s3://pinrec/mlflow-artifacts`` on
the SeaweedFS server of ``s3_server``: clients log artifacts over HTTP and need no S3 keys; only
the server process gets the endpoint and keys, in its own environment.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinrec.export.serving.store import S3Options
from tests.support.cluster import free_port
from tests.support.s3 import BUCKET

ARTIFACTS = f"s3://{BUCKET}/mlflow-artifacts"


def _mlflow() -> str | None:
    here = Path(sys.executable).parent / "mlflow"
    return str(here) if here.exists() else shutil.which("mlflow")


@dataclass(frozen=True)
class MlflowServer:
    """``uri``: the tracking (and registry) URI clients use; ``artifacts``: where the server puts
    run artifacts; ``s3``: the S3 server behind it (for checks with boto3); ``log``: the server's log."""

    uri: str
    artifacts: str
    s3: S3Options
    pid: int
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(s3_server, tmp_path_factory):
    mlflow = _mlflow()
    if mlflow is None:
        pytest.skip("the 'mlflow' command was not found (pip install mlflow: the pipeline extra)")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    s3 = s3_server.options
    env = dict(os.environ, MLFLOW_S3_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
               AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION=s3.region,
               # the job runner (huey consumers, a temp dir in /dev/shm) serves GenAI jobs: not needed here
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [mlflow, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", ARTIFACTS, "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log_path = root / "mlflow-server.log"
    with open(log_path, "wb") as log:
        # its own session: the uvicorn child it spawns can be killed with it if SIGTERM is not enough
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env,
                                start_new_session=True)
        try:
            uri = f"http://127.0.0.1:{port}"
            _wait_for_health(uri, proc, log_path)
            yield MlflowServer(uri, ARTIFACTS, s3, proc.pid, log_path)
        finally:
            os.kill(proc.pid, signal.SIGTERM)  # `mlflow server` forwards it to its uvicorn child
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this fixture created for it
                proc.wait()


def _wait_for_health(uri: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Polls ``/health`` (200 "OK" once the app has run its database migrations)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server not healthy after {timeout} s: {log.read_text()[-3000:]}")
        time.sleep(0.3)
