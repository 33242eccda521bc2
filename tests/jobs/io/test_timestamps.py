"""jobs/io/timestamps.py: cut-offs reach Spark, and collected times come back, as UTC in any driver time zone."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.io.timestamps import from_spark, to_spark, ts_lit
from tests.support.timezones import ZONES, driver_time_zone

NAIVE = dt.datetime(2026, 1, 10, 0, 0, 0, 250)  # naive = UTC, pinrec's convention
EPOCH_US = 1_768_003_200_000_250


def test_to_spark_is_aware_utc():
    assert to_spark(NAIVE) == NAIVE.replace(tzinfo=dt.UTC) and to_spark(NAIVE).tzinfo is dt.UTC
    tokyo = dt.datetime(2026, 1, 10, 9, 0, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert to_spark(tokyo) == NAIVE.replace(tzinfo=dt.UTC)
    assert from_spark(None) is None


@pytest.mark.spark
@pytest.mark.parametrize("zone", ZONES)
def test_a_literal_and_a_collected_time_are_utc_in_any_driver_zone(spark, zone):
    with driver_time_zone(zone):
        row = spark.range(1).select(ts_lit(NAIVE).alias("t"), _micros(ts_lit(NAIVE)).alias("us")).first()
        assert row["us"] == EPOCH_US
        assert from_spark(row["t"]) == NAIVE
        from pyspark.sql import functions as F

        # what a bare F.lit(naive) does: off by the local zone's offset
        assert spark.range(1).select(_micros(F.lit(NAIVE))).first()[0] != EPOCH_US


def _micros(column):
    from pyspark.sql import functions as F

    return F.unix_micros(column)
