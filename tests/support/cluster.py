"""A throw-away Spark standalone cluster (master + one worker) on free loopback ports, started
from the service specs of ``pinrec stack``."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pinrec.jobs.orchestration.stack import running
from pinrec.jobs.orchestration.stack_services import (
    free_ports,
    spark_master_spec,
    spark_worker_spec,
)


def free_port() -> int:
    return free_ports(1)[0]


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
    """The Spark standalone master + one worker (1 core, 1g) of ``pinrec stack``
    (:mod:`pinrec.jobs.orchestration.stack_services`) on 127.0.0.1, stopped by process group on exit:
    yields (master URL, environment for spark-submit, master web UI URL).

    ``hide``: folders the worker and its executors must not see (:func:`_hiding`; needs
    :func:`can_hide_folders`), e.g. the driver's working directory and the checkout, so that
    nothing but the object store is shared. ``worker_env``: extra variables of the worker alone
    (its executors inherit them), e.g. the AWS keys a real node would have."""
    logs = {"SPARK_LOG_DIR": str(tmp_path / "logs")}
    master_port, master_ui, worker_port, worker_ui = free_ports(4)
    master = spark_master_spec(master_port, master_ui)
    master = dataclasses.replace(master, env={**master.env, **logs})
    worker = spark_worker_spec(master, worker_port, worker_ui, 1, "1g", tmp_path / "work",
                               {**logs, **(worker_env or {})})
    if hide:
        worker = dataclasses.replace(worker, command=_hiding(worker.command, hide))
    submit_env = dict(os.environ, **{k: v for k, v in master.env.items() if k != "SPARK_MASTER_OPTS"})
    with running(master, tmp_path), running(worker, tmp_path):
        yield master.url, submit_env, f"http://127.0.0.1:{master_ui}"


@pytest.fixture()
def standalone_cluster(tmp_path):
    """(master URL, environment) of :func:`running_standalone_cluster`."""
    with running_standalone_cluster(tmp_path) as (url, env, _):
        yield url, env
