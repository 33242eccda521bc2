"""Timestamps crossing between Python and Spark, right whatever the driver's time zone.

pinrec's times are UTC: naive datetimes mean UTC, and the Spark session runs in UTC. PySpark,
however, converts a *naive* datetime sent to the JVM (``F.lit``, a comparison, ``createDataFrame``)
with ``time.mktime``, i.e. in the driver process's local zone, and returns collected
``TimestampType`` values as naive local wall times (``datetime.fromtimestamp``). On a driver whose
``TZ`` is not UTC every cut-off would move by the zone's offset: five hours of a test day's saves
become training edges in New York. An aware datetime is converted exactly (``calendar.timegm``), so
every literal goes through :func:`ts_lit`, and every collected timestamp through :func:`from_spark`.
Arrow paths (``toArrow``, ``mapInArrow``, ``toPandas`` in the UTC session) carry epochs and need neither.
"""
from __future__ import annotations

import datetime as dt


def to_spark(value: dt.datetime) -> dt.datetime:
    """``value`` (naive = UTC) as an aware UTC datetime, which PySpark converts without the local zone."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def ts_lit(value: dt.datetime):
    """A Spark timestamp literal of ``value`` (naive = UTC)."""
    from pyspark.sql import functions as F

    return F.lit(to_spark(value))


def from_spark(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp collected from Spark (a naive local wall time) as naive UTC, pinrec's convention."""
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)
