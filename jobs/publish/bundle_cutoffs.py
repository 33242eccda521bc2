"""The cut-offs a publish uses: the feature snapshot's (by default the end of the newest landed day plus
the features' publish delay), and the day the candidate and the champion are replayed on."""
from __future__ import annotations

import datetime as dt


def default_cutoff(spark, cfg, catalog=None) -> dt.datetime:
    """The feature snapshot's cut-off a publish uses by default: the end of the newest day with events
    (of a landing by month too, whose event days are read from ``impressions`` through ``catalog``,
    default one of its own) plus ``features.publish_delay_s``."""
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    look = catalog if catalog is not None else (lambda: Catalog(spark, cfg.storage.warehouse))
    last = event_days(cfg.storage.location("landing"), catalog=look)[-1]
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time()) + \
        dt.timedelta(seconds=cfg.features.publish_delay_s)


def snapshot_cutoffs(spark, cfg, cutoff: dt.datetime | None = None) -> tuple[dt.datetime, ...]:
    """The cut-offs a publish with ``cutoff`` (None: :func:`default_cutoff`) builds feature snapshots at:
    the bundle's and, with ``funnel.at_publish``, the replayed day's start (:func:`champion_day`), for
    :func:`~pinrec.jobs.features.feature_snapshot.prebuild_snapshot`."""
    from pinrec.jobs.funnel.funnel import replay_cutoff

    cutoff = cutoff if cutoff is not None else default_cutoff(spark, cfg)
    return (cutoff, replay_cutoff(cfg, champion_day(cfg, cutoff))) if cfg.funnel.at_publish else (cutoff,)


def champion_day(cfg, cutoff: dt.datetime) -> dt.date:
    """The day a candidate with feature cut-off ``cutoff`` is replayed on
    (:func:`~pinrec.jobs.publish.bundle_funnel.candidate_funnel`'s): the one ``cutoff`` closes."""
    return (cutoff - dt.timedelta(seconds=cfg.features.publish_delay_s, microseconds=1)).date()
