"""Spark tasks through spark-submit when an Airflow Spark connection exists, in-process otherwise
(jobs/orchestration/spark_submit.py, jobs/orchestration/spark_app.py, `pinrec task`): the mode choice and the spark-submit call
without a cluster, then `pinrec_daily` with dag.test() on a standalone cluster vs local Spark."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import running_standalone_cluster
from tests.support.repo import REPO

START = dt.date(2026, 1, 5)
CONN = "AIRFLOW_CONN_PINREC_SPARK"
PARAMS = {"config": None, "overrides": ["synthetic.users=7"], "spark_conn_id": "pinrec_spark"}


def _stub_features(calls):
    def features_day(cfg, day):
        calls.append((cfg.synthetic.users, day))
        return {"day": day.isoformat(), "read": {"impressions": 3}, "wrote": {"features_pin": {"rows": 5}}}

    return features_day


def test_without_a_connection_the_step_runs_in_process(airflow_home, monkeypatch):
    import pinrec.jobs.orchestration.tasks
    from pinrec.jobs.orchestration import spark_submit

    monkeypatch.delenv(CONN, raising=False)
    assert spark_submit.spark_connection("pinrec_spark") is None
    assert spark_submit.spark_connection(None) is None
    calls = []
    monkeypatch.setattr(pinrec.jobs.orchestration.tasks, "features_day", _stub_features(calls))
    monkeypatch.setattr(spark_submit, "submit_step", lambda *a, **k: pytest.fail("submitted without a connection"))
    out = spark_submit.run_task("features", START, PARAMS)
    assert out == {"day": "2026-01-05", "read": {"impressions": 3}, "wrote": {"features_pin": {"rows": 5}}}
    assert calls == [(7, START)]  # the run's overrides reached the job
    # A null conn id means local even when the default connection exists.
    monkeypatch.setenv(CONN, "spark://127.0.0.1:7077")
    assert spark_submit.run_task("features", START, dict(PARAMS, spark_conn_id=None)) == out


@pytest.mark.parametrize("uri", ["spark://127.0.0.1:7077",
                                 json.dumps({"conn_type": "spark", "host": "spark://127.0.0.1", "port": 7077})])
def test_with_a_connection_the_step_goes_through_spark_submit(airflow_home, monkeypatch, tmp_path, uri):
    """The spark-submit command is recorded instead of run; the application's arguments are then
    fed to the same CLI in-process, which writes the result the task returns."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    import pinrec.jobs.orchestration.tasks
    from pinrec.jobs.orchestration import spark_submit
    from pinrec.jobs.orchestration.cli import main

    monkeypatch.setenv(CONN, uri)
    calls, seen = [], {}
    monkeypatch.setattr(pinrec.jobs.orchestration.tasks, "features_day", _stub_features(calls))

    def submit(self, application="", **kwargs):
        cmd = self._build_spark_submit_command(application)
        seen["cmd"] = cmd
        assert main(cmd[cmd.index(application) + 1:]) == 0

    monkeypatch.setattr(SparkSubmitHook, "submit", submit)
    params = dict(PARAMS, overrides=[*PARAMS["overrides"], f"storage.artifacts={tmp_path / 'artifacts'}",
                                     f"spark.jars_dir={REPO / 'var' / 'jars'}"])
    out = spark_submit.run_task("features", START, params)
    assert out == {"day": "2026-01-05", "read": {"impressions": 3}, "wrote": {"features_pin": {"rows": 5}}}
    assert calls == [(7, START)]

    cmd = seen["cmd"]
    assert cmd[:3] == ["spark-submit", "--master", "spark://127.0.0.1:7077"]
    conf = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    assert "delta-spark_4.2_2.13-4.4.0.jar" in conf["spark.jars"]
    assert conf["spark.pyspark.python"] == sys.executable
    assert cmd[cmd.index("--name") + 1] == "pinrec-features-2026-01-05"
    assert cmd[cmd.index("--py-files") + 1].endswith("pinrec.zip")
    app = cmd.index(str(REPO / "jobs" / "orchestration" / "spark_app.py"))
    result = cmd[app + 6]
    assert cmd[app + 1:app + 6] == ["task", "features", "--date", "2026-01-05", "--result"]
    assert result.startswith(f"{tmp_path / 'artifacts'}/_spark_submit/features-2026-01-05-")
    assert cmd[app + 7:] == [a for o in params["overrides"] for a in ("--set", o)]
    assert not Path(result).exists()  # read, then removed

    # A step skipped for short history raises the same error as in-process.
    def short(cfg, day):
        raise pinrec.jobs.orchestration.tasks.NotEnoughHistoryError("the training window ending 2026-01-05 holds 1 landed day(s)")

    monkeypatch.setattr(pinrec.jobs.orchestration.tasks, "training_set_window", short)
    with pytest.raises(pinrec.jobs.orchestration.tasks.NotEnoughHistoryError, match="holds 1 landed day"):
        spark_submit.run_task("training-set", START, params)


def _conn(host: str, **extra) -> str:
    return json.dumps({"conn_type": "spark", "host": host, "extra": extra})


@pytest.mark.parametrize(("conn", "artifacts", "expected"), [
    ("spark://127.0.0.1:7077", "./var/artifacts", "client"),
    (_conn("yarn", **{"deploy-mode": "client"}), "./var/artifacts", "client"),
    (_conn("yarn", **{"deploy-mode": "cluster"}), "s3://lake/artifacts", "cluster"),
])
def test_the_deploy_mode_comes_from_the_connection(airflow_home, monkeypatch, conn, artifacts, expected):
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.orchestration.spark_submit import deploy_mode

    monkeypatch.setenv(CONN, conn)
    cfg = load_config(overrides=parse_overrides([f"storage.artifacts={artifacts}"]))
    assert deploy_mode("pinrec_spark", cfg) == expected


@pytest.mark.parametrize(("conn", "artifacts", "message"), [
    (_conn("spark://10.0.0.1:7077", **{"deploy-mode": "cluster"}), "s3://lake/artifacts",
     "deploy-mode cluster on a standalone master .spark://10.0.0.1:7077.: Spark runs Python applications"),
    (_conn("yarn", **{"deploy-mode": "cluster"}), "./var/artifacts",
     ("driver on a cluster node .deploy-mode cluster., which writes the step's result under "
      "storage.artifacts='./var/artifacts'")),
    (_conn("yarn", **{"deploy-mode": "remote"}), "./var/artifacts", "deploy-mode 'remote': expected 'client' or 'cluster'"),
])
def test_a_cluster_deploy_mode_a_pinrec_step_cannot_run_in_is_refused_before_submitting(
        airflow_home, monkeypatch, conn, artifacts, message):
    """A standalone master runs no Python driver in cluster mode (spark-submit itself would refuse it,
    deep in the task's log), and a driver on a cluster node cannot write the result to this machine."""
    from pinrec.jobs.config import ConfigError, load_config, parse_overrides
    from pinrec.jobs.orchestration import spark_submit

    monkeypatch.setenv(CONN, conn)
    cfg = load_config(overrides=parse_overrides([f"storage.artifacts={artifacts}"]))
    monkeypatch.setattr("airflow.providers.apache.spark.hooks.spark_submit.SparkSubmitHook.submit",
                        lambda *a, **k: pytest.fail("submitted"))
    with pytest.raises(ConfigError, match=message):
        spark_submit.submit_step("features", cfg, START, "pinrec_spark")


def test_in_cluster_deploy_mode_the_driver_gets_the_clusters_python_and_no_address_of_this_machine():
    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.spark import submit_conf

    jars = str(REPO / "var" / "jars")
    cfg = SparkConfig(driver_host="airflow-worker.example", driver_bind_address="0.0.0.0", jars_dir=jars,
                      extra={"spark.pyspark.python": "/opt/venv/bin/python"})
    client = submit_conf(cfg)
    assert (client["spark.pyspark.python"], client["spark.pyspark.driver.python"]) == ("/opt/venv/bin/python", sys.executable)
    assert (client["spark.driver.host"], client["spark.driver.bindAddress"]) == ("airflow-worker.example", "0.0.0.0")
    cluster = submit_conf(cfg, cluster_mode=True)
    assert (cluster["spark.pyspark.python"], cluster["spark.pyspark.driver.python"]) == ("/opt/venv/bin/python",) * 2
    assert not {"spark.driver.host", "spark.driver.bindAddress"} & set(cluster)
    own = SparkConfig(jars_dir=jars, extra={"spark.pyspark.python": "/opt/venv/bin/python",
                                            "spark.pyspark.driver.python": "/opt/driver/bin/python"})
    assert submit_conf(own, cluster_mode=True)["spark.pyspark.driver.python"] == "/opt/driver/bin/python"


# ---------------------------------------------------------------- on a real standalone cluster
@pytest.fixture()
def cluster(tmp_path):
    """A Spark standalone master + one worker (1 core, 1g) on 127.0.0.1: (master URL, web UI URL)."""
    with running_standalone_cluster(tmp_path) as (url, _, webui):
        yield url, webui


def _xcoms(run) -> dict[str, dict]:
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.full  # 5 min on 2 cores; make test keeps the mocked spark-submit tests and the cluster tests
def test_daily_dag_through_spark_submit_matches_local_spark(airflow_home, spark, cluster, tmp_path, monkeypatch):
    """Days 1-2 are built once locally; day 3 (ingest, features, the first training set) then runs
    with the DAG on a copy of that warehouse twice: without a connection (local Spark) and with
    AIRFLOW_CONN_PINREC_SPARK pointing at the standalone cluster. Same XComs, same rows."""
    from airflow.dag_processing.dagbag import DagBag

    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.ingest.ingest import IngestPaths, ingest
    from pinrec.jobs.ingest.synthetic import generate

    url, webui = cluster
    days = [START + dt.timedelta(days=i) for i in range(3)]

    def overrides(warehouse: str) -> list[str]:
        return [f"storage.landing={tmp_path / 'landing'}", f"storage.warehouse={tmp_path / warehouse}",
                f"storage.artifacts={tmp_path / 'artifacts'}", "storage.shared_local=true", "spark.master=local[1]",
                "spark.shuffle_partitions=1", "spark.driver_memory=1g", f"spark.jars_dir={REPO / 'var' / 'jars'}",
                "synthetic.users=40", "synthetic.pins=200", "synthetic.days=3",
                "synthetic.impressions_per_day=800", f"synthetic.start_date={START.isoformat()}"]

    base = load_config(None, parse_overrides(overrides("base")))
    generate(base.synthetic, base.storage.landing, seed=base.seed)
    ingest(spark, IngestPaths(base.storage.landing, base.storage.warehouse), days[:2], base.ingest)
    build_features(spark, base.storage.warehouse, days[:2], base.features)
    for copy in ("local", "cluster"):
        shutil.copytree(tmp_path / "base", tmp_path / copy)

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("pinrec_daily")
    logical = dt.datetime.combine(days[2], dt.time(), tzinfo=dt.UTC)  # the run's day (dags/pinrec_daily._day)
    monkeypatch.delenv(CONN, raising=False)
    local = dag.test(logical_date=logical, run_conf={"overrides": overrides("local")})
    assert str(local.state) == "success", _xcoms(local)
    local_xcoms = _xcoms(local)  # read now: the second dag.test of this date replaces the run
    monkeypatch.setenv(CONN, url)
    submitted = dag.test(logical_date=logical, run_conf={"overrides": overrides("cluster")})
    assert str(submitted.state) == "success", _xcoms(submitted)

    # Same task ids, same XComs (rows, Delta versions read and written) in both modes.
    submitted_xcoms = _xcoms(submitted)
    assert set(submitted_xcoms) == {"ingest", "features", "training_set"}
    assert submitted_xcoms == local_xcoms
    assert submitted_xcoms["training_set"]["days"] == [d.isoformat() for d in days]
    rows = {w: spark.read.format("delta").load(str(tmp_path / w / "training_set")).count() for w in ("local", "cluster")}
    assert rows["cluster"] == rows["local"] == local_xcoms["training_set"]["wrote"]["training_set"]["rows"] > 0

    # The three tasks ran as applications of the standalone master, one executor each on its worker.
    with urllib.request.urlopen(f"{webui}/json", timeout=10) as r:
        state = json.load(r)
    apps = {a["name"]: a for a in state["completedapps"] + state["activeapps"]}
    assert {f"pinrec-{s}-{days[2]}" for s in ("ingest", "features", "training-set")} <= set(apps)
    assert len(list((tmp_path / "work").glob("app-*"))) >= 3
    assert not list((tmp_path / "artifacts" / "_spark_submit").glob("*.json"))
