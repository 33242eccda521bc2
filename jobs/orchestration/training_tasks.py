"""The training DAG's steps up to the models (:mod:`pinrec.jobs.orchestration.tasks`): the day it builds
for, the graph, PinSage (with the retrieval settings chosen for it), CF, the index, two-tower and the ranker."""
from __future__ import annotations

import datetime as dt
import logging

from pinrec.jobs.config import PinrecConfig

from .daily_tasks import window_config
from .task_context import _cache, _spark, _steps

log = logging.getLogger("pinrec.jobs.orchestration.tasks")  # the name it had before the split


def training_day(cfg: PinrecConfig, requested: str | dt.date | None) -> dt.date:
    """The day a training run builds for: ``requested`` (a param or the triggering Asset event's
    ``day``; refused when after the newest landed day) or, when absent, the newest landed day."""
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    days = event_days(cfg.storage.location("landing"), catalog=lambda: Catalog(_spark(cfg), cfg.storage.warehouse))
    if not days:
        raise FileNotFoundError(f"nothing landed under {cfg.storage.landing}")
    if not requested:
        return days[-1]
    day = requested if isinstance(requested, dt.date) else dt.date.fromisoformat(str(requested))
    if day > days[-1]:  # its features would be empty at serving time and its test day would hold nothing
        raise ValueError(f"training day {day} is after the last landed day {days[-1]} under {cfg.storage.landing}: "
                         "train for a day whose data has landed")
    return day


def graph_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """The Pin-Board graph as of the end of ``day``; the saves of the training window's test days
    (``training.test_days``) are evaluation edges, as in the demo."""
    from pinrec.jobs.graph.graph import evaluation_start

    from .step_cache import Cached

    days, cfg = window_config(cfg, day)
    steps = _steps(cfg)
    cutoff = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    eval_from = evaluation_start(days, cfg.training.test_days)
    rows = steps.graph(cutoff, eval_from)
    out = {"day": day.isoformat(), "cutoff": cutoff.isoformat(), "eval_from": eval_from.isoformat(),
           "cache": _cache("graph", steps.fingerprints["graph"], isinstance(rows, Cached))}
    if isinstance(rows, Cached):
        log.info("[graph] %s", rows.render())
        return {**out, "wrote": {}}
    wrote = {t: {"rows": n, "delta_version": steps.last_catalog.writes[t]} for t, n in rows.items()}
    log.info("[graph] as of %s (evaluation edges from %s) wrote %s", cutoff, eval_from, wrote)
    return {**out, "wrote": wrote}


def pinsage_embeddings(cfg: PinrecConfig) -> dict:
    """Train PinSage on the graph tables and embed every pin. Neighbourhoods use the training edges
    only: the ranker uses these embeddings as features, and its test day must stay unseen."""
    from .step_cache import Cached

    steps = _steps(cfg)
    report = steps.pinsage()
    log.info("[pinsage] %s", report.render())
    cache = _cache("pinsage", steps.fingerprints["pinsage"], isinstance(report, Cached))
    if isinstance(report, Cached):
        return {"read": {}, "mlflow_run_id": None, "model_version": steps.embedding_version, "cache": cache,
                "wrote": {}, "reused": {"pin_embeddings": {"delta_version": steps.catalog().version("pin_embeddings")}}}
    return {"read": report.input_versions, "cache": cache, "mlflow_run_id": report.run_id, "model_version": report.model_version,
            "warm_start_from": report.warm_start_from, "stability": report.stability,
            "wrote": {"pin_embeddings": {"rows": report.pins, "delta_version": report.delta_version}}}


def cf_factors(cfg: PinrecConfig, day: dt.date) -> dict:
    """ALS on the engagement before the test days of the training window ending at ``day`` (the
    graph's ``eval_from``), written to ``<artifacts>/cf/<version>`` (:mod:`pinrec.jobs.cf.cf`)."""
    from pinrec.jobs.graph.graph import evaluation_start

    days, cfg = window_config(cfg, day)
    cutoff = evaluation_start(days, cfg.training.test_days)
    steps = _steps(cfg)
    report = steps.cf(cutoff)
    log.info("[cf] %s", report.render())
    out = {"day": day.isoformat(), "cutoff": cutoff.isoformat(), **_folder_result(steps, "cf", report)}
    if out["cache"]["cached"]:
        return out
    return {**out, "mlflow_run_id": report.run_id, "version": report.version, "params": report.params,
            "recall": report.recall}


def _folder_result(steps, step: str, report) -> dict:
    """What an artifact step returns: the folder it wrote (or reuses) and what it read."""
    from .step_cache import Cached

    cached = isinstance(report, Cached)
    folder = {step: steps.folders[step]}
    return {"cache": _cache(step, steps.fingerprints[step], cached), "read": {} if cached else steps.read_versions(step),
            "mlflow_run_id": None if cached else report.run_id,
            "wrote": {} if cached else folder, "reused": folder if cached else {}}


def pin_index(cfg: PinrecConfig) -> dict:
    """The FAISS index over the current pin embeddings (:mod:`pinrec.jobs.index.pin_index`)."""
    steps = _steps(cfg)
    report = steps.index()
    log.info("[index] %s", report.render())
    out = _folder_result(steps, "index", report)
    if out["cache"]["cached"]:
        return out
    return {**out, "read": {"pin_embeddings": report.embeddings_delta_version}, "factory": report.factory,
            "recall_at_k": report.recall_at_k}


def two_tower_model(cfg: PinrecConfig) -> dict:
    """The two-tower model on the current training set and pin embeddings, its user tower and pin
    index (:mod:`pinrec.jobs.two_tower.two_tower`)."""
    steps = _steps(cfg)
    report = steps.two_tower()
    log.info("[two-tower] %s", report.render())
    out = _folder_result(steps, "two_tower", report)
    if out["cache"]["cached"]:
        return out
    return {**out, "read": report.input_versions, "model_version": report.model_version,
            "test_recall": report.test_recall}


def ranker_model(cfg: PinrecConfig) -> dict:
    """Train, calibrate, evaluate and export the ranker on the current training set."""
    steps = _steps(cfg)
    report = steps.ranker()
    log.info("[ranker] %s", report.render())
    out = _folder_result(steps, "ranker", report)
    if out["cache"]["cached"]:
        return out
    return {**out, "read": report.input_versions, "model_version": report.model_version,
            "auc": {m.task: m.auc for m in report.metrics if m.model == "ranker"}}


# ------------------------------------------------------------------ settings chosen in the training DAG
def retrieval_settings(cfg: PinrecConfig) -> dict:
    """PinSage's data-dependent settings chosen on the current graph's validation split, within
    ``retrieval_eval.tune_budget_s`` (:mod:`pinrec.jobs.pinsage.pinsage_settings`), recorded in MLflow and
    under ``<artifacts>/retrieval_settings/``; skipped (nothing read) unless ``retrieval_eval.tune_in_training``.
    Through the step cache: the same graph, code and config reuse the recorded choice (``"wrote": {}``)."""
    from pinrec.jobs.pinsage.pinsage_settings import choose_settings

    from .step_cache import Cached

    on = cfg.retrieval_eval.tune_in_training
    steps = _steps(cfg) if on else None  # skipped: no Spark session either
    choice = steps.retrieval_settings() if on else choose_settings(None, cfg.storage.warehouse, cfg.retrieval_eval,
                                                                   cfg.pinsage, enabled=False)
    cached = isinstance(choice, Cached)
    log.info("[retrieval-settings] %s", choice.render())
    out = (choice.output if cached else choice).as_dict()
    artifact, versions, run_id = out.pop("artifact"), out.pop("input_versions"), out.pop("run_id")
    result = {"read": {} if cached else versions, "mlflow_run_id": None if cached else run_id,
              "wrote": {} if cached else {"retrieval_settings": artifact}, **out}
    if on:
        result["cache"] = _cache("retrieval_settings", steps.fingerprints["retrieval_settings"], cached)
    if cached:
        result["reused"] = {"retrieval_settings": artifact}
    return result


def with_retrieval_settings(cfg: PinrecConfig, chosen: dict | None) -> PinrecConfig:
    """``cfg`` whose ``pinsage`` section has the settings :func:`retrieval_settings` chose (``chosen``,
    its result; None or a skipped step: ``cfg`` unchanged)."""
    import dataclasses

    from pinrec.jobs.pinsage.pinsage_settings import apply_settings

    settings = (chosen or {}).get("settings")
    return dataclasses.replace(cfg, pinsage=apply_settings(cfg.pinsage, settings)) if settings else cfg
