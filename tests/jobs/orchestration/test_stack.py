"""``pinrec stack up|status|down``: real servers on 127.0.0.1, stopped by PID, a config that points at them."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import stat
import time
import urllib.request
from pathlib import Path

import pytest

from pinrec.jobs.config import load_config
from pinrec.jobs.orchestration import stack_services
from pinrec.jobs.orchestration.cli import main
from pinrec.jobs.orchestration.stack import StackError, down, s3_only, status, up

SERVICES = {"seaweedfs", "spark-master", "spark-worker", "mlflow"}


def _processes_under(root: Path) -> list[str]:
    """Processes whose working directory or command line is inside ``root`` (every service of a
    stack runs in its state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != "Z" and (cwd.startswith(str(root)) or str(root) in cmdline):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


def test_stack_help_lists_its_actions(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["stack", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(action in out for action in ("up", "status", "down"))
    with pytest.raises(SystemExit):
        main(["stack", "up", "--help"])
    out = capsys.readouterr().out
    assert "--state-dir" in out and "--worker-cores" in out and "var/stack" in out


def test_status_and_down_without_a_stack_exit_2(tmp_path, capsys):
    assert main(["stack", "status", "--state-dir", str(tmp_path)]) == 2
    assert f"no stack in {tmp_path}" in capsys.readouterr().err
    with pytest.raises(StackError, match="pinrec stack up"):
        down(tmp_path)


@pytest.mark.integration
@pytest.mark.slow
def test_up_status_down(tmp_path, capsys):
    root = tmp_path / "stack"
    assert main(["stack", "up", "--state-dir", str(root), "--worker-cores", "1", "--worker-memory", "1g"]) == 0
    try:
        out = capsys.readouterr().out
        assert f"source {root}/env.sh" in out and f"pinrec demo --config {root}/pinrec.yaml" in out
        env = _env_file(root / "env.sh")
        secret = env["AWS_SECRET_ACCESS_KEY"]
        assert len(secret) == 40 and secret not in out
        for private in ("env.sh", "s3.json"):
            assert stat.S_IMODE((root / private).stat().st_mode) == 0o600, private
        for public in ("pinrec.yaml", "state.json"):
            assert secret not in (root / public).read_text() and env["AWS_ACCESS_KEY_ID"] not in (root / public).read_text()

        report = status(root)
        running = {s.name for s in report.services if s.state == "running"}
        redis = stack_services.find_binary("redis-server") is not None
        assert running == SERVICES | ({"redis"} if redis else set()) and report.ok
        urls = {s.name: s.url for s in report.services}

        cfg = load_config(root / "pinrec.yaml")
        assert (cfg.storage.landing, cfg.storage.warehouse, cfg.storage.artifacts) == (
            "s3a://pinrec/landing", "s3a://pinrec/warehouse", "s3a://pinrec/artifacts")
        assert cfg.storage.s3_endpoint_url == env["AWS_ENDPOINT_URL"] == urls["seaweedfs"]
        assert cfg.storage.mlflow_tracking_uri == urls["mlflow"]
        assert cfg.spark.master == urls["spark-master"] and cfg.spark.master.startswith("spark://127.0.0.1:")
        assert cfg.redis.url == (urls["redis"] if redis else None)

        import boto3
        from botocore.exceptions import ClientError

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=secret)
        s3.put_object(Bucket="pinrec", Key="stack-test/hello.txt", Body=b"hello stack")
        assert s3.get_object(Bucket="pinrec", Key="stack-test/hello.txt")["Body"].read() == b"hello stack"
        stranger = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                                aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key="0" * 40)
        with pytest.raises(ClientError):
            stranger.get_object(Bucket="pinrec", Key="stack-test/hello.txt")

        with urllib.request.urlopen(f"{urls['mlflow']}/health", timeout=5) as response:
            assert response.status == 200 and response.read() == b"OK"
        ui = json.loads((root / "state.json").read_text())["services"]["spark-master"]["ports"]["webui"]
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as response:
            master = json.loads(response.read())
        assert master["aliveworkers"] == 1 and master["cores"] == 1
        if redis:
            with socket.create_connection(("127.0.0.1", int(urls["redis"].rsplit(":", 1)[1].split("/")[0]))) as r:
                r.sendall(b"PING\r\n")
                assert r.recv(16) == b"+PONG\r\n"

        again = up(root)
        assert again.already_running
        assert {s.name: s.pid for s in again.services} == {s.name: s.pid for s in report.services}

        worker = next(s.pid for s in report.services if s.name == "spark-worker")
        os.killpg(worker, signal.SIGKILL)  # a service dies: status says which; up refuses to start half a stack
        for _ in range(50):
            if not stack_services.alive(worker, stack_services.start_time(worker) or -1):
                break
            time.sleep(0.1)
        assert {s.name for s in status(root).services if s.state == "dead"} == {"spark-worker"}
        assert main(["stack", "status", "--state-dir", str(root)]) == 1
        with pytest.raises(StackError, match=r"partly running .*dead: spark-worker\); run `pinrec stack down"):
            up(root)
    finally:
        stopped = down(root)
    pids = [s.pid for s in report.services if s.pid]
    assert set(stopped) == running and stopped.pop("spark-worker") == "not running"
    assert set(stopped.values()) <= {"stopped", "killed"}
    assert all(stack_services.start_time(pid) is None for pid in pids)
    assert _processes_under(root) == []
    capsys.readouterr()
    assert main(["stack", "status", "--state-dir", str(root)]) == 1
    assert capsys.readouterr().out.count(" dead ") == len(running)


@pytest.mark.integration
def test_up_failing_halfway_stops_what_it_started(tmp_path, monkeypatch):
    fake = tmp_path / "mlflow"
    fake.write_text("#!/bin/sh\necho 'cannot open the backend store' >&2\nexit 3\n")
    fake.chmod(0o755)
    real = stack_services.find_binary
    monkeypatch.setattr(stack_services, "find_binary", lambda name: str(fake) if name == "mlflow" else real(name))
    root = tmp_path / "stack"
    with pytest.raises(StackError, match="mlflow exited with code 3") as error:
        up(root, worker_cores=1, worker_memory="512m")
    assert "cannot open the backend store" in str(error.value)
    assert not (root / "state.json").exists() and not (root / "pinrec.yaml").exists()
    assert _processes_under(root) == []


@pytest.mark.integration
def test_s3_only_serves_its_bucket_with_its_keys_and_stops(tmp_path):
    import boto3
    from botocore.exceptions import ClientError

    root = tmp_path / "s3"
    with s3_only(root) as s3:
        def client(secret):
            return boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                                aws_access_key_id=s3.access_key, aws_secret_access_key=secret)

        client(s3.secret_key).put_object(Bucket=stack_services.BUCKET, Key="bench/a.txt", Body=b"hello")
        assert client(s3.secret_key).get_object(Bucket="pinrec", Key="bench/a.txt")["Body"].read() == b"hello"
        with pytest.raises(ClientError):
            client("0" * 40).get_object(Bucket="pinrec", Key="bench/a.txt")
        port = int(s3.endpoint_url.rsplit(":", 1)[1])
        assert stack_services.port_answers(port) and _processes_under(root)
        assert stat.S_IMODE((root / "s3.json").stat().st_mode) == 0o600
        assert not (root / "state.json").exists()  # no stack: status/down do not see it
    assert not stack_services.port_answers(port)
    assert _processes_under(root) == []


@pytest.mark.integration
def test_s3_only_that_exits_raises_with_its_log_and_leaves_nothing(tmp_path, monkeypatch):
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'volume dir not writable' >&2\nexit 4\n")
    fake.chmod(0o755)
    monkeypatch.setattr(stack_services, "find_binary", lambda name: str(fake) if name == "weed" else None)
    root = tmp_path / "s3"
    with pytest.raises(StackError, match="seaweedfs exited with code 4") as error, s3_only(root):
        pytest.fail("the body must not run")
    assert "volume dir not writable" in str(error.value)
    assert _processes_under(root) == []


def test_s3_only_without_weed_names_the_missing_command(tmp_path, monkeypatch):
    monkeypatch.setattr(stack_services, "find_binary", lambda name: None)
    with pytest.raises(FileNotFoundError, match="'weed' command was not found"), s3_only(tmp_path / "s3"):
        pytest.fail("the body must not run")
