"""One function per scheduled step, for one data interval: what a DAG task (or a notebook) calls.

Each takes the validated :class:`~pinrec.jobs.config.PinrecConfig` and the interval's day, calls the same
job function as the CLI, and returns a small JSON-able dict: what it read (Delta versions, as the
job's catalog recorded them: :mod:`pinrec.jobs.io.catalog`) and what it wrote. Airflow stores that as the task's XCom, so a run's lineage is visible in the UI and
in the logs. Every step replaces exactly the partitions of its day (or window), so a re-run or a
backfill of a date is idempotent.

The steps the demo caches go through the same step cache here
(:mod:`pinrec.jobs.orchestration.step_cache`, config section ``cache``): ingest and features of the
day, the training set, graph, PinSage, two-tower, cf, ranker, index and publish. A step whose recorded
fingerprint equals the one computed now is skipped; its result then says ``"cache": {"cached": true,
...}``, has ``"wrote": {}`` and names under ``"reused"`` what it reuses (the Delta version or the
folder). The fingerprints are the demo's, so a DAG run reuses what ``pinrec demo`` built and the
other way round.

A facade: the functions live in four modules and are importable from here as before (the DAGs,
``pinrec task`` (:func:`~pinrec.jobs.orchestration.spark_submit.run_step` looks each one up here) and
notebooks import them from this module):

- :mod:`pinrec.jobs.orchestration.task_context`: :func:`config_from_params` and what every step shares
  (the Spark session, the step cache's steps, a result's ``cache`` entry);
- :mod:`pinrec.jobs.orchestration.daily_tasks`: the daily DAG's :func:`ingest_day`, :func:`features_day`,
  :func:`training_set_window`, the window they build (:func:`training_window`, :func:`window_config`) and
  :class:`NotEnoughHistoryError`;
- :mod:`pinrec.jobs.orchestration.training_tasks`: the training DAG's :func:`training_day`,
  :func:`graph_day`, :func:`retrieval_settings`, :func:`with_retrieval_settings`,
  :func:`pinsage_embeddings`, :func:`cf_factors`, :func:`pin_index`, :func:`two_tower_model`,
  :func:`ranker_model`;
- :mod:`pinrec.jobs.orchestration.publish_tasks`: :func:`funnel_day`, :func:`publish_day`,
  :func:`run_report`, :func:`online_features`.
"""
from __future__ import annotations

from .daily_tasks import (
    NotEnoughHistoryError,
    features_day,
    ingest_day,
    training_set_window,
    training_window,
    window_config,
)
from .publish_tasks import funnel_day, online_features, publish_day, run_report
from .task_context import config_from_params
from .training_tasks import (
    cf_factors,
    graph_day,
    pin_index,
    pinsage_embeddings,
    ranker_model,
    retrieval_settings,
    training_day,
    two_tower_model,
    with_retrieval_settings,
)

__all__ = [
    "NotEnoughHistoryError",
    "cf_factors",
    "config_from_params",
    "features_day",
    "funnel_day",
    "graph_day",
    "ingest_day",
    "online_features",
    "pin_index",
    "pinsage_embeddings",
    "publish_day",
    "ranker_model",
    "retrieval_settings",
    "run_report",
    "training_day",
    "training_set_window",
    "training_window",
    "two_tower_model",
    "window_config",
    "with_retrieval_settings",
]
