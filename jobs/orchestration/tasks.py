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
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence

from pinrec.jobs.config import ConfigError, PinrecConfig, load_config, parse_overrides

log = logging.getLogger(__name__)


class NotEnoughHistoryError(ValueError):
    """The window ending at the interval's day does not hold enough days for the temporal split."""


def config_from_params(config_file: str | None, overrides: Sequence[str] | None) -> PinrecConfig:
    """The DAG run's configuration: a YAML file (or defaults) plus ``section.key=value`` overrides,
    and the worker's AWS variables (S3 endpoint and region of the bundle store) as the CLI reads them."""
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides or []):
        raise ConfigError(f"the run's overrides must be a list of 'section.key=value' strings, got {overrides!r:.120}")
    if config_file is not None and not isinstance(config_file, str):
        raise ConfigError(f"the run's config must be a path to a YAML file, got {config_file!r:.120}")
    return load_config(config_file or None, parse_overrides(list(overrides or [])), env=os.environ)


def _spark(cfg: PinrecConfig):
    from pinrec.jobs.io.spark import job_spark

    return job_spark(cfg)


def _steps(cfg: PinrecConfig):
    from .cached_training import PipelineSteps
    from .step_cache import StepCache

    return PipelineSteps(cfg, _spark(cfg), StepCache(cfg.cache), echo=log.info)


def _cache(step: str, fingerprint: str | None, cached: bool) -> dict:
    return {"step": step, "fingerprint": fingerprint, "cached": cached}


def _days_up_to(cfg: PinrecConfig, day: dt.date) -> list[dt.date]:
    """The landed days up to ``day``, and ``day`` itself even when nothing landed for it: the
    fingerprint of a day covers every landed day before it (foreign keys look back)."""
    from pinrec.jobs.ingest.ingest import LandingPartitionMissingError, landed_days

    try:
        days = landed_days(cfg.storage.location("landing"), dt.date.min, day)
    except LandingPartitionMissingError:
        days = []
    return days if day in days else [*days, day]


def ingest_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Validate the landed partitions of ``day`` into Delta (bad rows to quarantine), unless the
    step cache holds that day as ingested from the same files, code and config."""
    steps = _steps(cfg)
    reports, reused = steps.ingest(_days_up_to(cfg, day), only=[day])
    fp = steps.fingerprints["ingest"][day]
    out = {"day": day.isoformat(), "wrote": {}, "cache": _cache("ingest", fp, bool(reused))}
    if reused:
        log.info("[ingest] %s cached (fingerprint %s)", day, fp[:12])
    for report in reports:
        log.info("[ingest] %s", report.summary_line())
        out["wrote"][report.table] = {"rows_valid": report.rows_valid, "rows_quarantined": report.rows_quarantined,
                                      "duplicates_dropped": report.duplicates_dropped,
                                      "delta_version": report.delta_version}
    return out


def features_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Build the daily feature tables for ``day`` (replacing that day's partitions), unless the step
    cache holds them as built from the same ingested day."""
    from pinrec.schemas.catalog import feature_table
    from pinrec.schemas.features import FEATURE_VIEWS

    steps = _steps(cfg)
    steps.ingest_fingerprints(_days_up_to(cfg, day))
    rows, reused = steps.features(sorted(steps.fingerprints["ingest"]), only=[day])
    fp = steps.fingerprints["features"][day]
    out = {"day": day.isoformat(), "cache": _cache("features", fp, bool(reused))}
    if reused:
        log.info("[features] %s cached (fingerprint %s)", day, fp[:12])
        look = steps.catalog()
        return {**out, "read": {}, "wrote": {},
                "reused": {feature_table(v): {"delta_version": look.version(feature_table(v))} for v in FEATURE_VIEWS}}
    catalog = steps.last_catalog
    wrote = {feature_table(v): {"rows": rows[v.name], "delta_version": catalog.writes[feature_table(v)]}
             for v in FEATURE_VIEWS}
    log.info("[features] %s read %s wrote %s", day, catalog.reads, wrote)
    return {**out, "read": catalog.reads, "wrote": wrote}


def training_window(cfg: PinrecConfig, day: dt.date) -> list[dt.date]:
    """The ingested days of the training window that ends at ``day``.

    ``training.window_days`` days (0: every ingested day up to ``day``). Raises
    :class:`NotEnoughHistoryError` while the window cannot hold train + validation + test days.
    """
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    first = dt.date.min if cfg.training.window_days == 0 else day - dt.timedelta(days=cfg.training.window_days - 1)
    days = event_days(cfg.storage.location("landing"), first, day, lambda: Catalog(_spark(cfg), cfg.storage.warehouse))
    held = [n if n is not None else 1 for n in (cfg.training.validation_days, cfg.training.test_days)]
    needed = sum(held) + 1  # a null number of held-out days: at least one
    if len(days) < needed:
        raise NotEnoughHistoryError(f"the training window ending {day} holds {len(days)} landed day(s); the split "
                                    f"needs at least {needed} (train + validation_days + test_days)")
    return days


def window_config(cfg: PinrecConfig, day: dt.date) -> tuple[list[dt.date], PinrecConfig]:
    """The training window ending at ``day`` (:func:`training_window`) and ``cfg`` with its held-out days
    resolved over that window (:func:`~pinrec.jobs.features.holdout.resolve_for`): the training set,
    the graph and CF of one run agree on them."""
    from pinrec.jobs.features.holdout import resolve_for
    from pinrec.jobs.io.catalog import Catalog

    days = training_window(cfg, day)
    return days, resolve_for(cfg, lambda: Catalog(_spark(cfg), cfg.storage.warehouse), days)


def training_set_window(cfg: PinrecConfig, day: dt.date) -> dict:
    """Build the point-in-time training set for the window ending at ``day`` (replacing those days).

    Re-building the trailing days each run is what lets impressions whose label window was still
    open yesterday enter the set once it has closed.
    """
    from .step_cache import Cached

    days, cfg = window_config(cfg, day)
    steps = _steps(cfg)
    steps.ingest_fingerprints(_days_up_to(cfg, day))
    steps.features_fingerprints(days)  # (event days: a month landing's days each take their month's ingest)
    report = steps.training_set(days)
    out = {"day": day.isoformat(), "days": [d.isoformat() for d in days],
           "cache": _cache("training_set", steps.fingerprints["training_set"], isinstance(report, Cached))}
    log.info("[training] %s", report.render())
    if isinstance(report, Cached):
        return {**out, "read": {}, "wrote": {},
                "reused": {"training_set": {"delta_version": steps.catalog().version("training_set")}}}
    return {**out, "read": report.input_versions,
            "wrote": {"training_set": {"rows": report.rows, "rows_by_split": report.rows_by_split,
                                       "delta_version": report.delta_version}}}


# ------------------------------------------------------------------ the training DAG's steps
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


def funnel_day(cfg: PinrecConfig, day: dt.date) -> dict:
    """Replay ``day`` through ``recommend()`` on the bundle the channel serves now, the champion
    (:func:`pinrec.jobs.funnel.funnel.eval_funnel`): its numbers on the same day as the candidate's,
    which publish replays before the gate. Skipped while the channel points nowhere, and on a day
    nobody saved a pin."""
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.funnel.replay import NothingToReplay

    from .step_cache import Cached

    pointer = read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name, cfg.publish.channel)
    if pointer is None:
        return {"day": day.isoformat(), "skipped": f"no bundle on channel {cfg.publish.name}/{cfg.publish.channel} yet"}
    steps = _steps(cfg)
    try:
        result = steps.funnel(pointer.version, day)  # a rerun of the day with the same champion reuses its replay
    except NothingToReplay as err:  # a sparse log's day: publish measures no funnel either
        return {"day": day.isoformat(), "skipped": str(err)}
    cached = isinstance(result, Cached)
    report = result.output if cached else result
    log.info("[funnel] %s", result.render() if cached else report.render())
    where = {"funnel": f"{steps.folders['funnel']}/funnel.json"}
    return {"day": day.isoformat(), "version": pointer.version, "users": report.users, "channels": list(report.channels),
            "metrics": report.metrics, "notes": list(report.notes),
            "cache": _cache("funnel", steps.fingerprints["funnel"], cached),
            "wrote": {} if cached else where, "reused": where if cached else {}}


def publish_day(cfg: PinrecConfig, day: dt.date, index_dir: str | None = None, ranker_dir: str | None = None,
                two_tower_dir: str | None = None, cf_dir: str | None = None, champion: dict | None = None) -> dict:
    """Publish the bundle (index + ranker + pins + the feature snapshot as of the end of ``day``
    plus the features' publish delay, + the cf factors of ``cf_dir``, default the newest) behind the blessing gate.
    ``champion``: :func:`funnel_day`'s result (the champion replayed on ``day``), which the gate compares the
    candidate's funnel with (a skipped replay: publish replays it itself)."""
    from .step_cache import Cached

    cutoff = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
              + dt.timedelta(seconds=cfg.features.publish_delay_s))
    same_day = (champion["version"], champion["metrics"]) if champion and "metrics" in champion else None
    steps = _steps(cfg)
    folders = {s: d for s, d in (("index", index_dir), ("ranker", ranker_dir), ("two_tower", two_tower_dir),
                                 ("cf", cf_dir)) if d}
    report = steps.publish(cutoff=cutoff, champion=same_day, folders=folders)
    log.info("[publish] %s", report.render())
    cache = _cache("publish", steps.fingerprints["publish"], isinstance(report, Cached))
    if isinstance(report, Cached):  # the newest bundle of the name holds exactly this: say what it was judged
        manifest = steps.published_manifest
        return {"day": day.isoformat(), "version": report.output, "cache": cache, "wrote": {},
                "reused": {"bundle": f"{cfg.publish.name}/{report.output}"}, "promoted": False,
                "blessed": manifest.blessing.blessed, "reasons": list(manifest.blessing.reasons),
                "store_uri": cfg.bundle_store_uri, "name": cfg.publish.name, "channel": cfg.publish.channel,
                "registered": {}, "funnel": dict(manifest.metrics.funnel)}
    return {"day": day.isoformat(), "version": report.version, "cache": cache, "promoted": report.promoted,
            "blessed": report.blessed, "reasons": list(report.reasons), "store_uri": report.store_uri,
            "name": report.name, "channel": report.channel, "registered": report.registered,
            "funnel": report.funnel.metrics if report.funnel is not None else {}}


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


def run_report(cfg: PinrecConfig, version: str, reuse: bool = False) -> dict:
    """The run report of bundle ``version`` (what :func:`publish_day` just published, promoted or not):
    one static HTML file, ``<artifacts>/reports/<version>.html`` (:func:`pinrec.jobs.report.build_report`).
    ``reuse``: the bundle was reused from the step cache, so is its page when it exists."""
    from pinrec.jobs.report import build_report, default_path

    if reuse and cfg.cache.enabled and default_path(cfg, version).is_file():
        where = default_path(cfg, version)
        log.info("[report] cached: %s", where)
        return {"version": version, "wrote": {}, "reused": {"report": str(where)}}
    where = build_report(cfg, version, spark=_spark(cfg))
    log.info("[report] %s", where)
    return {"version": version, "wrote": {"report": str(where)}}


def online_features(cfg: PinrecConfig) -> dict:
    """Write the feature snapshot of the bundle ``publish.channel`` serves to Redis
    (:func:`pinrec.jobs.publish.online_features.export_bundle_features`); ``{"skipped": why}`` when
    ``redis.url`` is not set or the channel points nowhere yet (a first candidate rejected)."""
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.publish.online_features import export_bundle_features

    if not cfg.redis.url:
        return {"skipped": "redis.url is not set: serving reads the bundle's own snapshot"}
    if read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name, cfg.publish.channel) is None:
        return {"skipped": f"channel {cfg.publish.channel} of {cfg.publish.name} points to no version yet"}
    out = export_bundle_features(cfg)
    log.info("[online features] %s", out["summary"])
    return out
