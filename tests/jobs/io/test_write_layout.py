"""A partitioned write's days predicate (exactly the days, runs as ranges) and its file layout (clustered)."""
from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import pytest

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.write_layout import clustered, days_predicate

D0 = dt.date(2025, 12, 30)


def test_days_predicate_is_true_on_exactly_the_days_given():
    assert days_predicate([D0]) == "dt = DATE'2025-12-30'"
    # a run across a year's end is one range; a lone day and a second run are ORed
    days = [D0, D0 + dt.timedelta(1), D0 + dt.timedelta(2), D0 + dt.timedelta(5), D0 + dt.timedelta(7),
            D0 + dt.timedelta(8)]
    assert days_predicate(reversed(days), column="d") == (
        "((d >= DATE'2025-12-30' AND d <= DATE'2026-01-01') OR d = DATE'2026-01-04' "
        "OR (d >= DATE'2026-01-06' AND d <= DATE'2026-01-07'))")
    rng = random.Random(7)
    for _ in range(200):  # the predicate, evaluated, selects the days and nothing else
        chosen = {D0 + dt.timedelta(rng.randrange(40)) for _ in range(rng.randrange(1, 25))}
        expr = re.sub(r"DATE'([0-9-]+)'", r"dt.date.fromisoformat('\1')", days_predicate(chosen, column="d"))
        expr = expr.replace("AND", "and").replace("OR", "or").replace(" = ", " == ")
        assert {D0 + dt.timedelta(i) for i in range(-3, 45) if eval(expr, {"dt": dt, "d": D0 + dt.timedelta(i)})} \
            == chosen


def _files(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in Path(path.removeprefix("file://")).glob("dt=*/*.parquet"):
        out[f.parent.name] = out.get(f.parent.name, 0) + 1
    return out


@pytest.mark.spark
def test_a_write_of_many_days_leaves_one_file_per_day_and_every_row(spark, tmp_path):
    days = [D0 + dt.timedelta(i) for i in range(30)]
    rows = [(i, days[i % 30]) for i in range(600)]
    df = spark.createDataFrame(rows, "id bigint, dt date").repartition(6)  # six tasks, each with every day
    catalog = Catalog(spark, str(tmp_path))
    commit = catalog.write("impressions", df, days=days)
    assert commit.rows == 600
    assert _files(catalog.path("impressions")) == {f"dt={d.isoformat()}": 1 for d in days}
    assert sorted((r["id"], r["dt"]) for r in catalog.read("impressions").collect()) == sorted(rows)
    # a rewrite of a run and a lone day replaces those days only
    again = spark.createDataFrame([(1000 + i, days[i]) for i in (3, 4, 9)], "id bigint, dt date")
    catalog.write("impressions", again, days=[days[3], days[4], days[9]])
    kept = [r for r in rows if r[1] not in (days[3], days[4], days[9])]
    assert sorted((r["id"], r["dt"]) for r in catalog.read("impressions").collect()) == sorted(
        kept + [(1003, days[3]), (1004, days[4]), (1009, days[9])])


@pytest.mark.spark
def test_clustered_keeps_a_single_day_as_it_is_and_spreads_few_days_over_the_tasks(spark):
    df = spark.createDataFrame([(i, D0 + dt.timedelta(i % 2), {"k": 1}) for i in range(400)],
                               "id bigint, dt date, m map<string,int>").repartition(3)
    assert clustered(df, ("dt",), 1) is df
    old = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "8")
    try:
        out = clustered(df, ("dt",), 2)  # 8 tasks for 2 days: each day over 4 of them, by a row hash
        per_task = out.rdd.glom().map(lambda rows: sorted({r["dt"] for r in rows})).collect()
        assert sorted(r["id"] for r in out.collect()) == list(range(400))
        # each (day, hash) group lies in one task: at most 2 x 4 (task, day) pairs (files), more than 2 (spread)
        assert 2 < sum(len(days) for days in per_task) <= 8
        assert out.rdd.glom().map(len).collect() == clustered(df, ("dt",), 2).rdd.glom().map(len).collect()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
