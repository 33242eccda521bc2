"""The ``redis_url`` fixture (the root conftest provides it): a throw-away ``redis-server`` on a free
loopback port, no persistence, once per test module; stopped by its PID."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

__all__ = ["free_port", "redis_url"]


def free_port() -> int:
    """A loopback port nothing listens on once this returns."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    redis = pytest.importorskip("redis", reason="redis-py is the 'redis' extra")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (Debian: apt-get install -y redis-server)")
    port = free_port()
    root = tmp_path_factory.mktemp("redis")
    with open(root / "redis.log", "wb") as log:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--dir", str(root), "--enable-debug-command", "local"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL) if proc.poll() is None else None
                raise RuntimeError(f"redis-server did not start: {(root / 'redis.log').read_text()[-2000:]}") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
