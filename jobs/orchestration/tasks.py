"""One function per scheduled step, for one data interval: what a DAG task (or a notebook) calls.

Each takes the validated :class:`~pinrec.jobs.config.PinrecConfig` and the interval's day, calls the same
job function as the CLI, and returns a small JSON-able dict: what it read (Delta versions, as the
job's catalog recorded them: :mod:`pinrec.jobs.io.catalog`) and what it wrote. Airflow stores that as the task's XCom, so a run's lineage is visible in the UI and
in the logs. Every step replaces exactly the partitions of its day (or window), so a re-run or a
backfill of a date is idempotent.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence

from pinrec.jobs.config import PinrecConfig, load_config, parse_overrides
from pinrec.jobs.io.tracking import mlflow_artifact_root

log = logging.getLogger(__name__)


class NotEnoughHistoryError(ValueError):
    """The window ending at the interval's day does not hold enough days for the temporal split."""


def config_from_params(config_file: str | None, overrides: Sequence[str] | None) -> PinrecConfig:
    """The DAG run's configuration: a YAML file (or defaults) plus ``section.key=value`` overrides,
    and the worker's AWS variables (S3 endpoint and region of the bundle store) as the CLI reads them."""
    return load_config(config_file or None, parse_overrides(list(overrides or [])), env=os.environ)


def _spark(cfg: PinrecConfig):
    from pinrec.jobs.io.spark import get_spark

    return get_spark(cfg.spark, cfg.storage.spark_s3)


def ingest_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Validate the landed partitions of ``day`` into Delta (bad rows to quarantine)."""
    from pinrec.jobs.ingest.ingest import IngestPaths, ingest

    reports = ingest(_spark(cfg), IngestPaths(cfg.storage.location("landing"), cfg.storage.warehouse), [day], cfg.ingest)
    out = {"day": day.isoformat(), "wrote": {}}
    for report in reports:
        log.info("[ingest] %s", report.summary_line())
        out["wrote"][report.table] = {"rows_valid": report.rows_valid, "rows_quarantined": report.rows_quarantined,
                                      "duplicates_dropped": report.duplicates_dropped,
                                      "delta_version": report.delta_version}
    return out


def features_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Build the daily feature tables for ``day`` (replacing that day's partitions)."""
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.catalog import feature_table
    from pinrec.schemas.features import FEATURE_VIEWS

    catalog = Catalog(_spark(cfg), cfg.storage.warehouse)
    rows = build_features(catalog.spark, catalog, [day], cfg.features)
    read = catalog.reads
    wrote = {feature_table(v): {"rows": rows[v.name], "delta_version": catalog.writes[feature_table(v)]}
             for v in FEATURE_VIEWS}
    log.info("[features] %s read %s wrote %s", day, read, wrote)
    return {"day": day.isoformat(), "read": read, "wrote": wrote}


def training_window(cfg: PinrecConfig, day: dt.date) -> list[dt.date]:
    """The ingested days of the training window that ends at ``day``.

    ``training.window_days`` days (0: every ingested day up to ``day``). Raises
    :class:`NotEnoughHistoryError` while the window cannot hold train + validation + test days.
    """
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    first = dt.date.min if cfg.training.window_days == 0 else day - dt.timedelta(days=cfg.training.window_days - 1)
    days = event_days(cfg.storage.location("landing"), first, day, lambda: Catalog(_spark(cfg), cfg.storage.warehouse))
    needed = cfg.training.validation_days + cfg.training.test_days + 1
    if len(days) < needed:
        raise NotEnoughHistoryError(f"the training window ending {day} holds {len(days)} landed day(s); the split "
                                    f"needs at least {needed} (train + validation_days + test_days)")
    return days


def training_set_window(cfg: PinrecConfig, day: dt.date) -> dict:
    """Build the point-in-time training set for the window ending at ``day`` (replacing those days).

    Re-building the trailing days each run is what lets impressions whose label window was still
    open yesterday enter the set once it has closed.
    """
    from pinrec.jobs.features.training_set import build_training_set

    days = training_window(cfg, day)
    report = build_training_set(_spark(cfg), cfg.storage.warehouse, days, cfg.training, cfg.seed)
    log.info("[training] %s", report.render())
    return {"day": day.isoformat(), "days": list(report.days), "read": report.input_versions,
            "wrote": {"training_set": {"rows": report.rows, "rows_by_split": report.rows_by_split,
                                       "delta_version": report.delta_version}}}


# ------------------------------------------------------------------ the training DAG's steps
def training_day(cfg: PinrecConfig, requested: str | dt.date | None) -> dt.date:
    """The day a training run builds for: ``requested`` (a param or the triggering Asset event's
    ``day``) or, when absent, the newest landed day."""
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    if requested:
        return requested if isinstance(requested, dt.date) else dt.date.fromisoformat(str(requested))
    days = event_days(cfg.storage.location("landing"), catalog=lambda: Catalog(_spark(cfg), cfg.storage.warehouse))
    if not days:
        raise FileNotFoundError(f"nothing landed under {cfg.storage.landing}")
    return days[-1]


def graph_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """The Pin-Board graph as of the end of ``day``; the saves of the training window's test days
    (``training.test_days``) are evaluation edges, as in the demo."""
    from pinrec.jobs.graph.graph import evaluation_start, write_graph
    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog(_spark(cfg), cfg.storage.warehouse)
    cutoff = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    eval_from = evaluation_start(training_window(cfg, day), cfg.training.test_days)
    rows = write_graph(catalog.spark, catalog, cutoff, eval_from)
    wrote = {t: {"rows": n, "delta_version": catalog.writes[t]} for t, n in rows.items()}
    log.info("[graph] as of %s (evaluation edges from %s) wrote %s", cutoff, eval_from, wrote)
    return {"day": day.isoformat(), "cutoff": cutoff.isoformat(), "eval_from": eval_from.isoformat(), "wrote": wrote}


def pinsage_embeddings(cfg: PinrecConfig) -> dict:
    """Train PinSage on the graph tables and embed every pin. Neighbourhoods use the training edges
    only: the ranker uses these embeddings as features, and its test day must stay unseen."""
    from pinrec.jobs.pinsage.pinsage import train_pinsage

    report = train_pinsage(_spark(cfg), cfg.storage.warehouse, cfg.pinsage, cfg.storage.mlflow_tracking_uri,
                           artifact_root=mlflow_artifact_root(cfg.storage), artifacts=cfg.storage.location("artifacts"))
    log.info("[pinsage] %s", report.render())
    return {"read": report.input_versions, "mlflow_run_id": report.run_id, "model_version": report.model_version,
            "warm_start_from": report.warm_start_from, "stability": report.stability,
            "wrote": {"pin_embeddings": {"rows": report.pins, "delta_version": report.delta_version}}}


def cf_factors(cfg: PinrecConfig, day: dt.date) -> dict:
    """ALS on the engagement before the test days of the training window ending at ``day`` (the
    graph's ``eval_from``), written to ``<artifacts>/cf/<version>`` (:mod:`pinrec.jobs.cf.cf`)."""
    from pinrec.jobs.cf.cf import train_cf
    from pinrec.jobs.graph.graph import evaluation_start
    from pinrec.jobs.io.catalog import Catalog

    cutoff = evaluation_start(training_window(cfg, day), cfg.training.test_days)
    catalog = Catalog(_spark(cfg), cfg.storage.warehouse)
    report = train_cf(catalog.spark, catalog, cfg.cf, cfg.storage.mlflow_tracking_uri, cutoff=cutoff,
                      artifacts=cfg.storage.location("artifacts"), artifact_root=mlflow_artifact_root(cfg.storage))
    log.info("[cf] %s", report.render())
    return {"day": day.isoformat(), "cutoff": cutoff.isoformat(), "read": catalog.reads, "mlflow_run_id": report.run_id,
            "version": report.version, "params": report.params, "recall": report.recall,
            "wrote": {"cf": report.folder}}


def pin_index(cfg: PinrecConfig) -> dict:
    """The FAISS index over the current pin embeddings (:mod:`pinrec.jobs.index.pin_index`)."""
    from pinrec.jobs.index.pin_index import build_pin_index

    report = build_pin_index(_spark(cfg), cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.index,
                             cfg.storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(cfg.storage))
    log.info("[index] %s", report.render())
    return {"read": {"pin_embeddings": report.embeddings_delta_version}, "mlflow_run_id": report.run_id,
            "wrote": {"index": report.folder}, "factory": report.factory, "recall_at_k": report.recall_at_k}


def two_tower_model(cfg: PinrecConfig) -> dict:
    """The two-tower model on the current training set and pin embeddings, its user tower and pin
    index (:mod:`pinrec.jobs.two_tower.two_tower`)."""
    from pinrec.jobs.two_tower.two_tower import train_two_tower

    report = train_two_tower(_spark(cfg), cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.two_tower,
                             cfg.index, cfg.storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(cfg.storage))
    log.info("[two-tower] %s", report.render())
    return {"read": report.input_versions, "mlflow_run_id": report.run_id, "model_version": report.model_version,
            "wrote": {"two_tower": report.folder}, "test_recall": report.test_recall}


def ranker_model(cfg: PinrecConfig) -> dict:
    """Train, calibrate, evaluate and export the ranker on the current training set."""
    from pinrec.jobs.ranking.ranker import run_ranker

    report = run_ranker(_spark(cfg), cfg)
    log.info("[ranker] %s", report.render())
    return {"read": report.input_versions, "mlflow_run_id": report.run_id, "model_version": report.model_version,
            "wrote": {"ranker": report.artifacts},
            "auc": {m.task: m.auc for m in report.metrics if m.model == "ranker"}}


def funnel_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Replay ``day`` through ``recommend()`` on the bundle the channel serves now, the champion
    (:func:`pinrec.jobs.funnel.funnel.eval_funnel`): its numbers on the same day as the candidate's,
    which publish replays before the gate. Skipped while the channel points nowhere."""
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.funnel.funnel import eval_funnel

    pointer = read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name, cfg.publish.channel)
    if pointer is None:
        return {"day": day.isoformat(), "skipped": f"no bundle on channel {cfg.publish.name}/{cfg.publish.channel} yet"}
    report, where = eval_funnel(_spark(cfg), cfg, version=pointer.version, day=day)
    log.info("[funnel] %s", report.render())
    return {"day": day.isoformat(), "version": pointer.version, "users": report.users, "channels": list(report.channels),
            "metrics": report.metrics, "notes": list(report.notes), "wrote": {"funnel": str(where)}}


def publish_day(cfg: PinrecConfig, day: dt.date, index_dir: str | None = None, ranker_dir: str | None = None,
                two_tower_dir: str | None = None, cf_dir: str | None = None, champion: dict | None = None) -> dict:
    """Publish the bundle (index + ranker + pins + the feature snapshot as of the end of ``day``
    plus the features' publish delay, + the cf factors of ``cf_dir``, default the newest) behind the blessing gate.
    ``champion``: :func:`funnel_day`'s result (the champion replayed on ``day``), which the gate compares the
    candidate's funnel with (a skipped replay: publish replays it itself)."""
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cutoff = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
              + dt.timedelta(seconds=cfg.features.publish_delay_s))
    same_day = (champion["version"], champion["metrics"]) if champion and "metrics" in champion else None
    report = publish_serving_bundle(_spark(cfg), cfg, index_dir=index_dir, ranker_dir=ranker_dir, cutoff=cutoff,
                                    two_tower_dir=two_tower_dir, cf_dir=cf_dir, champion=same_day)
    log.info("[publish] %s", report.render())
    return {"day": day.isoformat(), "version": report.version, "promoted": report.promoted,
            "blessed": report.blessed, "reasons": list(report.reasons), "store_uri": report.store_uri,
            "name": report.name, "channel": report.channel, "registered": report.registered,
            "funnel": report.funnel.metrics if report.funnel is not None else {}}


# ------------------------------------------------------------------ settings chosen in the training DAG
def retrieval_settings(cfg: PinrecConfig) -> dict:
    """PinSage's data-dependent settings chosen on the current graph's validation split, within
    ``retrieval_eval.tune_budget_s`` (:mod:`pinrec.jobs.pinsage.pinsage_settings`), recorded in MLflow and
    under ``<artifacts>/retrieval_settings/``; skipped (nothing read) unless ``retrieval_eval.tune_in_training``."""
    from pinrec.jobs.pinsage.pinsage_settings import choose_settings

    on = cfg.retrieval_eval.tune_in_training
    choice = choose_settings(_spark(cfg) if on else None, cfg.storage.warehouse, cfg.retrieval_eval, cfg.pinsage,
                             enabled=on, artifacts=cfg.storage.location("artifacts"),
                             tracking_uri=cfg.storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(cfg.storage))
    log.info("[retrieval-settings] %s", choice.render())
    out = choice.as_dict()
    return {"read": out.pop("input_versions"), "mlflow_run_id": out.pop("run_id"),
            "wrote": {"retrieval_settings": out.pop("artifact")}, **out}


def with_retrieval_settings(cfg: PinrecConfig, chosen: dict | None) -> PinrecConfig:
    """``cfg`` whose ``pinsage`` section has the settings :func:`retrieval_settings` chose (``chosen``,
    its result; None or a skipped step: ``cfg`` unchanged)."""
    import dataclasses

    from pinrec.jobs.pinsage.pinsage_settings import apply_settings

    settings = (chosen or {}).get("settings")
    return dataclasses.replace(cfg, pinsage=apply_settings(cfg.pinsage, settings)) if settings else cfg


def run_report(cfg: PinrecConfig, version: str) -> dict:
    """The run report of bundle ``version`` (what :func:`publish_day` just published, promoted or not):
    one static HTML file, ``<artifacts>/reports/<version>.html`` (:func:`pinrec.jobs.report.build_report`)."""
    from pinrec.jobs.report import build_report

    where = build_report(cfg, version, spark=_spark(cfg))
    log.info("[report] %s", where)
    return {"version": version, "wrote": {"report": str(where)}}
