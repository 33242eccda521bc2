"""The funnel replays a publish compares: the candidate's, opened from a scratch store as serving opens a
bundle, and the champion's (the bundle the channel serves now), both on
:func:`~pinrec.jobs.publish.bundle_cutoffs.champion_day` (``funnel.at_publish``)."""
from __future__ import annotations

import datetime as dt
import logging
import tempfile

from .bundle_cutoffs import champion_day

log = logging.getLogger("pinrec.jobs.publish.bundle")  # the name it logged under before the split


def candidate_funnel(spark, cfg, files, metrics, lineage, cutoff: dt.datetime, prebuilt=None, catalog=None):
    """The serving funnel (:func:`pinrec.jobs.funnel.funnel.replay_day`) of the candidate ``files`` (a
    :class:`~pinrec.export.build.publish.BundleFiles`), opened as serving opens a bundle: published into a
    scratch local store (judged there on its own; that verdict is not the gate's) and loaded from it. The
    replayed day is the last one the snapshot's ``cutoff`` closes (the newest day of the training window).
    None, with a warning, when nobody saved a pin that day (a sparse log): the gate then notes that the
    candidate has no funnel metrics, and publishing goes on. ``prebuilt`` and ``catalog``: as
    :func:`replay_day`'s."""
    from pinrec.export.build.publish import publish
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.store import Store
    from pinrec.jobs.funnel.funnel import replay_day
    from pinrec.jobs.funnel.replay import NothingToReplay

    day = champion_day(cfg, cutoff)  # the champion is replayed on the same day
    with tempfile.TemporaryDirectory(prefix="pinrec-funnel-candidate-") as scratch:
        publish(Store(scratch), cfg.publish.name, files, metrics, lineage, channel="funnel", blessing=cfg.blessing,
                version="candidate")
        try:
            return replay_day(spark, cfg, load(scratch, cfg.publish.name, version="candidate"), day,
                              catalog=catalog, prebuilt=prebuilt)
        except NothingToReplay as err:
            log.warning("[publish] %s: the candidate's funnel is not measured", err)
            return None


def champion_funnel(spark, cfg, cutoff: dt.datetime) -> tuple[str, dict[str, float]] | None:
    """(version, funnel metrics) of the bundle ``publish.channel`` serves now, replayed on
    :func:`~pinrec.jobs.publish.bundle_cutoffs.champion_day`, so the gate compares the two on the same day;
    None while the channel points nowhere."""
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.funnel.funnel import replay_day

    store = Store(cfg.bundle_store_uri, s3_options(cfg.storage))
    pointer = read_channel(store, cfg.publish.name, cfg.publish.channel)
    if pointer is None:
        return None
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, version=pointer.version, s3=s3_options(cfg.storage))
    return pointer.version, replay_day(spark, cfg, bundle, champion_day(cfg, cutoff)).metrics
