"""Ingestion into Delta: validation, quarantine with reasons, accounting, idempotence, bad input."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from jobs.config import IngestConfig
from jobs.ingest import (
    BatchRejectedError,
    EmptyBatchError,
    IngestError,
    LandingPartitionMissingError,
    SchemaDriftError,
    delta_version,
    ingest,
    ingest_table,
)
from jobs.landing import append_raw_lines, write_partition
from jobs.spark import spark_schema
from schemas.catalog import ACTIONS, BOARDS, IMPRESSIONS, PINS, USERS

pytestmark = pytest.mark.spark

DAY = dt.date(2026, 1, 5)
NOW = dt.datetime(2026, 2, 1)
TS = pd.Timestamp("2026-01-05 10:00", tz="UTC")
LENIENT = IngestConfig(max_failing_fraction=0.9)


def users(ids=(1, 2)):
    return pd.DataFrame({"user_id": list(ids), "created_at": [TS] * len(ids), "country": ["US"] * len(ids),
                         "gender": ["F"] * len(ids), "age": [30] * len(ids), "occupation": ["x"] * len(ids)})


def pins(ids=(10, 11)):
    return pd.DataFrame({"pin_id": list(ids), "created_at": [TS] * len(ids), "category": ["c"] * len(ids),
                         "title": ["t"] * len(ids), "nsfw": [False] * len(ids),
                         "content_embedding": [[0.5, 0.25]] * len(ids)})


def impressions(rows):
    """rows: (event_id, user_id, pin_id, position[, surface[, ts]])"""
    out = []
    for r in rows:
        event_id, user_id, pin_id, position = r[:4]
        surface = r[4] if len(r) > 4 else "home_feed"
        ts = r[5] if len(r) > 5 else TS
        out.append({"event_id": event_id, "user_id": user_id, "pin_id": pin_id, "ts": ts, "session_id": "s1",
                    "position": position, "surface": surface, "device": "ios", "country": "US"})
    return pd.DataFrame(out)


def seed_dimensions(spark, lake, day=DAY):
    write_partition(lake.landing, USERS, day, users())
    write_partition(lake.landing, PINS, day, pins())
    ingest(spark, lake, [day], LENIENT, tables=("users", "pins"), now=NOW)


def read(spark, lake, table, **options):
    reader = spark.read.format("delta")
    for k, v in options.items():
        reader = reader.option(k, v)
    return reader.load(lake.table(table))


def test_bad_rows_are_quarantined_with_reasons_and_rows_add_up(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([
        ("e1", 1, 10, 1), ("e2", 2, 11, 2),
        ("e2", 2, 11, 2),                       # exact duplicate: dropped, counted
        ("e3", 7, 10, 3),                       # unknown user
        ("e4", 1, 10, 0),                       # position out of range
        ("e5", 1, 10, 4, "tv"),                 # surface not allowed
        ("e6", 1, 10, 5, "home_feed", pd.Timestamp("2099-01-05", tz="UTC")),  # future, other day
    ]))
    append_raw_lines(lake.landing, "impressions", DAY, [
        '{"event_id": "x", bad',
        ('{"event_id":"e9","user_id":"abc","pin_id":10,"ts":"2026-01-05T10:00:00.000Z","session_id":"s",'
        '"position":1,"surface":"home_feed","device":"ios","country":"US"}'),
        ('{"event_id":"e1","user_id":2,"pin_id":10,"ts":"2026-01-05T11:00:00.000Z","session_id":"s",'
        '"position":1,"surface":"home_feed","device":"ios","country":"US"}'),  # reuses key e1, other payload
    ])
    report = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)

    assert report.rows_in == 10
    assert report.duplicates_dropped == 1
    assert report.rows_valid == 2
    assert report.rows_quarantined == 7
    assert report.quarantined_by_reason == {
        "unknown_ref:user_id->users.user_id": 1,
        "out_of_range:position": 1,
        "not_allowed:surface": 1,
        "future:ts;outside_partition:ts": 1,
        "malformed_json": 1,
        "type_mismatch:user_id": 1,
        "duplicate_key:event_id": 1,
    }
    failed = {e.name: e.unexpected for e in report.expectations if not e.success}
    assert failed == {"unknown_ref:user_id->users.user_id": 1, "out_of_range:position": 1,
                      "not_allowed:surface": 1, "future:ts": 1, "outside_partition:ts": 1}
    valid = sorted(r["event_id"] for r in read(spark, lake, "impressions").collect())
    assert valid == ["e1", "e2"]
    q = read(spark, lake, "quarantine").where("source_table = 'impressions'")
    assert q.count() == 7
    raw = {r["reason"]: r["raw"] for r in q.collect()}
    assert raw["malformed_json"] == '{"event_id": "x", bad'
    assert '"e4"' in raw["out_of_range:position"]


def test_rerun_replaces_the_partition_and_time_travel_reads_the_old_one(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1), ("e2", 2, 11, 2)]))
    first = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    again = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    assert read(spark, lake, "impressions").count() == 2
    assert again.delta_version == first.delta_version + 1

    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1)]))
    third = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    assert [r["event_id"] for r in read(spark, lake, "impressions").collect()] == ["e1"]
    old = read(spark, lake, "impressions", versionAsOf=third.delta_version - 1)
    assert sorted(r["event_id"] for r in old.collect()) == ["e1", "e2"]

    other_day = DAY + dt.timedelta(days=1)
    write_partition(lake.landing, IMPRESSIONS, other_day, impressions(
        [("f1", 1, 10, 1, "home_feed", TS + pd.Timedelta(days=1))]))
    ingest_table(spark, IMPRESSIONS, lake, [other_day], LENIENT, now=NOW)
    ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)  # must not touch the other day
    assert sorted(r["event_id"] for r in read(spark, lake, "impressions").collect()) == ["e1", "f1"]


def test_a_batch_over_the_threshold_is_rejected_and_writes_nothing_valid(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions(
        [("e1", 1, 10, 1), ("e2", 1, 10, 0), ("e3", 1, 10, 999), ("e4", 9, 10, 1)]))
    with pytest.raises(BatchRejectedError) as err:
        ingest_table(spark, IMPRESSIONS, lake, [DAY], IngestConfig(max_failing_fraction=0.5), now=NOW)
    report = err.value.report
    assert report.rejected and report.rows_quarantined == 3 and report.rows_valid == 1
    message = str(err.value)
    assert "REJECTED" in message and "75.0%" in message
    assert "expect_column_values_to_be_between [out_of_range:position]: 2 rows" in message
    assert '"e2"' in message  # a sample row
    assert delta_version(spark, lake.table("impressions")) is None
    assert read(spark, lake, "quarantine").where("source_table = 'impressions'").count() == 3


def test_actions_reference_impressions_and_saves_need_a_board(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1)]))
    ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    actions = pd.DataFrame([
        {"event_id": "a1", "impression_id": "e1", "user_id": 1, "pin_id": 10, "session_id": "s1",
         "type": "closeup", "ts": TS, "board_id": None},
        {"event_id": "a2", "impression_id": "nope", "user_id": 1, "pin_id": 10, "session_id": "s1",
         "type": "closeup", "ts": TS, "board_id": None},
        {"event_id": "a3", "impression_id": "e1", "user_id": 1, "pin_id": 10, "session_id": "s1",
         "type": "save", "ts": TS, "board_id": None},
    ])
    write_partition(lake.landing, ACTIONS, DAY, actions)
    # boards has never been ingested: the board_id reference cannot be checked yet
    with pytest.raises(IngestError, match="ingest boards"):
        ingest_table(spark, ACTIONS, lake, [DAY], LENIENT, now=NOW)
    # an empty boards table makes the reference checkable (no board is known)
    spark.createDataFrame([], spark_schema(BOARDS, with_partition=True)).write.format("delta") \
        .partitionBy("dt").save(lake.table("boards"))
    report = ingest_table(spark, ACTIONS, lake, [DAY], LENIENT, now=NOW)
    assert report.quarantined_by_reason == {"unknown_ref:impression_id->impressions.event_id": 1,
                                            "row:save_has_board": 1}
    assert report.rows_valid == 1


def test_bad_inputs_raise_clear_errors(spark, lake):
    with pytest.raises(LandingPartitionMissingError, match="impressions: no landing files"):
        ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)

    append_raw_lines(lake.landing, "impressions", DAY, [], name="part-00000.jsonl")
    with pytest.raises(EmptyBatchError, match="hold no rows"):
        ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)

    seed_dimensions(spark, lake)
    drift = impressions([("e1", 1, 10, 1)]).assign(referrer="x")
    write_partition(lake.landing, IMPRESSIONS, DAY, drift)
    with pytest.raises(SchemaDriftError, match=r"\['referrer'\]"):
        ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)

    wrong_types = impressions([("e1", 1, 10, 1), ("e2", 2, 11, 2)]).assign(position=["first", "second"])
    write_partition(lake.landing, IMPRESSIONS, DAY, wrong_types)
    with pytest.raises(BatchRejectedError) as err:
        ingest_table(spark, IMPRESSIONS, lake, [DAY], IngestConfig(max_failing_fraction=0.05), now=NOW)
    assert err.value.report.quarantined_by_reason == {"type_mismatch:position": 2}


def test_optional_tables_may_be_missing(spark, lake):
    report = ingest_table(spark, USERS, lake, [DAY], LENIENT, now=NOW)
    assert (report.rows_in, report.rows_valid) == (0, 0)
