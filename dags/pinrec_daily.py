"""
### pinrec daily: ingest + validate -> feature tables -> point-in-time training set

For the run's day, its logical date (the start of its one-day data interval [D, D+1); the run
starts once the day is over):

1. **ingest**: validate the landed partitions of that day into Delta; bad rows go to quarantine
   (`pinrec.jobs.orchestration.tasks.ingest_day`, the same job as `pinrec ingest --date D`);
2. **features**: the daily user, pin and user x category feature tables of that day
   (`pinrec features --date D`);
3. **training_set**: the point-in-time training set of the training window ending that day
   (`training.window_days`); skipped while fewer days exist than the temporal split needs.
   On success it emits the Asset `pinrec_training_set`, which schedules `pinrec_training`; the
   event's extra carries the day, the table's Delta version and this run's `config`/`overrides`.

Every task replaces exactly its day's partitions, so a re-run or `airflow backfill create` of a
date range is idempotent. Each task returns what it read (Delta versions) and wrote (its XCom).
Each goes through the step cache (config section `cache`, as `pinrec demo`): a day whose landed
files (and those of the days before it), code and config did not change is not recomputed; its XCom
then says `"cache": {"cached": true, ...}` and names what it reuses. Override
`cache.enabled=false`, or `cache.force=[ingest]` for one step.

Params: `config` (a pinrec YAML file; default: built-in defaults), `overrides`
(`section.key=value` strings, as `pinrec --set`) and `spark_conn_id` (default `pinrec_spark`).

Spark: when the Airflow connection `spark_conn_id` exists (e.g. `AIRFLOW_CONN_PINREC_SPARK=
spark://host:7077`), each task runs its step through `SparkSubmitHook` on that cluster
(`pinrec task <step> --date D`, the same function); otherwise in-process on local Spark
(`spark.master`). Looked up when the task runs; task ids and XComs are the same either way
(`pinrec.jobs.orchestration.spark_submit`).
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

TRAINING_SET = Asset(name="pinrec_training_set", uri="pinrec://warehouse/training_set")

DEFAULT_ARGS = {
    "owner": "pinrec-data-eng",
    "retries": 2,  # Spark/Delta hiccups (a lost executor, a commit conflict) deserve a retry
    "retry_delay": dt.timedelta(minutes=5),
}


def _day(logical_date) -> dt.date:
    """The run's day: its logical date, which is the data interval's start for scheduled and backfill
    runs (and what `dag.test(logical_date=D)` names, whose inferred interval is the day before). Airflow 3
    allows a manual run without one (a REST trigger with logical_date null): which day it means is not
    known, so it is refused by name rather than guessed."""
    if logical_date is None:
        raise ValueError("pinrec_daily processes one day: trigger it with a logical date (the day to ingest, "
                         "YYYY-MM-DD); this run has none")
    return dt.date(logical_date.year, logical_date.month, logical_date.day)


@dag(
    dag_id="pinrec_daily",
    doc_md=__doc__,
    # a run covers the day [D, D+1) and starts after it ends; "@daily" alone is a CronTriggerTimetable
    # in Airflow 3 (create_cron_data_intervals=False): a zero-length interval at D 00:00, which would
    # process day D as it begins
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    catchup=False,  # history is filled on purpose with `airflow backfill create`, not on deploy
    max_active_runs=1,  # days share Delta tables; one writer at a time keeps commits simple
    default_args=DEFAULT_ARGS,
    tags=["pinrec", "daily", "spark"],
    params={
        "config": Param(None, type=["null", "string"], description="pinrec YAML config file"),
        "overrides": Param([], type="array", description="section.key=value overrides"),
        "spark_conn_id": Param("pinrec_spark", type=["null", "string"],
                               description="Airflow Spark connection: spark-submit to it when it exists, "
                                           "else local Spark (null: always local)"),
    },
)
def pinrec_daily():
    @task
    def ingest(params=None, logical_date=None) -> dict:
        from pinrec.jobs.orchestration.spark_submit import run_task

        return run_task("ingest", _day(logical_date), params)

    @task
    def features(ingested: dict, params=None, logical_date=None) -> dict:
        from pinrec.jobs.orchestration.spark_submit import run_task

        return run_task("features", _day(logical_date), params)

    @task(outlets=[TRAINING_SET])
    def training_set(featured: dict, params=None, logical_date=None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pinrec.jobs.orchestration.spark_submit import run_task
        from pinrec.jobs.orchestration.tasks import NotEnoughHistoryError

        try:
            out = run_task("training-set", _day(logical_date), params)
        except NotEnoughHistoryError as e:
            raise AirflowSkipException(str(e)) from None
        # the training DAG reads the day (and the table version) from the Asset event, and the run's
        # config + overrides: an Asset-triggered run has no conf of its own
        # (a training set reused from the step cache emits the event too: the training run then reuses its steps)
        table = {**out.get("reused", {}), **out["wrote"]}["training_set"]
        outlet_events[TRAINING_SET].extra = {"day": out["day"], "delta_version": table["delta_version"],
                                             "config": params["config"], "overrides": list(params["overrides"])}
        return out

    training_set(features(ingest()))


pinrec_daily()
