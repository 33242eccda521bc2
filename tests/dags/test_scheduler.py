"""Both DAGs under a real Airflow scheduler, as deployed: PostgreSQL (Debian's package, ``initdb`` +
``pg_ctl`` on 127.0.0.1), ``airflow api-server``, ``airflow scheduler --skip-serve-logs`` and
``airflow dag-processor`` with the LocalExecutor, every process started here and stopped by its PID.

A tiny synthetic world of three days whose first days are ingested and featurised in-process
(a pre-built warehouse: the scheduler's part is what is tested, and every task process starts its
own JVM); ``airflow backfill create`` fills the other days, the scheduler runs them (ingest ->
features -> training set, skipped on a day whose window is too short), the Asset event of the
last day schedules the training DAG (which takes its config from that event), and the bundle it
publishes opens with the base-install loader and answers ``recommend``.

``make test`` runs it on the production topology (``topology`` = ``s3-cluster``, two days
pre-built, one scheduled): landing, warehouse, artifacts and bundles on SeaweedFS, the Spark steps
sent through the Airflow connection ``pinrec_spark`` to a standalone master whose worker has the
AWS keys, MLflow on the ``mlflow_server`` fixture; it follows the asset-triggered training run to its
``plan`` task (the config taken from the event). In ``make test-all`` only (marker ``full``): that
run to its end, the bundle loaded back from S3 (5.5 minutes more, 331 s in the suite of 2026-12-06:
every training task starts its own Python and JVM; ``tests/dags/test_pinrec_training.py`` runs the same DAG under ``dag.test()`` in
``make test``); the same on local disk and ``local[*]`` (one day pre-built, two scheduled: the first
skips its training set); and a reprocessed day (``--reprocess-behavior completed``) that leaves the
training set and the ingested rows unchanged.

The world ends on the day the daily DAG would schedule next (``next_dagrun``, yesterday): its
backfill run takes that logical date, so unpausing creates no scheduled run with default config.
(A test crossing midnight UTC sees the scheduler start today's run, with default config, relative
paths under AIRFLOW_HOME; it is left alone and stopped with the scheduler.)
(``airflow standalone`` is not used: it binds its log servers to 0.0.0.0.)
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster import free_port, wait_for_port
from tests.support.repo import REPO
from tests.support.tiny_world import tiny_world_overrides

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

DAYS = 3
RUN_TIMEOUT_S = 40 * 60  # each Spark task starts a JVM: minutes per run on 2 shared cores
BAD_STATES = {"failed", "up_for_retry", "upstream_failed"}
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------------------- topology
@dataclass
class Topology:
    """Where the run's data, Spark steps and MLflow go: ``overrides`` (appended to the world's),
    ``env`` (added to Airflow's), ``s3`` (the S3 server, or None for local disk), ``prebuilt``
    (days ingested and featurised in-process before the scheduler takes over)."""

    name: str
    overrides: list[str]
    env: dict[str, str]
    s3: object | None = None
    prebuilt: int = 1


@pytest.fixture(scope="module", params=[pytest.param("local", marks=pytest.mark.full), "s3-cluster"])
def topology(request, tmp_path_factory):
    if request.param == "local":
        yield Topology("local", [], {})
        return
    from tests.support.cluster import running_standalone_cluster
    from tests.support.s3 import BUCKET

    s3 = request.getfixturevalue("s3_server").options
    mlflow = request.getfixturevalue("mlflow_server")
    keys = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    root = f"s3a://{BUCKET}/scheduler-{secrets.token_hex(5)}"
    with running_standalone_cluster(tmp_path_factory.mktemp("scheduler_cluster"), worker_env=keys) as (url, _, _):
        yield Topology("s3-cluster",
                       [f"storage.landing={root}/landing", f"storage.warehouse={root}/warehouse",
                        f"storage.artifacts={root}/artifacts", f"storage.s3_endpoint_url={s3.endpoint_url}",
                        f"storage.mlflow_tracking_uri={mlflow.uri}", "publish.store_uri=null"],
                       {**keys, "AIRFLOW_CONN_PINREC_SPARK": url}, s3,
                       prebuilt=2)  # each scheduled day costs minutes of spark-submit on 2 cores


# ------------------------------------------------------------------------------- PostgreSQL
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))  # Debian keeps them off PATH
    return str(candidates[-1]) if candidates else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the package's ``postgres`` user there."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    """A throw-away cluster on 127.0.0.1 (trust auth, socket in its own directory): the URL of a
    fresh ``airflow`` database."""
    bins = {name: _pg_bin(name) for name in ("initdb", "pg_ctl", "createdb")}
    if None in bins.values():
        pytest.skip(f"PostgreSQL not installed (missing {[n for n, b in bins.items() if b is None]}): "
                    "apt-get install postgresql (.ci/setup.sh does)")
    root = Path(tempfile.mkdtemp(prefix="pinrec-pg-"))  # not under pytest's 0700 root: postgres must enter it
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, log, port = root / "data", root / "postgres.log", free_port()
    run = {"capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(_as_postgres([bins["initdb"], "-D", str(data), "-U", "postgres", "--auth=trust",
                                     "-E", "UTF8", "--locale=C", "--no-sync"]), check=True, **run)
        subprocess.run(_as_postgres([bins["pg_ctl"], "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                                     f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start"]),
                       check=True, **run)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{e.cmd[-1]} failed: {e.stdout}\n{e.stderr}\n"
                           f"{log.read_text()[-2000:] if log.exists() else ''}") from None
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        subprocess.run([bins["createdb"], "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "airflow"],
                       check=True, **run)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run(_as_postgres([bins["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True, timeout=120)
        if (data / "postmaster.pid").exists():  # the fast stop failed: stop it by its PID
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------- Airflow
@dataclass
class Airflow:
    home: Path
    url: str
    env: dict[str, str]
    procs: dict[str, tuple[subprocess.Popen, Path]]

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call of the REST API (``/api/v2``); the simple auth manager makes everyone admin."""
        req = urllib.request.Request(f"{self.url}/api/v2/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read()[:2000]!r}") from None

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(BIN / "airflow"), *args], check=False, env=self.env, cwd=self.home,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {out.returncode}:\n{out.stdout[-3000:]}\n"
                               f"{out.stderr[-3000:]}")
        return out.stdout

    def check_alive(self) -> None:
        for name, (proc, log) in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")


def _started_under(home: Path) -> list[int]:
    """PIDs of the live processes whose environment has ``AIRFLOW_HOME=<home>``: everything the
    Airflow processes of this module started, whatever process group or session it runs in."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _stop(procs: list[subprocess.Popen], home: Path) -> None:
    """SIGTERM each process group this module started, then SIGKILL what is left after 10 s (the
    scheduler waits for running tasks, and ``make test`` leaves the training run's tasks running:
    nothing of the throw-away run is kept). Task processes, and their spark-submit JVMs, run in
    process groups of their own: what still runs with this module's ``AIRFLOW_HOME`` is killed last."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
        except ProcessLookupError:
            pass
        proc.wait()
    for pid in _started_under(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def airflow(postgres, topology, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_scheduler")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "2",  # 2 cores: at most two task processes (two JVMs)
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # loopback only, throw-away
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",  # task processes report here
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),  # unused (--skip-serve-logs), not 8793
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1800",
        "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", ""),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        **topology.env,
    })
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=False, env=env, cwd=home,
                             capture_output=True, text=True, timeout=600)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-3000:]}")
    commands = {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                "scheduler": ["scheduler", "--skip-serve-logs"],
                "dag-processor": ["dag-processor"]}
    started: list[subprocess.Popen] = []
    procs = {}
    try:
        for name, args in commands.items():
            log = home / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen([str(BIN / "airflow"), *args], env=env, cwd=home, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            started.append(proc)
            procs[name] = (proc, log)
        wait_for_port(port, procs["api-server"][0], procs["api-server"][1], timeout=180)
        af = Airflow(home, url, env, procs)
        _wait(lambda: _serialized(af), "both DAGs parsed and serialized", af, timeout=300)
        yield af
    finally:
        _stop(list(reversed(started)), home)


def _serialized(af: Airflow) -> bool:
    try:
        return all(af.api("GET", f"dags/{d}")["dag_id"] == d for d in ("pinrec_daily", "pinrec_training"))
    except RuntimeError:
        return False


def _wait(ready, what: str, af: Airflow, timeout: float = RUN_TIMEOUT_S, every: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        af.check_alive()
        got = ready()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f} s")
        time.sleep(every)


# ------------------------------------------------------------------------------- the world
@pytest.fixture(scope="module")
def world(airflow, topology, spark, tmp_path_factory):
    """A tiny synthetic world whose last day is the daily DAG's next scheduled logical date; its
    first ``topology.prebuilt`` days are ingested and featurised here, as earlier scheduled runs would have."""
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.ingest.ingest import IngestPaths, ingest
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.io.lake import Location
    from pinrec.jobs.io.spark import configure_s3a

    nxt = airflow.api("GET", "dags/pinrec_daily")["next_dagrun_logical_date"]
    last = dt.datetime.fromisoformat(nxt).astimezone(dt.UTC).date()
    days = [last - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    root = tmp_path_factory.mktemp("scheduler_world")
    overrides = tiny_world_overrides(root, days[0], DAYS) + topology.overrides
    cfg = load_config(None, parse_overrides(overrides))
    if topology.s3 is not None:
        configure_s3a(spark, topology.s3)
    landing = cfg.storage.location("landing")
    if topology.s3 is not None:  # with the test's keys (the jobs read theirs from their environment)
        landing = Location(landing.uri, topology.s3)
    generate(cfg.synthetic, landing, seed=cfg.seed)
    ingest(spark, IngestPaths(landing, cfg.storage.warehouse), days[:topology.prebuilt], cfg.ingest)
    build_features(spark, cfg.storage.warehouse, days[:topology.prebuilt], cfg.features)
    return cfg, overrides, days


# ------------------------------------------------------------------------------- run helpers
def _runs(af: Airflow, dag_id: str) -> list[dict]:
    return af.api("GET", f"dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def _tis(af: Airflow, dag_id: str, run_id: str) -> dict[str, str | None]:
    out = af.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in out}


def _xcom(af: Airflow, dag_id: str, run_id: str, task_id: str):
    return af.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
                         "?deserialize=true")["value"]


def _task_logs(af: Airflow, dag_id: str, run_id: str, task_ids) -> str:
    parts = []
    for task_id in task_ids:
        for path in sorted((af.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                            / f"task_id={task_id}").glob("attempt=*.log")):
            parts.append(f"--- {path.relative_to(af.home)}\n{path.read_text(errors='replace')[-6000:]}")
    return "\n".join(parts) or f"(no task logs under {af.home / 'logs'})"


def _wait_for_runs(af: Airflow, dag_id: str, select, n: int) -> list[dict]:
    """Wait until ``n`` runs matching ``select`` succeeded; fail at once, with the task logs, when a
    task fails or is up for retry (the DAGs retry after minutes)."""
    def done():
        runs = [r for r in _runs(af, dag_id) if select(r)]
        for run in runs:
            if run["state"] == "success":
                continue
            states = _tis(af, dag_id, run["dag_run_id"])
            bad = [t for t, s in states.items() if s in BAD_STATES]
            if bad or run["state"] == "failed":
                pytest.fail(f"{dag_id} run {run['dag_run_id']} {run['state']}: {states}\n"
                            f"{_task_logs(af, dag_id, run['dag_run_id'], bad or states)}\n"
                            f"--- scheduler.log\n{af.procs['scheduler'][1].read_text()[-3000:]}")
        ok = [r for r in runs if r["state"] == "success"]
        return ok if len(ok) >= n else None

    return _wait(done, f"{n} successful {dag_id} run(s)", af)


# ------------------------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def backfilled(airflow, topology, world):
    """``airflow backfill create`` of the days not pre-built, both DAGs unpaused (the consumer first:
    it must see the Asset event); waits until every daily run succeeded: (runs by day, seconds)."""
    af = airflow
    _, overrides, days = world
    t0 = time.monotonic()
    af.cli("backfill", "create", "--dag-id", "pinrec_daily", "--from-date", days[topology.prebuilt].isoformat(),
           "--to-date", days[-1].isoformat(), "--dag-run-conf", json.dumps({"overrides": overrides}),
           "--max-active-runs", "1")
    for dag_id in ("pinrec_training", "pinrec_daily"):
        assert af.api("PATCH", f"dags/{dag_id}", {"is_paused": False})["is_paused"] is False
    daily = _wait_for_runs(af, "pinrec_daily", lambda r: r["run_type"] == "backfill", DAYS - topology.prebuilt)
    daily.sort(key=lambda r: r["logical_date"])
    return daily, t0


def test_backfill_and_asset_scheduled_training_under_a_real_scheduler(airflow, topology, world, backfilled):
    """The backfill's daily runs, and the training run the last day's Asset event schedules, with its config
    from that event (its ``plan`` task); :func:`test_the_asset_scheduled_training_publishes_a_bundle_that_serves`
    (``make test-all``) waits for the rest of that run."""
    af = airflow
    _, overrides, days = world
    daily, t0 = backfilled
    t_daily = time.monotonic() - t0
    scheduled = days[topology.prebuilt:]
    assert [dt.datetime.fromisoformat(r["logical_date"]).date() for r in daily] == scheduled
    assert all(r["conf"] == {"overrides": overrides} for r in daily)
    states = [_tis(af, "pinrec_daily", r["dag_run_id"]) for r in daily]
    # day 2 cannot hold train + validation + test days: skipped, not failed (as under dag.test())
    assert [s["training_set"] for s in states] == ["skipped"] * (DAYS - topology.prebuilt - 1) + ["success"]
    assert all(s["ingest"] == "success" and s["features"] == "success" for s in states)
    # the backfill took the days' logical dates: unpausing scheduled no run of its own for them
    ours = [r for r in _runs(af, "pinrec_daily") if dt.datetime.fromisoformat(r["logical_date"]).date() in days]
    assert [r["run_type"] for r in ours] == ["backfill"] * len(scheduled)
    built = _xcom(af, "pinrec_daily", daily[-1]["dag_run_id"], "training_set")
    assert built["day"] == days[-1].isoformat() and built["wrote"]["training_set"]["rows"] > 0
    assert built["days"] == [d.isoformat() for d in days]  # the pre-built day is in the window

    # the Asset event of the last day schedules the training DAG, which takes its overrides from it: its plan
    # task (the first) read them from the event and chose the event's day
    def planned():
        runs = [r for r in _runs(af, "pinrec_training") if r["run_type"] == "asset_triggered"]
        for run in runs:
            states = _tis(af, "pinrec_training", run["dag_run_id"])
            if states.get("plan") in BAD_STATES or run["state"] == "failed":
                pytest.fail(f"pinrec_training run {run['dag_run_id']} {run['state']}: {states}\n"
                            f"{_task_logs(af, 'pinrec_training', run['dag_run_id'], ['plan'])}")
        return next((r for r in runs if _tis(af, "pinrec_training", r["dag_run_id"]).get("plan") == "success"), None)

    run = _wait(planned, "the asset-triggered training run planned", af)
    assert _xcom(af, "pinrec_training", run["dag_run_id"], "plan") == days[-1].isoformat()
    print(f"\n[scheduler] daily backfill of {len(scheduled)} days {t_daily:.0f} s; asset-triggered training "
          f"planned at {time.monotonic() - t0:.0f} s")


@pytest.mark.full
def test_the_asset_scheduled_training_publishes_a_bundle_that_serves(airflow, topology, world, backfilled,
                                                                    monkeypatch):
    """The asset-triggered training run to its end: every task succeeds and the bundle it publishes (on S3
    and in the MLflow server's registry, in the ``s3-cluster`` topology) loads and answers ``recommend``."""
    from pinrec.export.serving.loader import load
    from pinrec.jobs.orchestration.demo import serve_examples

    af = airflow
    cfg, _, days = world
    _, t0 = backfilled
    training = _wait_for_runs(af, "pinrec_training", lambda r: r["run_type"] == "asset_triggered", 1)
    t_training = time.monotonic() - t0
    run_id = training[-1]["dag_run_id"]
    assert set(_tis(af, "pinrec_training", run_id).values()) == {"success"}
    assert _xcom(af, "pinrec_training", run_id, "plan") == days[-1].isoformat()
    published = _xcom(af, "pinrec_training", run_id, "publish")
    assert published["promoted"] and published["blessed"] and published["store_uri"] == cfg.bundle_store_uri
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, s3=topology.s3)
    assert bundle.version == published["version"]
    assert bundle.pins.num_rows > 0 and bundle.ntotal > 0
    if topology.s3 is not None:
        assert set(published["registered"]) == {"ranker", "index"}  # in the MLflow server's registry
        # serving reads the bundle with the keys a serving host has in its environment
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", topology.s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", topology.s3.secret_key)
    served = serve_examples(cfg, echo=lambda line: None, users=1, k=5)
    assert len(served) == 2 and all(1 <= len(recs) <= 5 for recs in served.values()), served
    print(f"\n[scheduler] asset-triggered training done at {t_training:.0f} s; bundle {bundle.version}")


@pytest.mark.full
def test_a_reprocessing_backfill_leaves_the_day_unchanged(airflow, world, backfilled):
    """The last day again with ``--reprocess-behavior completed``: nothing changed, so every task reuses
    its output from the step cache and writes nothing (training paused: no retrain)."""
    af = airflow
    _, overrides, days = world
    daily, _ = backfilled
    last = daily[-1]["dag_run_id"]
    built = _xcom(af, "pinrec_daily", last, "training_set")
    ingested = _xcom(af, "pinrec_daily", last, "ingest")
    assert af.api("PATCH", "dags/pinrec_training", {"is_paused": True})["is_paused"] is True
    before = {r["dag_run_id"]: r for r in _runs(af, "pinrec_daily")}[last]
    af.cli("backfill", "create", "--dag-id", "pinrec_daily", "--from-date", days[-1].isoformat(),
           "--to-date", days[-1].isoformat(), "--dag-run-conf", json.dumps({"overrides": overrides}),
           "--reprocess-behavior", "completed")

    def reprocessed():
        backfills = af.api("GET", "backfills?dag_id=pinrec_daily")["backfills"]
        return len(backfills) == 2 and all(b["completed_at"] for b in backfills)

    _wait(reprocessed, "the reprocess backfill completed", af)
    again = _wait_for_runs(af, "pinrec_daily", lambda r: r["dag_run_id"] == last, 1)[0]
    assert dt.datetime.fromisoformat(again["end_date"]) > dt.datetime.fromisoformat(before["end_date"])  # ran again
    # nothing changed since: the step cache reuses every output of the day (tests/dags/test_pinrec_daily.py
    # checks that a changed landing file reruns it with the same rows)
    rebuilt = _xcom(af, "pinrec_daily", last, "training_set")
    assert rebuilt["cache"]["cached"] and rebuilt["wrote"] == {}
    assert rebuilt["reused"]["training_set"]["delta_version"] == built["wrote"]["training_set"]["delta_version"]
    reingested = _xcom(af, "pinrec_daily", last, "ingest")
    assert reingested["cache"] == {**ingested["cache"], "cached": True} and reingested["wrote"] == {}
