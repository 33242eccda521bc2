"""The daily DAG run for real with `dag.test()` on a tiny synthetic world: ingest -> features ->
training set per data interval, skipped while history is too short, idempotent on re-run."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.repo import REPO
from tests.support.tiny_world import tiny_world_overrides

# make test-all only (``full``: 3.4 min idle on 2026-12-06): make test runs the daily DAG under the real
# scheduler (tests/dags/test_scheduler.py, its backfilled day) and dag.test() on the training DAG
pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow, pytest.mark.full]

START = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def world(tmp_path_factory, spark):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.synthetic import generate

    root = tmp_path_factory.mktemp("daily_dag")
    overrides = tiny_world_overrides(root, START, 3, impressions_per_day=800, training=False)
    from pinrec.jobs.config import parse_overrides

    cfg = load_config(None, parse_overrides(overrides))
    generate(cfg.synthetic, cfg.storage.landing, seed=cfg.seed)
    return cfg, overrides


def _run(dag, day: dt.date, overrides: list[str]):
    logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return dag.test(logical_date=logical, run_conf={"overrides": overrides})


def _states(dagrun) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}


def test_daily_dag_builds_the_training_set_day_by_day(airflow_home, world, spark):
    from airflow.dag_processing.dagbag import DagBag

    cfg, overrides = world
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("pinrec_daily")
    states = []
    for i in range(3):
        run = _run(dag, START + dt.timedelta(days=i), overrides)
        assert str(run.state) == "success", _states(run)
        states.append(_states(run))
    # Days 1-2 cannot hold train + validation + test days: the training set is skipped, not failed.
    assert [s["training_set"] for s in states] == ["skipped", "skipped", "success"]
    assert all(s["ingest"] == "success" and s["features"] == "success" for s in states)

    table = spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set")
    by_split = {r["split"]: r["n"] for r in table.groupBy("split").count().withColumnRenamed("count", "n").collect()}
    assert set(by_split) == {"train", "validation", "test"}
    impressions = spark.read.format("delta").load(f"{cfg.storage.warehouse}/impressions")
    assert sorted(r[0] for r in impressions.select("dt").distinct().collect()) == [
        START + dt.timedelta(days=i) for i in range(3)]
    rows = table.count()

    versions = {t: _version(spark, cfg, t) for t in ("impressions", "features_user", "training_set")}

    # A re-run of the last interval with nothing changed: every task reuses its output (the step cache).
    run = _run(dag, START + dt.timedelta(days=2), overrides)
    assert str(run.state) == "success", _states(run)
    xcoms = _xcoms(run)
    assert {t: x["cache"]["cached"] for t, x in xcoms.items()} == {"ingest": True, "features": True,
                                                                     "training_set": True}
    assert all(x["wrote"] == {} for x in xcoms.values())
    assert xcoms["training_set"]["reused"]["training_set"]["delta_version"] == versions["training_set"]
    assert {t: _version(spark, cfg, t) for t in versions} == versions  # nothing was written

    # A landed file of the day changed (a duplicate row: new content, the same rows once deduplicated): the
    # day's tasks run again and replace their outputs: the same rows, not twice as many.
    day2 = START + dt.timedelta(days=2)
    pins = next(p for p in (Path(cfg.storage.landing) / "pins" / f"dt={day2}").iterdir() if not p.name.startswith("."))
    lines = pins.read_bytes().splitlines()
    pins.write_bytes(b"\n".join([*lines, lines[-1]]) + b"\n")
    run = _run(dag, day2, overrides)
    assert str(run.state) == "success", _states(run)
    xcoms = _xcoms(run)
    assert {t: x["cache"]["cached"] for t, x in xcoms.items()} == {"ingest": False, "features": False,
                                                                     "training_set": False}
    assert xcoms["ingest"]["wrote"]["pins"]["duplicates_dropped"] >= 1
    assert spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set").count() == rows
    assert spark.read.format("delta").load(f"{cfg.storage.warehouse}/impressions").count() == impressions.count()
    assert all(_version(spark, cfg, t) > v for t, v in versions.items())


def _version(spark, cfg, table: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, f"{cfg.storage.warehouse}/{table}").history(1).collect()[0]["version"]


def _xcoms(dagrun) -> dict[str, dict]:
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in dagrun.get_task_instances()}
