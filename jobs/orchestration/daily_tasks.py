"""The daily DAG's steps for one day (:mod:`pinrec.jobs.orchestration.tasks`): ingest, features, and the
point-in-time training set of the training window ending that day (:func:`training_window`, which the
training DAG's graph and cf steps use too)."""
from __future__ import annotations

import datetime as dt
import logging

from pinrec.jobs.config import PinrecConfig

from .task_context import _cache, _spark, _steps

log = logging.getLogger("pinrec.jobs.orchestration.tasks")  # the name it had before the split


class NotEnoughHistoryError(ValueError):
    """The window ending at the interval's day does not hold enough days for the temporal split."""


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
