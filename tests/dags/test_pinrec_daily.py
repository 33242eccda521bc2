"""The daily DAG run for real with `dag.test()` on a tiny synthetic world: ingest -> features ->
training set per data interval, skipped while history is too short, idempotent on re-run."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.support.repo import REPO
from tests.support.tiny_world import tiny_world_overrides

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

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

    # A re-run of the last interval replaces its outputs: same rows, not twice as many.
    run = _run(dag, START + dt.timedelta(days=2), overrides)
    assert str(run.state) == "success"
    assert spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set").count() == rows
    assert spark.read.format("delta").load(f"{cfg.storage.warehouse}/impressions").count() == impressions.count()
