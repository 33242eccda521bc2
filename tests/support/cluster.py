"""A throw-away Spark standalone cluster (master + one worker) on free loopback ports."""
from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def running_standalone_cluster(tmp_path: Path):
    """A Spark standalone master + one worker (1 core, 1g) on 127.0.0.1, stopped by PID on exit:
    yields (master URL, environment for spark-submit/workers, master web UI URL)."""
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
            proc = subprocess.Popen([spark_class, *commands[name]], env=env, stdout=log.open("w"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
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
