"""The writer lease of Delta tables on S3 (SeaweedFS through s3a): a second writer fails cleanly."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
import uuid

import pytest
from pyspark.sql import functions as F

from pinrec.export.serving.store import ConditionalWritesIgnored
from pinrec.jobs.io import table_lease
from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.lake import Location
from pinrec.jobs.io.spark import configure_s3a
from pinrec.jobs.io.table_lock import LEASE, ConcurrentWriterError, table_writer
from tests.support.s3 import BUCKET

pytestmark = [pytest.mark.spark, pytest.mark.integration]
DAY = dt.date(2026, 1, 5)
NAME = "training_set"  # any partitioned warehouse table: the catalog checks no columns


@pytest.fixture(scope="module")
def warm(spark, s3_server):
    """s3a pointed at the server, and its first requests made: they start the AWS client (seconds),
    which the tests' short TTLs would otherwise count as a stalled renewal."""
    configure_s3a(spark, s3_server.options)
    with table_writer(spark, f"s3a://{BUCKET}/warm-{uuid.uuid4().hex[:10]}"):
        pass


@pytest.fixture()
def catalog(spark, s3_server, warm):
    return Catalog(spark, f"s3a://{BUCKET}/lock-{uuid.uuid4().hex[:10]}")


@pytest.fixture()
def table(catalog):
    return catalog.path(NAME)


def frame(spark, ids, day="2026-01-05"):
    return spark.createDataFrame([(i, dt.date.fromisoformat(day)) for i in ids], "id bigint, dt date")


def lease(s3_server, table) -> Location:
    return Location(f"{table}/{LEASE}", s3_server.options)


def test_a_second_writer_of_the_table_fails_before_writing_and_the_log_stays_whole(spark, s3_server, catalog, table):
    inside, second_done, errors = threading.Event(), threading.Event(), []

    def first_writer():
        try:
            with table_writer(spark, table, ttl_s=4.0):  # renewed every 0.4 s: the second writer sees it alive
                inside.set()
                second_done.wait(60)
                frame(spark, [1, 2]).write.format("delta").partitionBy("dt").save(table)
        except Exception as e:  # noqa: BLE001  (reported by the assertion below)
            errors.append(e)

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert inside.wait(60)
    holder = json.loads(lease(s3_server, table).read_text())
    try:
        with pytest.raises(ConcurrentWriterError, match=f"{table} is being written by another writer .*pid {holder['pid']}"):
            catalog.write(NAME, frame(spark, [7, 8, 9]), days=[DAY])
    finally:
        second_done.set()
        thread.join(120)
    assert errors == []
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    assert [r["version"] for r in history] == [0]
    assert sorted(r["id"] for r in spark.read.format("delta").load(table).collect()) == [1, 2]
    assert not lease(s3_server, table).exists()  # released: the next writer goes ahead
    assert catalog.write(NAME, frame(spark, [7, 8, 9]), days=[DAY]).version == 1
    assert catalog.version(NAME) == 1
    assert sorted(r["id"] for r in spark.read.format("delta").load(table).collect()) == [7, 8, 9]


def test_the_lease_is_renewed_while_writing_and_released_after_a_failure(spark, s3_server, table):
    with pytest.raises(RuntimeError, match="boom"), table_writer(spark, table, ttl_s=4.0):
        first = json.loads(lease(s3_server, table).read_text())
        deadline = time.monotonic() + 30  # renewed every ttl/4; polled, not slept: a loaded machine is slow
        while (renewed := json.loads(lease(s3_server, table).read_text()))["writes"] <= first["writes"]:
            assert time.monotonic() < deadline, "the lease was not renewed within 30 s"
            time.sleep(0.2)
        assert renewed["holder"] == first["holder"]
        with pytest.raises(ConcurrentWriterError), table_writer(spark, table):
            pass
        raise RuntimeError("boom")
    assert not lease(s3_server, table).exists()


def test_a_lease_that_cannot_be_renewed_stops_the_write_before_it_commits(spark, s3_server, table, monkeypatch):
    def outage(self):  # every renewal meets an S3 outage: before, the heartbeat died of the first
        raise OSError("503 Slow Down")

    monkeypatch.setattr(table_lease.Lease, "renew", outage)
    slow = F.udf(lambda i: time.sleep(1) or i, "bigint")  # 60 s of writing unless cancelled
    started = time.monotonic()
    with pytest.raises(ConcurrentWriterError, match=r"lost its lease while writing \(not renewed for 1 s; last "
                                                    r"error: OSError\('503 Slow Down'\)\)\. Its Spark jobs were "
                                                    r"cancelled"), table_writer(spark, table, ttl_s=2.0):
        spark.range(60, numPartitions=1).select(slow("id").alias("id")).write.format("delta").save(table)
    assert time.monotonic() - started < 40
    log = Location(f"{table}/_delta_log", s3_server.options)
    assert [f.name for f in log.files_below() if f.name.endswith(".json")] == []  # nothing committed
    assert lease(s3_server, table).exists()  # left to expire: this writer cannot tell whether it is still its own


def test_a_renewal_whose_answer_was_lost_is_recognised_and_the_lease_still_released(spark, s3_server, table,
                                                                                      monkeypatch):
    real_put, answers_lost = table_lease.Lease._put, []

    def timed_out(self, etag):  # the first renewal reaches the server, its answer does not come back
        held = self.etag
        done = real_put(self, etag)
        if etag is not None and not answers_lost:
            answers_lost.append(etag)
            self.etag = held
            raise OSError("read timed out")
        return done

    monkeypatch.setattr(table_lease.Lease, "_put", timed_out)
    with table_writer(spark, table, ttl_s=2.0):
        first = json.loads(lease(s3_server, table).read_text())
        deadline = time.monotonic() + 30
        while not answers_lost or json.loads(lease(s3_server, table).read_text()) == first:
            assert time.monotonic() < deadline, "the lease was not renewed within 30 s"
            time.sleep(0.2)
        time.sleep(1.5)  # more renewals, over the ETag of the one whose answer was lost; none gives up
    assert not lease(s3_server, table).exists()


def test_a_killed_writer_s_lease_is_taken_over_after_its_ttl_unchanged_whatever_its_clock_said(
        spark, s3_server, catalog, table, caplog):
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()  # its machine's clock was a day ahead
    lease(s3_server, table).write_text(json.dumps({"holder": "dead", "host": "h", "pid": 1, "since": ahead,
                                                   "expires_at": ahead, "ttl_s": 3, "writes": 7}))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pinrec.jobs.io.table_lease"):
        catalog.write(NAME, frame(spark, [3]), days=[DAY])
    assert time.monotonic() - started >= 3  # watched for the TTL it names, by this machine's clock
    # said at the CLI's default level (WARNING): a re-run after a kill -9 does not wait unexplained
    said = (f"{table}: waiting up to 3 s for its writer's lease (host h, pid 1, since {ahead} by its clock) to be "
            "renewed (a live writer: this one then fails) or to expire (a killed writer's: then taken over; nothing "
            "to delete by hand)")
    assert [r.getMessage() for r in caplog.records] == [said]
    assert [r["id"] for r in spark.read.format("delta").load(table).collect()] == [3]
    assert not lease(s3_server, table).exists()


def test_a_live_writer_is_not_taken_over_whatever_its_clock_says(spark, s3_server, catalog, table):
    behind = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()  # its machine's clock is a day behind
    stop = threading.Event()

    def live_writer():  # renews its lease every 0.3 s (a TTL of 3 s), writing its own clock's times
        writes = 0
        while not stop.is_set():
            writes += 1
            lease(s3_server, table).write_text(json.dumps({"holder": "alive", "host": "h", "pid": 2, "since": behind,
                                                           "expires_at": behind, "ttl_s": 3, "writes": writes}))
            stop.wait(0.3)

    thread = threading.Thread(target=live_writer)
    thread.start()
    try:
        while not lease(s3_server, table).exists():
            time.sleep(0.05)
        with pytest.raises(ConcurrentWriterError, match=re.escape(
                f"{table} is being written by another writer (host h, pid 2, since {behind} by its clock; it "
                f"renewed its lease while this writer waited)")):
            catalog.write(NAME, frame(spark, [4]), days=[DAY])
    finally:
        stop.set()
        thread.join(30)
    assert json.loads(lease(s3_server, table).read_text())["holder"] == "alive"
    assert not Location(f"{table}/_delta_log", s3_server.options).exists()


def test_a_server_that_ignores_conditional_writes_is_refused_before_the_table_is_written(
        spark, s3_server, catalog, table, monkeypatch):
    monkeypatch.setattr(table_lease, "_VERIFIED", set())  # earlier tests checked this bucket already

    def unconditional(self, etag):  # the PUT that a server ignoring If-None-Match / If-Match carries out
        out = self.fs.createFile(self.path).overwrite(True).build()
        out.write(self._body())
        out.close()
        self.etag = str(self.fs.getFileStatus(self.path).getEtag())
        return True

    real_put = table_lease.Lease._put
    monkeypatch.setattr(table_lease.Lease, "_put", unconditional)
    with pytest.raises(ConditionalWritesIgnored, match=r"accepted writes whose If-None-Match: \* and If-Match "
                                                       f"condition failed.*Nothing was written to {table}"):
        catalog.write(NAME, frame(spark, [1]), days=[DAY])
    assert not lease(s3_server, table).exists() and not Location(f"{table}/_delta_log", s3_server.options).exists()
    monkeypatch.setattr(table_lease.Lease, "_put", real_put)
    catalog.write(NAME, frame(spark, [2]), days=[DAY])  # the real server's conditions hold: checked, then written
    assert table_lease._VERIFIED == {f"s3a://{BUCKET}"}
    assert [r["id"] for r in spark.read.format("delta").load(table).collect()] == [2]


def test_local_tables_take_no_lease(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    catalog.write(NAME, frame(spark, [1]), days=[DAY])
    assert not (tmp_path / NAME / LEASE).exists()
    assert catalog.version(NAME) == 0
