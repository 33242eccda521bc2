"""
### pinrec training: graph -> PinSage -> index, ranker, two-tower; CF -> funnel -> blessing gate -> publish -> report, Redis

Scheduled on the Asset `pinrec_training_set` (emitted by `pinrec_daily` when a day's training set
is written); the day comes from that Asset event, or from the `day` param (default: the newest
landed day) when triggered by hand.

1. **graph**: the Pin-Board graph as of the end of the day (`pinrec graph`);
2. **retrieval_settings**: PinSage's data-dependent settings (positive pairs, window, history
   half-life, id-embedding scale) chosen on the graph's validation split within
   `retrieval_eval.tune_budget_s` (the `eval-retrieval --tune` search), MLflow-tracked and kept under
   `<artifacts>/retrieval_settings/`; skipped unless `retrieval_eval.tune_in_training`;
   **pinsage**: train PinSage with those settings, embed every pin (`pinrec pinsage`), MLflow-tracked;
3. **index**: the tuned, sharded FAISS index over those embeddings (`pinrec index`);
   **two_tower** (in parallel): the two-tower retrieval model on the training set and those
   embeddings, its ONNX user tower and the index of its pin tower (`pinrec two-tower`);
4. **ranker** (in parallel with the index): train, calibrate, evaluate and export the ranker to
   ONNX with the new embeddings as features (`pinrec ranker`);
5. **cf** (in parallel with the graph and PinSage): ALS on the engagement before the test days, the
   `cf` channel's factors and index (`pinrec cf`), MLflow-tracked;
   **funnel** (after the index and the ranker): replay the day through `recommend()` on the bundle
   `channels/prod` serves now, the champion, with the features as of the day's start (`pinrec
   eval-funnel`); skipped before the first publish;
6. **publish**: assemble the bundle (index + ranker + pins + feature snapshot + two-tower + cf), replay
   the day on it the same way (its funnel goes into the manifest), judge it against
   the version `channels/prod` points to (the blessing gate) and promote it if blessed
   (`pinrec publish bundle`); its XCom names the bundle version, the verdict and the MLflow model versions.
7. **report**: the run report of that bundle version, one static HTML file under
   `<artifacts>/reports/` (rows and quarantine, drift, PinSage loss and stability, recall, ranker
   calibration, index candidates, the verdict; `pinrec report`);
   **online_features** (in parallel): the feature snapshot of the bundle the channel now serves,
   written to Redis, the online store serving reads first (`pinrec publish online-features`);
   skipped unless `redis.url` is set.

Each task returns what it read (Delta versions) and wrote, and the MLflow run it logged to.
Every step but the funnel replay and `report` goes through the step cache
(config section `cache`, as `pinrec demo`): re-running a day whose tables, code and config did not
change reuses the graph, the models, the index and the bundle published last time (its XCom says
`"cache": {"cached": true, ...}`); with a change, exactly the steps it reaches run again, and a new,
immutable bundle version is published. `cache.enabled=false` (or `cache.force=[publish]`, ...) rebuilds.

Params: `config`, `overrides`, `spark_conn_id` (as `pinrec_daily`: with that Airflow connection
the **graph** step, pure Spark, goes through spark-submit; the torch steps read their tables with
local Spark on the Airflow worker), `day` (YYYY-MM-DD or null). When `config` and
`overrides` are both empty (always so in an Asset-triggered run), the tasks use those of the daily
run that emitted the newest triggering event (its extra); a manual trigger's params win.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

# Same name and URI as in pinrec_daily: Airflow identifies an Asset by them.
TRAINING_SET = Asset(name="pinrec_training_set", uri="pinrec://warehouse/training_set")

DEFAULT_ARGS = {
    "owner": "pinrec-ml",
    "retries": 1,  # training is expensive: retry once (a lost Spark executor), then page someone
    "retry_delay": dt.timedelta(minutes=10),
}


def _run_params(params, triggering_asset_events=None) -> dict:
    """The run's params; when both are empty (an Asset-triggered run has no conf), the config and
    overrides of the daily run that emitted the newest triggering event."""
    config, overrides = params["config"], params["overrides"]
    if not config and not overrides and triggering_asset_events:
        events = triggering_asset_events[TRAINING_SET]
        if events:
            config, overrides = events[-1].extra.get("config"), events[-1].extra.get("overrides")
    return {"config": config, "overrides": list(overrides or []), "spark_conn_id": params["spark_conn_id"]}


def _output(result: dict, name: str):
    """What a task wrote under ``name``, or reused from the step cache (its XCom's ``reused``)."""
    return {**result.get("reused", {}), **result["wrote"]}[name]


def _config(params, triggering_asset_events=None):
    from pinrec.jobs.orchestration.tasks import config_from_params

    run = _run_params(params, triggering_asset_events)
    return config_from_params(run["config"], run["overrides"])


@dag(
    dag_id="pinrec_training",
    doc_md=__doc__,
    schedule=[TRAINING_SET],
    start_date=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # one publisher at a time (the channel move is a compare-and-swap anyway)
    default_args=DEFAULT_ARGS,
    tags=["pinrec", "training", "spark", "torch"],
    params={
        "config": Param(None, type=["null", "string"], description="pinrec YAML config file"),
        "overrides": Param([], type="array", description="section.key=value overrides"),
        "day": Param(None, type=["null", "string"], description="day to build for (default: the Asset event's)"),
        "spark_conn_id": Param("pinrec_spark", type=["null", "string"],
                               description="Airflow Spark connection for the graph step (as pinrec_daily)"),
    },
)
def pinrec_training():
    @task
    def plan(params=None, triggering_asset_events=None) -> str:
        from pinrec.jobs.orchestration.tasks import training_day

        requested = params["day"]
        if not requested and triggering_asset_events:
            events = triggering_asset_events[TRAINING_SET]
            requested = events[-1].extra.get("day") if events else None
        return training_day(_config(params, triggering_asset_events), requested).isoformat()

    @task
    def graph(day: str, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.spark_submit import run_task

        return run_task("graph", dt.date.fromisoformat(day), _run_params(params, triggering_asset_events))

    @task
    def retrieval_settings(built: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import retrieval_settings as choose

        return choose(_config(params, triggering_asset_events))

    @task
    def pinsage(chosen: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import (
            pinsage_embeddings,
            with_retrieval_settings,
        )

        out = pinsage_embeddings(with_retrieval_settings(_config(params, triggering_asset_events), chosen))
        return {**out, "settings": chosen.get("settings", {})}

    @task
    def index(embedded: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import pin_index

        return pin_index(_config(params, triggering_asset_events))

    @task
    def two_tower(embedded: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import two_tower_model

        return two_tower_model(_config(params, triggering_asset_events))

    @task
    def ranker(embedded: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import ranker_model

        return ranker_model(_config(params, triggering_asset_events))

    @task
    def cf(day: str, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import cf_factors

        return cf_factors(_config(params, triggering_asset_events), dt.date.fromisoformat(day))

    @task
    def funnel(day: str, indexed: dict, ranked: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import funnel_day

        return funnel_day(_config(params, triggering_asset_events), dt.date.fromisoformat(day))

    @task
    def publish(day: str, indexed: dict, ranked: dict, towers: dict, factored: dict, champion: dict, params=None,
                triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import publish_day

        out = publish_day(_config(params, triggering_asset_events), dt.date.fromisoformat(day),
                          index_dir=_output(indexed, "index"), ranker_dir=_output(ranked, "ranker"),
                          two_tower_dir=_output(towers, "two_tower"), cf_dir=_output(factored, "cf"), champion=champion)
        out["mlflow_run_ids"] = {"ranker": ranked["mlflow_run_id"], "index": indexed["mlflow_run_id"],
                                 "two_tower": towers["mlflow_run_id"], "cf": factored["mlflow_run_id"]}
        out["champion_funnel"] = champion.get("metrics", {})
        if out["cache"]["cached"]:
            print(f"[publish] cached (fingerprint {out['cache']['fingerprint'][:12]}): {out['name']}/{out['version']} "
                  f"holds exactly this run's models and data")
        print(f"published {out['name']}/{out['version']} to {out['store_uri']}: promoted={out['promoted']} "
              f"blessed={out['blessed']} {out['reasons'] or ''}; MLflow runs {out['mlflow_run_ids']}, "
              f"registry {out['registered']}")
        return out

    @task
    def online_features(published: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import online_features

        out = online_features(_config(params, triggering_asset_events))
        print(f"[online features] {out.get('summary') or 'skipped: ' + out['skipped']}")
        return out

    @task
    def report(published: dict, params=None, triggering_asset_events=None) -> dict:
        from pinrec.jobs.orchestration.tasks import run_report

        return run_report(_config(params, triggering_asset_events), published["version"],
                          reuse=published["cache"]["cached"])

    day = plan()
    embedded = pinsage(retrieval_settings(graph(day)))
    indexed, ranked = index(embedded), ranker(embedded)
    published = publish(day, indexed, ranked, two_tower(embedded), cf(day), funnel(day, indexed, ranked))
    report(published)
    online_features(published)


pinrec_training()
