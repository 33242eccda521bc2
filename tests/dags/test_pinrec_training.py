"""The training DAG run for real with `dag.test()` on a tiny synthetic world whose daily steps ran:
graph -> PinSage -> index, ranker -> publish; the published bundle loads and is the channel's."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.repo import REPO
from tests.support.tiny_world import tiny_world_overrides

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

START = dt.date(2026, 1, 5)
DAYS = 3
SETTINGS_ON = ["retrieval_eval.tune_in_training=true", "retrieval_eval.tune_budget_s=20"]


@pytest.fixture(scope="module")
def daily_done(tmp_path_factory, spark):
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.orchestration.tasks import (
        features_day,
        ingest_day,
        training_set_window,
    )

    root = tmp_path_factory.mktemp("training_dag")
    overrides = tiny_world_overrides(root, START, DAYS)
    cfg = load_config(None, parse_overrides(overrides))
    generate(cfg.synthetic, cfg.storage.landing, seed=cfg.seed)
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    for day in days:  # what pinrec_daily does (its own dag.test() is tested in test_pinrec_daily)
        ingest_day(cfg, day)
        features_day(cfg, day)
    built = training_set_window(cfg, days[-1])
    # the same steps again reuse what they wrote (the step cache), saying so in their XCom
    again = ingest_day(cfg, days[-1]), features_day(cfg, days[-1]), training_set_window(cfg, days[-1])
    assert [x["cache"]["cached"] for x in again] == [True, True, True] and all(x["wrote"] == {} for x in again)
    assert again[2]["reused"]["training_set"]["delta_version"] == built["wrote"]["training_set"]["delta_version"]
    return cfg, overrides


def test_training_dag_publishes_a_bundle_the_loader_opens(airflow_home, daily_done, spark, redis_url):
    from airflow.dag_processing.dagbag import DagBag

    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
    from pinrec.export.serving.loader import load

    cfg, overrides = daily_done
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("pinrec_training")
    # the first run chooses PinSage's settings on the graph (a short budget: the search is not what is tested here)
    run = dag.test(run_conf={"overrides": [*overrides, *SETTINGS_ON]})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    assert set(states.values()) == {"success"} and set(states) == {"plan", "graph", "retrieval_settings", "pinsage",
                                                                   "cf", "index", "ranker", "two_tower", "funnel",
                                                                   "publish", "report", "online_features"}
    _check_settings_reached_pinsage(spark, cfg, {ti.task_id: ti for ti in run.get_task_instances()})
    published = {ti.task_id: ti for ti in run.get_task_instances()}["publish"].xcom_pull(task_ids="publish")
    assert published["day"] == (START + dt.timedelta(days=DAYS - 1)).isoformat()  # default: newest landed day
    assert published["promoted"] and published["blessed"]
    assert published["mlflow_run_ids"]["ranker"] and published["mlflow_run_ids"]["index"] and published["mlflow_run_ids"]["cf"]
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    assert bundle.version == published["version"]
    assert bundle.manifest.lineage.mlflow_run_ids["ranker"] == published["mlflow_run_ids"]["ranker"]
    assert bundle.manifest.lineage.mlflow_run_ids["cf"] == published["mlflow_run_ids"]["cf"]  # the cf task's factors
    assert bundle.pins.num_rows > 0 and bundle.ntotal > 0
    reported = {ti.task_id: ti for ti in run.get_task_instances()}["report"].xcom_pull(task_ids="report")
    assert reported["version"] == bundle.version
    assert reported["wrote"]["report"].endswith(f"/reports/{bundle.version}.html")
    title = f"<title>pinrec run report: {cfg.publish.name}/{bundle.version}</title>"
    assert title in Path(reported["wrote"]["report"]).read_text()

    online = {ti.task_id: ti for ti in run.get_task_instances()}["online_features"].xcom_pull(task_ids="online_features")
    assert online == {"skipped": "redis.url is not set: serving reads the bundle's own snapshot"}

    # a re-run of the same day publishes a new immutable version and moves the channel to it; with
    # redis.url set, the online store gets that version's snapshot
    rerun = dag.test(run_conf={"overrides": [*overrides, f"redis.url={redis_url}"], "day": published["day"]})
    assert str(rerun.state) == "success"
    online = {ti.task_id: ti for ti in rerun.get_task_instances()}["online_features"].xcom_pull(task_ids="online_features")
    snapshot = FeatureSnapshot.from_bundle(load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel))
    assert online["url"] == redis_url and online["rows"] == {v: snapshot.view(v).num_rows for v in snapshot.views}
    skipped = {ti.task_id: ti for ti in rerun.get_task_instances()}["retrieval_settings"].xcom_pull(
        task_ids="retrieval_settings")
    assert skipped["skipped"] == "retrieval_eval.tune_in_training is off" and skipped["settings"] == {}
    again = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    assert again.version != bundle.version and again.manifest.blessing.baseline_version == bundle.version

    # the same run once more, nothing changed: every cached step reuses its output, no bundle is published
    third = dag.test(run_conf={"overrides": overrides, "day": published["day"]})
    tis = {ti.task_id: ti for ti in third.get_task_instances()}
    assert str(third.state) == "success", {t: str(ti.state) for t, ti in tis.items()}
    xcoms = {t: ti.xcom_pull(task_ids=t) for t, ti in tis.items()}
    cached = ("graph", "pinsage", "cf", "index", "ranker", "two_tower", "publish")
    assert {t: xcoms[t]["cache"]["cached"] for t in cached} == dict.fromkeys(cached, True)
    assert all(xcoms[t]["wrote"] == {} for t in cached)
    assert xcoms["publish"]["version"] == again.version and not xcoms["publish"]["promoted"]
    assert load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel).version == again.version
    assert xcoms["report"]["reused"]["report"].endswith(f"/reports/{again.version}.html")

    # the settings search on the same graph: the first run's choice, reused from its file (no search, no MLflow run)
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.orchestration.tasks import retrieval_settings

    first = {ti.task_id: ti for ti in run.get_task_instances()}["retrieval_settings"].xcom_pull(task_ids="retrieval_settings")
    reused = retrieval_settings(load_config(None, parse_overrides([*overrides, *SETTINGS_ON])))
    assert reused["cache"]["cached"] and reused["cache"]["fingerprint"] == first["cache"]["fingerprint"]
    assert reused["settings"] == first["settings"] and reused["trials"] == first["trials"]
    assert reused["wrote"] == {} and reused["reused"] == {"retrieval_settings": first["wrote"]["retrieval_settings"]}
    changed = retrieval_settings(load_config(None, parse_overrides([*overrides, *SETTINGS_ON,
                                                                    "retrieval_eval.tune_budget_s=1"])))
    assert not changed["cache"]["cached"] and changed["wrote"]["retrieval_settings"]  # a config change searches again


def _check_settings_reached_pinsage(spark, cfg, tis) -> None:
    """The retrieval_settings task's choice: recorded (XCom, artifact, MLflow) and what PinSage trained with."""
    import json

    from delta.tables import DeltaTable
    from mlflow import MlflowClient

    from pinrec.jobs.pinsage.pinsage_settings import TUNED

    chosen = tis["retrieval_settings"].xcom_pull(task_ids="retrieval_settings")
    assert chosen["skipped"] is None and set(chosen["settings"]) == set(TUNED) and chosen["trials"]
    assert sum(t["chosen"] for t in chosen["trials"]) >= 1 and chosen["read"]["graph_edges"] >= 0
    with open(chosen["wrote"]["retrieval_settings"]) as f:
        assert json.load(f)["settings"] == chosen["settings"]
    run = MlflowClient(cfg.storage.mlflow_tracking_uri).get_run(chosen["mlflow_run_id"])
    assert run.info.run_name == "select-settings" and run.info.status == "FINISHED"
    embedded = tis["pinsage"].xcom_pull(task_ids="pinsage")
    assert embedded["settings"] == chosen["settings"]
    meta = json.loads(DeltaTable.forPath(spark, f"{cfg.storage.warehouse}/pin_embeddings").history(1)
                      .collect()[0]["userMetadata"])
    assert {k: meta["train_config"][k] for k in TUNED} == chosen["settings"]  # PinSage trained with the choice
