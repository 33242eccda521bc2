"""``pinrec stack up|status|down``: the production topology on this machine, in one command.

:func:`up` starts the services the tests use (:mod:`~pinrec.jobs.orchestration.stack_services`:
SeaweedFS S3, a Spark standalone master + worker, an MLflow server, Redis when installed) on free
127.0.0.1 ports, each in a session of its own (closing the terminal does not stop them) with its
log under ``<state_dir>/logs``, and writes into the state dir:

* ``state.json``: each service's PID (and start time), ports and log; :func:`status` and
  :func:`down` act on exactly these processes, never on a name;
* ``pinrec.yaml``: a pinrec config on the stack (landing, warehouse, artifacts on ``s3a://pinrec/``,
  the S3 endpoint, the MLflow server, the Spark master; Redis); it holds no key;
* ``env.sh`` (0600): ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL`` to
  ``source`` before a pinrec command; ``s3.json`` (0600): the same keys as SeaweedFS's identities.

:func:`s3_only` starts the S3 server alone for the length of a ``with`` block (benchmarks,
one-off scripts); it records nothing in the state dir.

The keys are generated anew by each :func:`up` and are given to the servers and the Spark worker
(whose executors read S3) through their environments only. Data (the bucket, MLflow's SQLite
database) stays in the state dir across ``down`` and ``up``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import stack_services as services

if TYPE_CHECKING:
    from pinrec.export.serving.store import S3Options

DEFAULT_STATE_DIR = "var/stack"
STATE, CONFIG, ENV = "state.json", "pinrec.yaml", "env.sh"


class StackError(RuntimeError):
    """No stack in the state dir, part of one still running, or a service that did not start."""


@dataclass(frozen=True)
class ServiceState:
    """``state``: "running" (PID alive and port answering), "dead" or "skipped" (``detail``: why);
    ``detail`` is the log file otherwise."""

    name: str
    state: str
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class StackReport:
    """The services of the stack in ``state_dir``; ``already_running``: :func:`up` found it up
    and started nothing."""

    state_dir: Path
    services: tuple[ServiceState, ...]
    already_running: bool = False

    @property
    def ok(self) -> bool:
        return all(s.state != "dead" for s in self.services)

    def render(self) -> str:
        lines = [f"{'service':<13} {'state':<8} {'pid':>8} {'port':>6}  url / log"]
        lines += [f"{s.name:<13} {s.state:<8} {s.pid or '-':>8} {s.port or '-':>6}  {s.url or ''} {s.detail}".rstrip()
                  for s in self.services]
        return "\n".join(lines)


def up(state_dir: str | Path = DEFAULT_STATE_DIR, *, worker_cores: int = 2, worker_memory: str = "2g",
       timeout: float = 120.0) -> StackReport:
    """Starts the stack in ``state_dir`` and returns its status. A stack already running there is
    left as it is (``already_running``). ``worker_cores`` / ``worker_memory``: what the Spark worker
    offers; ``timeout``: seconds each service may take to become ready. Raises :class:`StackError`
    when part of an earlier stack still runs there, or when a service exits or is not ready in time
    (naming it, with the tail of its log): everything this call started is stopped first."""
    root = Path(state_dir).resolve()
    if (root / STATE).exists():
        current = status(root)
        running = [s.name for s in current.services if s.state == "running"]
        if current.ok:
            return StackReport(root, current.services, already_running=True)
        if running:
            dead = [s.name for s in current.services if s.state == "dead"]
            raise StackError(f"the stack in {root} is partly running ({', '.join(running)}; dead: "
                             f"{', '.join(dead)}); run `pinrec stack down --state-dir {root}` first")
    if not Path("/proc/self/stat").exists():
        raise StackError("pinrec stack tells its processes apart through /proc: it runs on Linux only")
    for sub in ("logs", "seaweedfs", "spark-work", "redis"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    access, secret = f"pinrec-{secrets.token_hex(4)}", secrets.token_hex(20)
    specs, skipped = services.plan(root, access, secret, worker_cores, worker_memory)
    _write_identities(root, access, secret)
    by_name = {spec.name: spec for spec in specs}
    state: dict = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "services": {}, "skipped": skipped}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for spec in specs:
            if spec.needs:
                _wait(by_name[spec.needs], procs[spec.needs], root, timeout)
            procs[spec.name] = _start(spec, root)
            state["services"][spec.name] = {
                "pid": procs[spec.name].pid, "started": services.start_time(procs[spec.name].pid), "ports": spec.ports,
                "port": spec.port, "url": spec.url, "log": str(root / "logs" / f"{spec.name}.log")}
            _write_json(root / STATE, state)  # at once: a crash later still leaves what to stop
        for spec in specs:
            _wait(spec, procs[spec.name], root, timeout)
    except BaseException:
        for entry in reversed(state["services"].values()):
            services.stop(entry["pid"], entry["started"], timeout=10.0)
        (root / STATE).unlink(missing_ok=True)
        raise
    urls = {name: entry["url"] for name, entry in state["services"].items()}
    _write_config(root, urls)
    _write_private(root / ENV, "# Written by `pinrec stack up`: the keys of the stack's S3 server. Never commit.\n"
                   f"export AWS_ACCESS_KEY_ID={access}\nexport AWS_SECRET_ACCESS_KEY={secret}\n"
                   f"export AWS_ENDPOINT_URL={urls['seaweedfs']}\n")
    return status(root)


def status(state_dir: str | Path = DEFAULT_STATE_DIR) -> StackReport:
    """Each recorded service: running (its PID is the recorded process and its port answers) or
    dead; skipped ones with the reason. Raises :class:`StackError` when ``state_dir`` holds no stack."""
    root = Path(state_dir).resolve()
    state = _read_state(root)
    out = []
    for name, s in state["services"].items():
        port = s["ports"][s["port"]]
        running = services.alive(s["pid"], s["started"]) and services.port_answers(port)
        out.append(ServiceState(name, "running" if running else "dead", s["pid"], port, s["url"], s["log"]))
    out += [ServiceState(name, "skipped", detail=reason) for name, reason in state["skipped"].items()]
    return StackReport(root, tuple(out))


def down(state_dir: str | Path = DEFAULT_STATE_DIR, timeout: float = 20.0) -> dict[str, str]:
    """Stops the recorded processes, last started first (SIGTERM to each one's process group,
    SIGKILL after ``timeout`` s): {service: "stopped" | "killed" | "not running"}. The state file,
    logs and data stay (``status`` then reports the services dead; ``up`` starts them again)."""
    state = _read_state(Path(state_dir).resolve())
    return {name: services.stop(s["pid"], s["started"], timeout)
            for name, s in reversed(list(state["services"].items()))}


@contextlib.contextmanager
def running(spec: services.ServiceSpec, state_dir: str | Path, timeout: float = 120.0) -> Iterator[subprocess.Popen]:
    """One service for the body of a ``with`` (how the tests start theirs): started in a session
    of its own with its log at ``<state_dir>/logs/<name>.log``, ready within ``timeout`` s, and its
    process group stopped when the body ends, also on error. Nothing is recorded for
    ``status``/``down``. Raises :class:`StackError` when it exits or is not ready in time."""
    root = Path(state_dir).resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    proc = _start(spec, root)
    started = services.start_time(proc.pid)
    try:
        _wait(spec, proc, root, timeout)
        yield proc
    finally:
        if started is not None:
            services.stop(proc.pid, started, timeout=10.0)
        proc.wait()


@contextlib.contextmanager
def s3_only(state_dir: str | Path, timeout: float = 120.0) -> Iterator[S3Options]:
    """The stack's S3 server alone (SeaweedFS, no Spark, MLflow or Redis), for the body of a
    ``with`` (:func:`running`): on free 127.0.0.1 ports with fresh keys, data and log under
    ``state_dir``, bucket :data:`~pinrec.jobs.orchestration.stack_services.BUCKET`; yields its
    :class:`S3Options` (endpoint and keys). Raises :class:`StackError` when it exits or is not
    ready in ``timeout`` s, ``FileNotFoundError`` when ``weed`` is not installed."""
    # imported here, not at the top: `pinrec --help` reads DEFAULT_STATE_DIR and must stay light
    from pinrec.export.serving.store import S3Options

    root = Path(state_dir).resolve()
    (root / "seaweedfs").mkdir(parents=True, exist_ok=True)
    access, secret = f"pinrec-{secrets.token_hex(4)}", secrets.token_hex(20)
    spec = services.seaweedfs_spec(root, access, secret)
    _write_identities(root, access, secret)
    with running(spec, root, timeout):
        yield S3Options(endpoint_url=spec.url, region=services.REGION, access_key=access, secret_key=secret)


def _write_identities(root: Path, access: str, secret: str) -> None:
    """SeaweedFS's identities (``s3.json``, 0600): one user with the key ``access``/``secret``."""
    _write_private(root / "s3.json", json.dumps({"identities": [{
        "name": "pinrec", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))


def _start(spec: services.ServiceSpec, root: Path) -> subprocess.Popen:
    with open(root / "logs" / f"{spec.name}.log", "ab") as log:
        log.write(f"--- started {dt.datetime.now():%Y-%m-%d %H:%M:%S}: {spec.command[0]}\n".encode())
        log.flush()
        try:  # a session of its own: the terminal's hang-up does not reach it; `down` signals its group
            return subprocess.Popen(spec.command, cwd=root, env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise StackError(f"{spec.name} could not be started ({spec.command[0]}): {e}") from None


def _wait(spec: services.ServiceSpec, proc: subprocess.Popen, root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not spec.ready():
        if proc.poll() is not None:
            raise StackError(f"{spec.name} exited with code {proc.returncode} before it was ready; "
                             f"{_tail(root, spec.name)}")
        if time.monotonic() > deadline:
            raise StackError(f"{spec.name} was not ready after {timeout:.0f} s; {_tail(root, spec.name)}")
        time.sleep(0.2)


def _tail(root: Path, name: str, lines: int = 20) -> str:
    log = root / "logs" / f"{name}.log"
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {log}:\n" + "\n".join(text)


def _write_config(root: Path, urls: dict[str, str]) -> None:
    import yaml

    storage = {name: f"s3a://{services.BUCKET}/{name}" for name in ("landing", "warehouse", "artifacts")}
    cfg = {"storage": {**storage, "s3_endpoint_url": urls["seaweedfs"], "s3_region": services.REGION,
                       "mlflow_tracking_uri": urls["mlflow"]},
           "spark": {"master": urls["spark-master"], "driver_host": "127.0.0.1", "driver_bind_address": "127.0.0.1"}}
    if "redis" in urls:
        cfg["redis"] = {"url": urls["redis"]}
    (root / CONFIG).write_text(f"# Written by `pinrec stack up` for the services in {root / STATE}.\n"
                               f"# No keys here: `source {root / ENV}` first.\n" + yaml.safe_dump(cfg, sort_keys=False))


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` readable by its owner only (0600, also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _read_state(root: Path) -> dict:
    try:
        return json.loads((root / STATE).read_text())
    except FileNotFoundError:
        raise StackError(f"no stack in {root} (no {STATE}); start one with `pinrec stack up --state-dir {root}`") from None
