"""Checks derived from a contract: names, SQL predicates and GX expectations agree."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.ingest.validation import checks_for
from pinrec.schemas.catalog import ACTIONS, IMPRESSIONS, USERS

NOW = dt.datetime(2026, 2, 1, 12, 0, 0)


def test_checks_cover_every_declared_rule():
    names = [c.name for c in checks_for(IMPRESSIONS, NOW)]
    assert names == [
        "null:event_id", "null:user_id", "unknown_ref:user_id->users.user_id", "null:pin_id",
        "unknown_ref:pin_id->pins.pin_id", "null:ts", "null:session_id", "null:position",
        "out_of_range:position", "null:surface", "not_allowed:surface", "null:device", "not_allowed:device",
        "null:country", "bad_format:country", "future:ts", "outside_partition:ts",
    ]
    by_name = {c.name: c for c in checks_for(ACTIONS, NOW)}
    assert by_name["row:save_has_board"].violation == "NOT (type <> 'save' OR board_id IS NOT NULL)"
    assert "null:board_id" not in by_name  # nullable


def test_expectations_and_predicates_match():
    checks = {c.name: c for c in checks_for(USERS, NOW, max_future_skew_s=60)}
    age = checks["out_of_range:age"]
    assert age.gx_type == "ExpectColumnValuesToBeBetween"
    assert age.gx_kwargs == {"column": "age", "min_value": 0, "max_value": 120}
    assert age.violation == "`age` < 0 OR `age` > 120"
    future = checks["future:created_at"]
    assert "TIMESTAMP '2026-02-01 12:01:00'" in future.violation
    assert future.gx_kwargs["unexpected_rows_query"] == f"SELECT * FROM {{batch}} WHERE coalesce({future.violation}, false)"
    assert "outside_partition:created_at" not in checks  # dimension rows land when they arrive


@pytest.mark.spark
def test_tagging_and_suite_agree_on_a_tiny_frame(spark):
    from pinrec.jobs.ingest.validation import run_suite, tag_reasons

    rows = [(1, dt.datetime(2026, 1, 1), "US", "F", 30, None),
            (None, dt.datetime(2026, 1, 1), "usa", "X", 130, None),
            (3, dt.datetime(2030, 1, 1), "DE", None, None, "dev")]
    df = spark.createDataFrame(rows, "user_id bigint, created_at timestamp, country string, gender string, "
                                     "age int, occupation string")
    checks = checks_for(USERS, NOW)
    tagged = tag_reasons(df, checks).orderBy("created_at", "country").collect()
    reasons = {r["country"]: r["_reasons"] for r in tagged}
    assert reasons == {"US": "", "usa": "null:user_id;bad_format:country;not_allowed:gender;out_of_range:age",
                       "DE": "future:created_at"}
    results = {r.name: r for r in run_suite(df, USERS, checks)}
    assert results["null:user_id"].unexpected == 1 and not results["null:user_id"].success
    assert results["future:created_at"].unexpected == 1
    assert results["null:created_at"].success


def test_a_coarse_landing_partition_checks_the_events_month_or_year():
    month = {c.name: c for c in checks_for(IMPRESSIONS, NOW, granularity="month")}["outside_partition:ts"]
    assert month.violation == "trunc(to_date(`ts`), 'MM') <> `dt`"
    year = {c.name: c for c in checks_for(IMPRESSIONS, NOW, granularity="year")}["outside_partition:ts"]
    assert year.violation == "trunc(to_date(`ts`), 'YEAR') <> `dt`"
    assert {c.name: c for c in checks_for(IMPRESSIONS, NOW)}["outside_partition:ts"].violation == "to_date(`ts`) <> `dt`"
    with pytest.raises(ValueError, match="granularity must be one of"):
        checks_for(IMPRESSIONS, NOW, granularity="week")


@pytest.mark.spark
def test_one_gx_context_per_session_and_no_sample_fetches(spark):
    from pinrec.jobs.ingest.validation import _Gx, run_suite

    def frame(ages):
        rows = [(i, dt.datetime(2026, 1, 1), "US", "F", age, None) for i, age in enumerate(ages)]
        return spark.createDataFrame(rows, "user_id bigint, created_at timestamp, country string, gender string, "
                                           "age int, occupation string")

    checks = checks_for(USERS, NOW)
    sc = spark.sparkContext
    sc.setJobGroup("pinrec-test-gx-1", "first batch")
    first = {r.name: r.unexpected for r in run_suite(frame([30, 130, 140]), USERS, checks)}
    context = _Gx.of(spark).context
    sc.setJobGroup("pinrec-test-gx-2", "second batch, same table")
    second = {r.name: r.unexpected for r in run_suite(frame([30, 31]), USERS, checks)}
    sc.setJobGroup("", "")
    assert (first["out_of_range:age"], second["out_of_range:age"]) == (2, 0)  # the second batch is read, not a cache
    assert _Gx.of(spark).context is context
    # The column expectations' counts in GX's bundled aggregations (two jobs here) and one job per row
    # query, its count: GX's 20 sample values per column expectation and its 200 sample rows per row
    # query (one more job each) are not fetched.
    rows_queries = sum(c.gx_type == "UnexpectedRowsExpectation" for c in checks)
    assert 1 <= rows_queries < len(checks) - 2
    assert len(sc.statusTracker().getJobIdsForGroup("pinrec-test-gx-2")) <= 2 + rows_queries
