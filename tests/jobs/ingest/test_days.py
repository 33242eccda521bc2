"""Landed partitions vs event days: a daily landing and one by month (tests/support/month_log.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.ingest.days import event_days, landed_partitions, partition_of
from pinrec.jobs.ingest.ingest import landed_days
from pinrec.jobs.ingest.ingest_read import IngestError, LandingPartitionMissingError
from tests.support.month_log import DAYS, MONTHS, land, write_impressions_as_ingested


def _never():
    raise AssertionError("a daily landing must not open the warehouse")


def test_a_daily_landing_s_event_days_are_its_landed_days_and_no_warehouse_is_read(tmp_path):
    land(tmp_path / "daily", by_month=False)
    landing = str(tmp_path / "daily")
    assert landed_partitions(landing) == landed_days(landing, dt.date.min, dt.date.max) == DAYS
    assert event_days(landing) == event_days(landing, catalog=_never) == DAYS
    assert event_days(landing, dt.date(2003, 2, 1), dt.date(2003, 3, 1)) == DAYS[2:6]
    assert partition_of(landing)(dt.date(2003, 2, 27)) == dt.date(2003, 2, 27)


def test_a_month_landing_lists_its_months_as_partitions_and_needs_the_warehouse_for_its_days(tmp_path):
    land(tmp_path / "months", by_month=True)
    landing = str(tmp_path / "months")
    assert landed_partitions(landing) == landed_days(landing, dt.date.min, dt.date.max) == MONTHS
    # a partition counts when its span overlaps the range, not only when its first day is in it
    assert landed_partitions(landing, dt.date(2003, 2, 10), dt.date(2003, 2, 20)) == [MONTHS[1]]
    assert landed_partitions(landing, dt.date(2003, 1, 31), dt.date(2003, 3, 1)) == MONTHS
    with pytest.raises(LandingPartitionMissingError, match="no impressions landed between 2003-04-01 and 9999-12-31 "
                                                           r"under .*: its impressions partitions span "
                                                           r"2003-01-01\.\.2003-03-01 \(by month\); ask for days"):
        landed_partitions(landing, dt.date(2003, 4, 1))
    assert [partition_of(landing)(d) for d in DAYS] == [MONTHS[0]] * 2 + [MONTHS[1]] * 3 + [MONTHS[2]] * 2
    with pytest.raises(ValueError, match="landed by month: its event days are the days ingest wrote to the "
                                         "warehouse's impressions, so event_days needs the warehouse's catalog"):
        event_days(landing)


def test_an_empty_landing_says_to_land_data_and_names_no_open_range(tmp_path):
    with pytest.raises(LandingPartitionMissingError, match=r"^no impressions landed under .*; run `pinrec generate` "):
        landed_partitions(str(tmp_path))
    with pytest.raises(LandingPartitionMissingError, match="no impressions landed between 2003-01-01 and 2003-01-02 "):
        landed_partitions(str(tmp_path), dt.date(2003, 1, 1), dt.date(2003, 1, 2))


@pytest.mark.spark
def test_a_month_landing_s_event_days_are_the_days_its_events_were_ingested_to(spark, tmp_path):
    from pinrec.jobs.io.catalog import Catalog

    land(tmp_path / "months", by_month=True)
    landing, warehouse = str(tmp_path / "months"), str(tmp_path / "warehouse")
    with pytest.raises(IngestError, match=r"no impressions table at .*ingest the landed partitions "
                                          r"2003-01-01\.\.2003-03-01 first \(`pinrec ingest`\)"):
        event_days(landing, catalog=Catalog(spark, warehouse))
    # a day outside the landed months (another landing's leftovers) is no day of this landing
    write_impressions_as_ingested(spark, tmp_path / "months", warehouse, extra=(("old", dt.date(2002, 12, 20)),))
    calls = []

    def lazily():
        calls.append(1)
        return Catalog(spark, warehouse)

    assert event_days(landing, catalog=lazily) == DAYS and calls == [1]
    assert event_days(landing, dt.date(2003, 2, 5), dt.date(2003, 3, 1), Catalog(spark, warehouse)) == DAYS[3:6]
    with pytest.raises(IngestError, match="holds no day between 2003-03-02 and 2003-03-03"):
        event_days(landing, dt.date(2003, 3, 2), dt.date(2003, 3, 3), Catalog(spark, warehouse))
