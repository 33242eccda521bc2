"""Ingestion into Delta: validation, quarantine with reasons, accounting, idempotence, bad input."""
from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from pinrec.jobs.config import IngestConfig
from pinrec.jobs.ingest.ingest import (
    BatchRejectedError,
    EmptyBatchError,
    IngestError,
    LandingFileError,
    LandingPartitionMissingError,
    SchemaDriftError,
    ingest,
    ingest_table,
)
from pinrec.jobs.ingest.landing import append_raw_lines, partition_dir, write_partition
from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.spark import spark_schema
from pinrec.jobs.io.table_lock import ConcurrentWriterError, needs_lease, table_writer
from pinrec.schemas.catalog import (
    ACTIONS,
    BOARDS,
    IMPRESSIONS,
    PIN_BOARD_EDGES,
    PINS,
    USERS,
)

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


def read(spark, lake, table, version=None):
    return Catalog(spark, lake.warehouse).read(table, version)


def test_bad_rows_are_quarantined_with_reasons_and_rows_add_up(spark, any_lake):
    lake = any_lake
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


def test_the_table_is_held_across_its_quarantine_and_valid_commits(spark, any_lake, monkeypatch):
    lake = any_lake
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1), ("e4", 1, 10, 0)]))
    held, real_write = [], Catalog.write

    def write(self, name, df, **kwargs):
        if name == "quarantine":  # the first of the two commits: another writer of impressions is kept out
            path = self.path("impressions")
            if needs_lease(path):  # on object storage, from any process: the lease is taken
                with pytest.raises(ConcurrentWriterError), table_writer(spark, path):
                    pass
            held.append(self._held.get("impressions") == threading.get_ident())
        return real_write(self, name, df, **kwargs)

    monkeypatch.setattr(Catalog, "write", write)
    report = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    assert held == [True] and (report.rows_valid, report.rows_quarantined) == (1, 1)
    assert [r["event_id"] for r in read(spark, lake, "impressions").collect()] == ["e1"]


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
    old = read(spark, lake, "impressions", third.delta_version - 1)
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
    assert Catalog(spark, lake.warehouse).version("impressions") is None
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
        .partitionBy("dt").save(Catalog(spark, lake.warehouse).path("boards"))
    report = ingest_table(spark, ACTIONS, lake, [DAY], LENIENT, now=NOW)
    assert report.quarantined_by_reason == {"unknown_ref:impression_id->impressions.event_id": 1,
                                            "row:save_has_board": 1}
    assert report.rows_valid == 1


def test_bad_inputs_raise_clear_errors(spark, any_lake):
    lake = any_lake
    with pytest.raises(LandingPartitionMissingError, match="impressions: no landing files"):
        ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    land_bytes(lake, "_SUCCESS", b"", table="impressions")  # a producer's marker alone is no data
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


def test_optional_tables_may_be_missing(spark, any_lake):
    lake = any_lake
    report = ingest_table(spark, USERS, lake, [DAY], LENIENT, now=NOW)
    assert (report.rows_in, report.rows_valid) == (0, 0)


def pin_line(pin_id, **changes) -> str:
    """One pins landing line, valid unless ``changes`` break it."""
    row = {"pin_id": pin_id, "created_at": "2026-01-05T10:00:00.000Z", "category": "c", "title": "t",
           "nsfw": False, "content_embedding": [0.5, 1.0]}
    return json.dumps({**row, **changes})


def land_bytes(lake, name: str, data: bytes, table: str = "pins", day: dt.date = DAY):
    path = partition_dir(lake.landing, table, day) / name
    path.write_bytes(data)
    return path


def quarantined(spark, lake, table="pins") -> dict[str, str]:
    return {r["raw"]: r["reason"] for r in read(spark, lake, "quarantine").where(f"source_table = '{table}'").collect()}


def test_a_dimension_row_delivered_again_on_a_later_day_is_never_a_second_row_of_its_key(spark, lake):
    """Dimensions are append-only: a later day's exact copy (a daily full dump) is a dropped duplicate, a
    changed copy is quarantined (duplicate_key), whether the first delivery is in the table or in the batch."""
    day2 = DAY + dt.timedelta(days=1)
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n" + pin_line(2) + "\n").encode())
    changed = pin_line(2, category="d", created_at="2026-01-06T10:00:00.000Z")
    land_bytes(lake, "part-00000.jsonl", "\n".join([pin_line(1, created_at="2026-01-05T10:00:00.000Z"), changed,
                                                    pin_line(3, created_at="2026-01-06T10:00:00.000Z")]).encode(),
               day=day2)

    def rows():
        return sorted((r["pin_id"], r["category"], str(r["dt"])) for r in read(spark, lake, "pins").collect())

    want = [(1, "c", "2026-01-05"), (2, "c", "2026-01-05"), (3, "c", "2026-01-06")]
    assert ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW).rows_valid == 2
    for _ in range(2):  # the later day, then the same again: the stored rows of the first day decide
        report = ingest_table(spark, PINS, lake, [day2], LENIENT, now=NOW)
        assert (report.rows_in, report.rows_valid, report.duplicates_dropped) == (3, 1, 1)
        assert report.quarantined_by_reason == {"duplicate_key:pin_id": 1} and rows() == want
    assert quarantined(spark, lake) == {changed: "duplicate_key:pin_id"}

    fresh = type(lake)(landing=lake.landing, warehouse=lake.warehouse + "-both")  # both days in one batch
    report = ingest_table(spark, PINS, fresh, [DAY, day2], LENIENT, now=NOW)
    assert (report.rows_in, report.rows_valid, report.duplicates_dropped) == (5, 3, 1)
    assert sorted((r["pin_id"], r["category"], str(r["dt"])) for r in read(spark, fresh, "pins").collect()) == want


def test_every_value_must_have_its_columns_json_type_and_each_key_appears_once(spark, lake):
    bad_utf8 = pin_line(40, title="caf_").encode().replace(b"caf_", b"caf\xe9")  # Latin-1, not UTF-8
    expected = {  # line -> reason
        pin_line(10, category=123): "type_mismatch:category",               # number in a string column
        pin_line(11, title={"a": 1}): "type_mismatch:title",                # object in a string column
        pin_line(12, title=[1, 2]): "type_mismatch:title",                  # array in a string column
        pin_line(13, created_at=1767607200): "type_mismatch:created_at",    # number in a timestamp column
        pin_line(14, content_embedding=[0.5, "NaN"]): "type_mismatch:content_embedding",
        pin_line(15, category=1.5, title=False): "type_mismatch:category;type_mismatch:title",
        pin_line("16"): "type_mismatch:pin_id",                             # the reverse cases (already refused)
        pin_line(17.5): "type_mismatch:pin_id",
        pin_line(True): "type_mismatch:pin_id",
        pin_line(18, nsfw=1): "type_mismatch:nsfw",
        pin_line(19, nsfw="false"): "type_mismatch:nsfw",
        pin_line(20, content_embedding=["0.5"]): "type_mismatch:content_embedding",
        pin_line(30)[:-1] + ', "category": "d"}': "duplicate_json_key:category",
        pin_line(31)[:-1] + ', "title": null, "nsfw": true}': "duplicate_json_key:nsfw;duplicate_json_key:title",
        pin_line(32).replace('"c"', "NaN"): "malformed_json",  # NaN is not JSON
        bad_utf8.decode("utf-8", "replace"): "invalid_utf8",
    }
    good = [pin_line(1), pin_line(2, title=None, content_embedding=None), pin_line(3, content_embedding=[1, 2])]
    lines = [*good, *[k for k in expected if "\ufffd" not in k]]
    land_bytes(lake, "part-00000.jsonl", ("\n".join(lines) + "\n").encode() + bad_utf8 + b"\n")

    report = ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)

    assert (report.rows_in, report.rows_valid, report.rows_quarantined) == (19, 3, 16)
    assert report.quarantined_by_reason == dict(Counter(expected.values()))
    assert quarantined(spark, lake) == expected
    valid = {r["pin_id"]: r["content_embedding"] for r in read(spark, lake, "pins").collect()}
    assert valid == {1: [0.5, 1.0], 2: None, 3: [1.0, 2.0]}


def test_records_are_split_on_newline_only(spark, lake):
    cr_inside_a_string = pin_line(3, title="a_b").replace("a_b", "a\rb")  # a raw control character: not JSON
    land_bytes(lake, "part-00000.jsonl", (
        pin_line(1).replace(', "title"', ',\r"title"') + "\r\n"    # a lone CR between tokens is whitespace
        + pin_line(2) + "\n" + cr_inside_a_string + "\r\n" + "\r\n").encode())
    land_bytes(lake, "part-00001.jsonl.gz", gzip.compress((pin_line(4) + "\r\n" + pin_line(5)).encode()))
    land_bytes(lake, "part-00002.jsonl", ("\ufeff" + pin_line(6) + "\r\n").encode())  # a UTF-8 byte-order mark

    report = ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)

    assert (report.rows_in, report.rows_valid, report.rows_quarantined) == (6, 5, 1)
    assert quarantined(spark, lake) == {cr_inside_a_string: "malformed_json"}
    assert sorted(r["pin_id"] for r in read(spark, lake, "pins").collect()) == [1, 2, 4, 5, 6]


def test_a_file_in_a_sub_folder_of_a_partition_fails_the_batch_naming_it(spark, any_lake):
    lake = any_lake
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n").encode())
    land_bytes(lake, "_temporary/0/part-00001.jsonl", (pin_line(2) + "\n").encode())  # hidden: ignored
    land_bytes(lake, ".staging/part-00001.jsonl", (pin_line(2) + "\n").encode())
    assert ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW).rows_in == 1

    late = land_bytes(lake, "hour=23/part-00002.jsonl", (pin_line(3) + "\n").encode())
    with pytest.raises(IngestError, match=re.escape(str(late)) + ".*sub-folder") as err:
        ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    assert isinstance(err.value, LandingFileError)
    assert read(spark, lake, "pins").count() == 1  # the batch wrote nothing
    (partition_dir(lake.landing, "pins", DAY) / "part-00000.jsonl").delete()
    with pytest.raises(LandingFileError, match=re.escape(str(late))):  # only a sub-folder: not "no files"
        ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)


def test_a_gz_file_that_cannot_be_decompressed_fails_naming_it(spark, any_lake):
    lake = any_lake
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n").encode())
    plain = land_bytes(lake, "part-00001.jsonl.gz", (pin_line(2) + "\n").encode())
    with pytest.raises(LandingFileError, match=re.escape(f"pins: cannot read landing file {plain}: not a gzip file")):
        ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    plain.delete()
    packed = gzip.compress(("\n".join(pin_line(i) for i in range(2, 200)) + "\n").encode())
    cut = land_bytes(lake, "part-00002.jsonl.gz", packed[: len(packed) // 2])
    with pytest.raises(LandingFileError, match=re.escape(f"{cut}: Unexpected end of input stream")):
        ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    assert Catalog(spark, lake.warehouse).version("pins") is None


@pytest.mark.parametrize("periods, freq, bound, granularity", [  # 40 days over ~20 years, or over 4 months
    pytest.param(40, "183D", 24, "year", marks=pytest.mark.full), pytest.param(40, "3D", 6, "month", marks=pytest.mark.full)])
def test_a_static_log_in_coarse_partitions_ingests_every_row_into_its_own_day(spark, tmp_path, periods, freq, bound,
                                                                             granularity):
    import numpy as np

    from pinrec.jobs.ingest.ingest import IngestPaths, landed_days
    from pinrec.jobs.ingest.log_reader import LogSpec, load_log

    stamps = pd.date_range("2003-02-10 09:30", periods=periods, freq=freq, tz="UTC")
    log = pd.DataFrame({"user_id": np.arange(periods) % 9, "item_id": np.arange(periods) % 31,
                        "ts": stamps.astype("int64") // 10**9, "rating": np.where(np.arange(periods) % 3, 5, 2)})
    log = log.drop_duplicates(["user_id", "item_id"])
    log.to_parquet(tmp_path / "log.parquet")
    landing = tmp_path / "landing"
    summary = load_log(tmp_path / "log.parquet", landing, LogSpec(timestamp="ts", rating="rating"), max_partitions=bound)
    assert summary.partition == granularity
    assert all(len(list((landing / t).iterdir())) <= bound for t in summary.rows)  # one file per partition
    paths = IngestPaths(str(landing), str(tmp_path / "warehouse"))
    days = landed_days(str(landing), dt.date.min, dt.date.max)
    reports = {r.table: r for r in ingest(spark, paths, days, IngestConfig(), now=NOW)}
    for table, report in reports.items():
        assert (report.rows_in, report.rows_valid, report.rows_quarantined) == (summary.total(table),) * 2 + (0,), table
    impressions = read(spark, paths, "impressions").toPandas()
    assert len(impressions) == len(log)
    assert (impressions["dt"] == impressions["ts"].dt.date).all()  # each event in its own day, not its month/year
    assert impressions["dt"].nunique() == log["ts"].nunique()
    # A re-run replaces the spans' days: no duplicates.
    ingest(spark, paths, days, IngestConfig(), tables=("impressions",), now=NOW)
    assert read(spark, paths, "impressions").count() == len(log)


def test_the_batch_accounting_counts_reasons_valid_rows_and_exact_duplicates_in_one_job(spark):
    from pinrec.jobs.ingest.ingest import _accounting

    quarantine = spark.createDataFrame([("a", "malformed_json"), ("b", "null:user_id;future:ts"),
                                        ("c", "malformed_json"), ("d", "duplicate_key:event_id")],
                                       "_raw string, reason string")
    valid = spark.createDataFrame([(1,), (2,), (3,)], "user_id bigint")
    extra = spark.createDataFrame([(7, True), (8, False), (9, True)], "user_id bigint, _exact boolean")
    sc = spark.sparkContext
    sc.setJobGroup("pinrec-test-accounting", "the accounting")
    try:
        by_reason, valid_rows, duplicates = _accounting(quarantine, valid, extra)
    finally:
        sc.setJobGroup("", "")
    assert by_reason == {"malformed_json": 2, "null:user_id;future:ts": 1, "duplicate_key:event_id": 1}
    assert (valid_rows, duplicates) == (3, 2)
    assert len(sc.statusTracker().getJobIdsForGroup("pinrec-test-accounting")) <= 2  # one aggregate (+ AQE's map stage)
    assert _accounting(quarantine.limit(0), valid.limit(0), extra.limit(0)) == ({}, 0, 0)


def test_tables_are_grouped_in_foreign_key_levels():
    from pinrec.jobs.ingest.ingest import reference_levels
    from pinrec.schemas.catalog import RAW_TABLES

    names = lambda levels: [[s.name for s in level] for level in levels]
    assert names(reference_levels(list(RAW_TABLES))) == [["users", "pins"], ["boards", "impressions"],
                                                         ["pin_board_edges", "actions"]]
    # a table referencing one left out (already in the warehouse) does not wait for it
    assert names(reference_levels([PINS, BOARDS, ACTIONS])) == [["pins", "boards"], ["actions"]]
    assert reference_levels([]) == []


@pytest.mark.full  # 35-50 s; make test ingests side by side in every other test (ingest.parallel_tables defaults to 2)
def test_tables_side_by_side_write_what_one_after_the_other_writes_and_a_failure_stops_the_next_level(spark, tmp_path):
    from pinrec.jobs.ingest.ingest import IngestPaths

    landing = str(tmp_path / "landing")
    write_partition(landing, USERS, DAY, users((1, 2, 3)))
    write_partition(landing, PINS, DAY, pins((10, 11)))
    append_raw_lines(landing, "pins", DAY, ['{"pin_id": 12, bad'])
    write_partition(landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1), ("e2", 3, 12, 2), ("e3", 9, 11, 0)]))
    boards = pd.DataFrame({"board_id": [100, 101], "owner_user_id": [1, 8], "topic": ["b", "c"],
                           "created_at": [TS, TS]})
    write_partition(landing, BOARDS, DAY, boards)

    def run(name, parallel):
        lake = IngestPaths(landing, str(tmp_path / name))
        reports = ingest(spark, lake, [DAY], IngestConfig(max_failing_fraction=0.9, parallel_tables=parallel),
                         tables=("users", "pins", "boards", "impressions"), now=NOW)
        tables = {t: sorted(map(tuple, read(spark, lake, t).drop("dt").toPandas().astype(str).values.tolist()))
                  for t in ("users", "pins", "boards", "impressions")}
        quarantine = sorted(map(tuple, read(spark, lake, "quarantine").select("source_table", "reason", "raw")
                                .toPandas().values.tolist()))
        return [(r.table, r.rows_in, r.rows_valid, r.quarantined_by_reason) for r in reports], tables, quarantine

    one_by_one, side_by_side = run("one", 1), run("two", 2)
    assert side_by_side == one_by_one
    assert one_by_one[0] == [("users", 3, 3, {}), ("pins", 3, 2, {"malformed_json": 1}),
                             ("boards", 2, 1, {"unknown_ref:owner_user_id->users.user_id": 1}),
                             ("impressions", 3, 1, {"unknown_ref:user_id->users.user_id;out_of_range:position": 1,
                                                    "unknown_ref:pin_id->pins.pin_id": 1})]

    # impressions rejected: boards, beside it, is written; pin_board_edges, in the level after, is not tried
    strict = IngestPaths(landing, str(tmp_path / "strict"))
    write_partition(landing, PIN_BOARD_EDGES, DAY, pd.DataFrame(
        {"pin_id": [10], "board_id": [100], "saved_at": [TS]}))
    with pytest.raises(BatchRejectedError, match="impressions"):
        ingest(spark, strict, [DAY], IngestConfig(max_failing_fraction=0.5, parallel_tables=2),
               tables=("users", "pins", "boards", "impressions", "pin_board_edges"), now=NOW)
    catalog = Catalog(spark, strict.warehouse)
    assert catalog.version("boards") is not None and catalog.version("impressions") is None
    assert catalog.version("pin_board_edges") is None


def test_tables_side_by_side_on_one_catalog_record_only_their_own_reads(spark, tmp_path, monkeypatch):
    """The demo and the DAG hand ingest one catalog: boards (reading users) beside impressions (reading
    users and pins) must not record pins, even when impressions read it before boards' write."""
    from pinrec.jobs.ingest.ingest import IngestPaths

    landing = str(tmp_path / "landing")
    write_partition(landing, USERS, DAY, users())
    write_partition(landing, PINS, DAY, pins())
    write_partition(landing, BOARDS, DAY, pd.DataFrame({"board_id": [100], "owner_user_id": [1], "topic": ["b"],
                                                        "created_at": [TS]}))
    write_partition(landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1)]))
    shared = Catalog(spark, str(tmp_path / "warehouse"))
    pins_read, real_read, real_write = threading.Event(), Catalog.read, Catalog.write

    def read(self, name, version=None):
        df = real_read(self, name, version)
        if self is shared and name == "pins":
            pins_read.set()
        return df

    def write(self, name, df, **kwargs):
        if name == "boards":  # impressions, beside it, has read pins by now
            assert pins_read.wait(120)
        return real_write(self, name, df, **kwargs)

    monkeypatch.setattr(Catalog, "read", read)
    monkeypatch.setattr(Catalog, "write", write)
    reports = ingest(spark, IngestPaths(landing, shared), [DAY], IngestConfig(parallel_tables=2),
                     tables=("users", "pins", "boards", "impressions"), now=NOW)
    assert [(r.table, r.rows_valid) for r in reports] == [("users", 2), ("pins", 2), ("boards", 1), ("impressions", 1)]
    look = Catalog(spark, shared.warehouse)
    recorded = {t: look.user_metadata(t)["read"] for t in ("users", "pins", "boards", "impressions")}
    assert recorded == {"users": {}, "pins": {}, "boards": {"users": 0}, "impressions": {"users": 0, "pins": 0}}
    assert shared.reads == {"users": 0, "pins": 0}  # the job's lineage still holds every table's reads


def test_a_clean_batch_writes_no_quarantine_commit_but_clears_rows_it_quarantined_before(spark, lake):
    write_partition(lake.landing, PINS, DAY, pins((10, 11)))
    append_raw_lines(lake.landing, "pins", DAY, ['{"pin_id": 12, bad'])
    ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    catalog = Catalog(spark, lake.warehouse)
    assert catalog.version("quarantine") == 0 and read(spark, lake, "quarantine").count() == 1
    write_partition(lake.landing, USERS, DAY, users())
    assert ingest_table(spark, USERS, lake, [DAY], LENIENT, now=NOW).rows_quarantined == 0
    assert catalog.version("quarantine") == 0  # clean, nothing of users to replace: no commit
    append_raw_lines(lake.landing, "pins", DAY, [pin_line(12)])  # the bad line fixed
    assert ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW).rows_valid == 3
    assert catalog.version("quarantine") == 1 and read(spark, lake, "quarantine").count() == 0  # cleared


# --- multi-day batches as daily runs see them (review of session 14) -------------------------

DAY2 = DAY + dt.timedelta(days=1)


def test_a_late_copy_in_the_next_days_folder_does_not_drop_the_valid_event(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1)]))
    write_partition(lake.landing, IMPRESSIONS, DAY2, impressions([("f1", 1, 10, 1, "home_feed",
                                                                   TS + pd.Timedelta(days=1))]))
    late = {"event_id": "e1", "user_id": 1, "pin_id": 10, "ts": "2026-01-05T10:00:00.000Z", "session_id": "s1",
            "position": 1, "surface": "home_feed", "device": "ios", "country": "US"}
    append_raw_lines(lake.landing, "impressions", DAY2, [json.dumps(late), json.dumps(late, separators=(",", ":"))])
    report = ingest_table(spark, IMPRESSIONS, lake, [DAY, DAY2], LENIENT, now=NOW)
    valid = {(r["event_id"], r["dt"]) for r in read(spark, lake, "impressions").collect()}
    assert valid == {("e1", DAY), ("f1", DAY2)}
    assert report.quarantined_by_reason == {"outside_partition:ts": 1} and report.duplicates_dropped == 1


def test_an_empty_day_of_a_mandatory_table_in_a_multi_day_batch_is_an_error(spark, lake):
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1)]))
    write_partition(lake.landing, IMPRESSIONS, DAY2, impressions([("f1", 1, 10, 1, "home_feed",
                                                                   TS + pd.Timedelta(days=1))]))
    ingest_table(spark, IMPRESSIONS, lake, [DAY, DAY2], LENIENT, now=NOW)
    land_bytes(lake, "part-00000.jsonl", b"\n", table="impressions", day=DAY2)  # the export came out empty
    with pytest.raises(EmptyBatchError, match=f"impressions: the landing files for {DAY2} hold no rows"):
        ingest_table(spark, IMPRESSIONS, lake, [DAY, DAY2], LENIENT, now=NOW)
    assert read(spark, lake, "impressions").where(f"dt = DATE'{DAY2}'").count() == 1  # not wiped


def test_floats_beyond_their_type_and_null_keys_get_their_own_reasons(spark, lake):
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n" + pin_line(2, content_embedding=[1e39, -1e39])
                                          + "\n").encode())
    report = ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    assert report.quarantined_by_reason == {"type_mismatch:content_embedding": 1}
    seed_dimensions(spark, lake)
    write_partition(lake.landing, IMPRESSIONS, DAY, impressions([("e1", 1, 10, 1), (None, 1, 10, 2),
                                                                 (None, 2, 11, 3), (None, 2, 11, 3)]))
    report = ingest_table(spark, IMPRESSIONS, lake, [DAY], LENIENT, now=NOW)
    assert report.quarantined_by_reason == {"null:event_id": 3} and report.duplicates_dropped == 0


def test_two_ingests_of_a_dimension_at_once_never_store_a_key_twice(spark, lake, monkeypatch):
    """Two writers of pins (a backfill and the daily run: threads here, processes in production) each
    check the batch's keys against the stored rows; the check must see the other writer's commit, so
    it runs under the table's hold. Each writer waits (up to 10 s) for the other to have checked too:
    with the check outside the hold both check an empty table and both days store pins 1 and 2."""
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n" + pin_line(2) + "\n").encode())
    land_bytes(lake, "part-00000.jsonl", (pin_line(1) + "\n" + pin_line(2) + "\n").encode(), day=DAY2)
    import pinrec.jobs.ingest.ingest as ingest_module

    both_checked, real_check = threading.Barrier(2), ingest_module._against_stored

    def check(*args):
        out = real_check(*args)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=10)  # under the hold, the other writer cannot get here: it times out
        return out

    monkeypatch.setattr(ingest_module, "_against_stored", check)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda day: ingest_table(spark, PINS, lake, [day], LENIENT, now=NOW), [DAY, DAY2]))
    stored = Counter(r["pin_id"] for r in read(spark, lake, "pins").collect())
    assert stored == {1: 1, 2: 1}
    assert sorted(r.rows_valid for r in reports) == [0, 2] and sum(r.duplicates_dropped for r in reports) == 2


def test_a_second_record_glued_onto_a_line_is_quarantined_not_dropped(spark, lake):
    """Spark's JSON functions stop at the first object's closing brace: the glued record must not vanish."""
    glued, brace = pin_line(1) + " " + pin_line(2), pin_line(4) + "}"
    land_bytes(lake, "part-00000.jsonl", b"\xef\xbb\xbf" + "\n".join([pin_line(3), glued, brace]).encode())
    report = ingest_table(spark, PINS, lake, [DAY], LENIENT, now=NOW)
    assert (report.rows_in, report.rows_valid, report.quarantined_by_reason) == (3, 1, {"malformed_json": 2})
    assert quarantined(spark, lake) == {glued: "malformed_json", brace: "malformed_json"}
    assert [r["pin_id"] for r in read(spark, lake, "pins").collect()] == [3]  # after a byte-order mark: valid
