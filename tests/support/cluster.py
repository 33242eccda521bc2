"""A throw-away Spark standalone cluster (master + one worker) on free loopback ports."""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s:\n{log.read_text()[-3000:]}")


def can_hide_folders() -> bool:
    """Whether this process may give the worker a private mount namespace (root with ``unshare``)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("mount") is not None


def _hiding(command: list[str], hide: list[Path]) -> list[str]:
    """``command`` run in a private mount namespace in which each folder of ``hide`` is an empty
    tmpfs: the process (and its children, the executors) cannot read what the driver wrote there.
    ``exec`` keeps the PID, so the caller still stops it by PID."""
    mounts = " && ".join(f"mount -t tmpfs -o size=1m pinrec-hidden {shlex.quote(str(p))}" for p in hide)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"{mounts} && exec {' '.join(shlex.quote(c) for c in command)}"]


@contextlib.contextmanager
def running_standalone_cluster(tmp_path: Path, hide: list[Path] | None = None, worker_env: dict | None = None):
    """A Spark standalone master + one worker (1 core, 1g) on 127.0.0.1, stopped by PID on exit:
    yields (master URL, environment for spark-submit/workers, master web UI URL).

    ``hide``: folders the worker and its executors must not see (:func:`_hiding`; needs
    :func:`can_hide_folders`), e.g. the driver's working directory and the checkout, so that
    nothing but the object store is shared. ``worker_env``: extra variables of the worker alone
    (its executors inherit them), e.g. the AWS keys a real node would have."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_LOG_DIR=str(tmp_path / "logs"), PYSPARK_PYTHON=sys.executable)
    spark_class = str(spark_home / "bin" / "spark-class")
    master_port, webui_port, worker_port = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{master_port}"
    commands = {
        "master": ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
                   "--webui-port", str(webui_port)],
        "worker": ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(worker_port),
                   "--webui-port", str(free_port()), "--cores", "1", "--memory", "1g",
                   "--work-dir", str(tmp_path / "work"), url],
    }
    procs = []
    try:
        for name, port in (("master", master_port), ("worker", worker_port)):
            log = tmp_path / f"{name}.log"
            command = [spark_class, *commands[name]]
            if name == "worker" and hide:
                command = _hiding(command, hide)
            proc = subprocess.Popen(command, env=env if name == "master" else dict(env, **(worker_env or {})),
                                    stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            wait_for_port(port, proc, log)
        yield url, env, f"http://127.0.0.1:{webui_port}"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture()
def standalone_cluster(tmp_path):
    """(master URL, environment) of :func:`running_standalone_cluster`."""
    with running_standalone_cluster(tmp_path) as (url, env, _):
        yield url, env
