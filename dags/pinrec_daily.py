"""
### pinrec daily: ingest + validate -> feature tables -> point-in-time training set

For the run's data interval (one day, `data_interval_start`):

1. **ingest**: validate the landed partitions of that day into Delta; bad rows go to quarantine
   (`jobs.tasks.ingest_day`, the same job as `pinrec ingest --date D`);
2. **features**: the daily user, pin and user x category feature tables of that day
   (`pinrec features --date D`);
3. **training_set**: the point-in-time training set of the training window ending that day
   (`training.window_days`); skipped while fewer days exist than the temporal split needs.
   On success it emits the Asset `pinrec_training_set`, which schedules `pinrec_training`.

Every task replaces exactly its day's partitions, so a re-run or `airflow backfill create` of a
date range is idempotent. Each task returns what it read (Delta versions) and wrote (its XCom).

Params: `config` (a pinrec YAML file; default: built-in defaults) and `overrides`
(`section.key=value` strings, as `pinrec --set`).
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

TRAINING_SET = Asset(name="pinrec_training_set", uri="pinrec://warehouse/training_set")

DEFAULT_ARGS = {
    "owner": "pinrec-data-eng",
    "retries": 2,  # Spark/Delta hiccups (a lost executor, a commit conflict) deserve a retry
    "retry_delay": dt.timedelta(minutes=5),
}


def _day(data_interval_start) -> dt.date:
    return dt.date(data_interval_start.year, data_interval_start.month, data_interval_start.day)


@dag(
    dag_id="pinrec_daily",
    doc_md=__doc__,
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    catchup=False,  # history is filled on purpose with `airflow backfill create`, not on deploy
    max_active_runs=1,  # days share Delta tables; one writer at a time keeps commits simple
    default_args=DEFAULT_ARGS,
    tags=["pinrec", "daily", "spark"],
    params={
        "config": Param(None, type=["null", "string"], description="pinrec YAML config file"),
        "overrides": Param([], type="array", description="section.key=value overrides"),
    },
)
def pinrec_daily():
    @task
    def ingest(params=None, data_interval_start=None) -> dict:
        from jobs.tasks import config_from_params, ingest_day

        return ingest_day(config_from_params(params["config"], params["overrides"]), _day(data_interval_start))

    @task
    def features(ingested: dict, params=None, data_interval_start=None) -> dict:
        from jobs.tasks import config_from_params, features_day

        return features_day(config_from_params(params["config"], params["overrides"]), _day(data_interval_start))

    @task(outlets=[TRAINING_SET])
    def training_set(featured: dict, params=None, data_interval_start=None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs.tasks import (
            NotEnoughHistoryError,
            config_from_params,
            training_set_window,
        )

        try:
            out = training_set_window(config_from_params(params["config"], params["overrides"]),
                                      _day(data_interval_start))
        except NotEnoughHistoryError as e:
            raise AirflowSkipException(str(e)) from None
        # the training DAG reads the day (and the table version) from the Asset event
        outlet_events[TRAINING_SET].extra = {"day": out["day"],
                                             "delta_version": out["wrote"]["training_set"]["delta_version"]}
        return out

    training_set(features(ingest()))


pinrec_daily()
