"""The training set as its newest build defines it: a build over older days after one over newer
days leaves no test day before train days, nor two test periods, for its readers."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.training_set import current_training_set, defining_days

pytestmark = pytest.mark.spark


def day(n: int) -> dt.date:
    return dt.date(2026, 1, n)


def build(catalog, splits: dict[int, str]) -> None:
    """What a build writes: one row per day with its split, replacing exactly those days."""
    rows = [(f"e{n}", day(n), split) for n, split in splits.items()]
    df = catalog.spark.createDataFrame(rows, "event_id string, dt date, split string")
    catalog.write("training_set", df, days=[day(n) for n in splits])


def current(spark, warehouse) -> dict[int, str]:
    return {r["dt"].day: r["split"] for r in current_training_set(Catalog(spark, warehouse)).collect()}


def test_readers_go_by_the_newest_build(spark, tmp_path):
    wh = str(tmp_path)
    build(Catalog(spark, wh), {5: "train", 6: "train", 7: "validation", 8: "test"})
    assert current(spark, wh) == {5: "train", 6: "train", 7: "validation", 8: "test"}
    # a backfill of days 1-4 (split relative to its own days): the raw table now holds test day 4
    # before train days 5-6, and two test periods; days 5-8 follow its test day and are left out
    build(Catalog(spark, wh), {1: "train", 2: "train", 3: "validation", 4: "test"})
    assert sorted(r["split"] for r in Catalog(spark, wh).read("training_set").collect()).count("test") == 2
    assert current(spark, wh) == {1: "train", 2: "train", 3: "validation", 4: "test"}
    # days 5-8 again: the backfill's validation and test days 3-4 are earlier days, so train
    build(Catalog(spark, wh), {5: "train", 6: "train", 7: "validation", 8: "test"})
    assert current(spark, wh) == {1: "train", 2: "train", 3: "train", 4: "train", 5: "train", 6: "train",
                                  7: "validation", 8: "test"}


def test_a_commit_without_days_defers_to_the_one_before_and_none_reads_the_table_as_is(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    df = spark.createDataFrame([("e3", day(3), "test")], "event_id string, dt date, split string")
    catalog.write("training_set", df, replace_where="dt = DATE'2026-01-03'")  # no days=: no wrote_days
    assert defining_days(catalog, 0) is None
    assert current(spark, str(tmp_path)) == {3: "test"}
    build(catalog, {1: "train", 2: "test"})
    catalog.write("training_set", df, replace_where="dt = DATE'2026-01-03'")
    assert defining_days(catalog, 2) == [day(1), day(2)]
    assert current(spark, str(tmp_path)) == {1: "train", 2: "test"}  # day 3 follows its test day
