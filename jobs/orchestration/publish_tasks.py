"""The training DAG's steps from the champion's replay on (:mod:`pinrec.jobs.orchestration.tasks`): the
funnel replay, publishing the bundle behind the blessing gate, its run report and its online features."""
from __future__ import annotations

import datetime as dt
import logging

from pinrec.jobs.config import PinrecConfig

from .task_context import _cache, _spark, _steps

log = logging.getLogger("pinrec.jobs.orchestration.tasks")  # the name it had before the split


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
