"""Two calendars of one landing zone: the landed partitions, and the days that hold events.

* **Landed partitions** (:func:`landed_partitions`): the folders ``pinrec ingest`` reads, one per
  day, calendar month or year (the landing zone's record, :func:`~.dataset_info.partition_granularity`),
  each named by its first day. Ingest and its step-cache fingerprints go by these.
* **Event days** (:func:`event_days`): the days that hold events once ingested, which is what every
  step after ingest counts: the features per day, the training set's days and its temporal split,
  the graph's evaluation start, the training window. For a daily landing they are the landed
  partitions (nothing is read but the folder names). For a landing by month or year they are the
  days of the warehouse's ``impressions`` partitions (ingest writes each event to the Delta
  partition of its own day) inside the landed spans: the same days as if the log had landed daily.

:func:`partition_of` maps an event day back to the first day of the partition that landed it (the
step cache keys a day's features by its partition's ingest fingerprint).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.lake import Location

from .dataset_info import partition_granularity
from .ingest_read import IngestError, LandingPartitionMissingError
from .landing import list_partitions, partition_end, partition_start

__all__ = ["event_days", "landed_partitions", "partition_of"]

ANCHOR = "impressions"  # the table whose days count: a day without impressions has no training rows


def landed_partitions(landing: str | Path | Location, start: dt.date = dt.date.min, end: dt.date = dt.date.max,
                      anchor: str = ANCHOR) -> list[dt.date]:
    """The first days of ``anchor``'s landed partitions whose span overlaps ``[start, end]``, sorted
    (a month that starts before ``start`` but reaches it counts). For a daily landing: the landed days.
    :class:`~.ingest_read.LandingPartitionMissingError` when there is none."""
    granularity = partition_granularity(landing)
    landed = list_partitions(landing, anchor)
    parts = [d for d in landed if d <= end and partition_end(d, granularity) > start]
    if not parts:
        if landed:  # data landed, only not in the days asked for: say which days there are
            raise LandingPartitionMissingError(
                f"no {anchor} landed between {start} and {end} under {landing}: its {anchor} partitions span "
                f"{landed[0]}..{landed[-1]} (by {granularity}); ask for days in that span")
        between = "" if (start, end) == (dt.date.min, dt.date.max) else f" between {start} and {end}"
        raise LandingPartitionMissingError(
            f"no {anchor} landed{between} under {landing}; run `pinrec generate` or a dataset "
            f"adapter (`pinrec load-dataset`) first")
    return parts


def partition_of(landing: str | Path | Location) -> Callable[[dt.date], dt.date]:
    """``day -> the first day of the landed partition holding it`` for this landing zone's span
    (the identity for a daily landing)."""
    granularity = partition_granularity(landing)
    return lambda day: partition_start(day, granularity)


def event_days(landing: str | Path | Location, start: dt.date = dt.date.min, end: dt.date = dt.date.max,
               catalog: Catalog | Callable[[], Catalog] | None = None, anchor: str = ANCHOR) -> list[dt.date]:
    """The days in ``[start, end]`` that hold ``anchor`` events (module docstring), sorted.

    ``catalog``: the warehouse's :class:`~pinrec.jobs.io.catalog.Catalog`, or a function returning one,
    called only when needed: a daily landing reads no table, so its caller need not start Spark. Its
    read of ``anchor`` joins that catalog's lineage: where lineage is checked, pass a catalog of its
    own. A landing by month or year needs one: ValueError without it, :class:`~.ingest_read.IngestError`
    when the landed spans in ``[start, end]`` have not been ingested yet."""
    parts = landed_partitions(landing, start, end, anchor)
    granularity = partition_granularity(landing)
    if granularity == "day":
        return parts
    if catalog is None:
        raise ValueError(f"{landing} landed by {granularity}: its event days are the days ingest wrote to the "
                         f"warehouse's {anchor}, so event_days needs the warehouse's catalog")
    catalog = catalog if isinstance(catalog, Catalog) else catalog()
    hint = (f"ingest the landed partitions {parts[0]}..{parts[-1]} first (`pinrec ingest`): {landing} landed by "
            f"{granularity}, and the days after ingest are the days its events went to")
    if not catalog.exists(anchor):
        raise IngestError(f"no {anchor} table at {catalog.path(anchor)}: {hint}")
    from pyspark.sql import functions as F

    lo, hi = max(start, parts[0]), min(end, partition_end(parts[-1], granularity) - dt.timedelta(days=1))
    found = catalog.read(anchor).where(F.col("dt").between(F.lit(lo), F.lit(hi))).select("dt").distinct().collect()
    landed = set(parts)  # a day of a span that is not landed (any more) is no event day of this landing
    days = sorted(d for (d,) in found if partition_start(d, granularity) in landed)
    if not days:
        raise IngestError(f"the warehouse's {anchor} holds no day between {lo} and {hi}: {hint}")
    return days
