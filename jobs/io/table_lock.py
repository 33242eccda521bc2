"""One writer per Delta table on object storage: a lease object taken with a conditional PUT.

Delta commits version ``N`` of a table by creating ``_delta_log/<N>.json`` only if it does not
exist. HDFS and local disks create-if-absent atomically; S3 did not, so Delta's S3 log store
(``S3SingleDriverLogStore``, the default for ``s3a://``) is safe only while every writer of a
table runs in one driver JVM: two drivers committing the same version at once silently lose
one commit, leaving a log that no longer describes the files written. Multi-cluster writers need
Delta's DynamoDB log store (``io.delta:delta-storage-s3-dynamodb``), which pinrec does not ship.

pinrec's DAGs run one writer per table at a time; :func:`table_writer` makes that a checked rule
instead of a hope. Before writing an ``s3a://`` table the writer creates
``<table>/_pinrec_writer`` through Hadoop's s3a with ``If-None-Match: *`` (Hadoop 3.5's
``fs.option.create.conditional.overwrite``; the same s3a settings as the write itself), holding
its holder id, host, pid and expiry. A second writer finds it and raises
:class:`ConcurrentWriterError` before touching the table. The holder renews the lease every
``ttl_s / 4`` (a conditional overwrite on the lease's ETag) and deletes it when done; a lease
left by a killed writer expires after ``ttl_s`` and is then taken over, again conditionally, so
two waiting writers cannot both take it. Delta ignores names starting with ``_``.

The lease is only as good as the server's conditional writes, and some S3-compatible servers
accept a PUT whose condition fails. So the first lease a process takes in a bucket is checked: a
second create-if-absent of it, and an overwrite on a wrong ETag, must both be refused; else
:class:`~pinrec.export.serving.store.ConditionalWritesIgnored` is raised and nothing is written.

Other filesystems (local disk, HDFS) need no lease: their Delta log store is already atomic. A local
table is still held by one writer process at a time, so that a writer's two commits (ingest's quarantine
rows, then its table) are never interleaved with another process's: an OS lock (``flock``) on
``<warehouse>/.<table>.writer-lock``, waited for up to ``ttl_s`` (two ``pinrec ingest`` runs of a table
then take turns), released with the process if it dies.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

from pinrec.export.serving.store import ConditionalWritesIgnored

LEASE = "_pinrec_writer"
_CONDITIONAL = "fs.option.create.conditional.overwrite"
_CONDITIONAL_ETAG = "fs.option.create.conditional.overwrite.etag"


class ConcurrentWriterError(RuntimeError):
    """Another writer holds the table; nothing was written."""


#: the s3a buckets (filesystem URIs) whose conditional writes this process has checked
_VERIFIED: set[str] = set()
_WRONG_ETAG = '"' + "0" * 32 + '"'


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Lease:
    """The lease object of one table, through the session's Hadoop filesystem (py4j)."""

    def __init__(self, spark, table: str, ttl_s: float) -> None:
        jvm = spark._jvm
        self._jvm, self.table, self.ttl_s = jvm, table, ttl_s
        self.path = jvm.org.apache.hadoop.fs.Path(f"{table.rstrip('/')}/{LEASE}")
        self.fs = self.path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self.holder = uuid.uuid4().hex
        self.etag: str | None = None

    def _body(self) -> bytearray:
        expires = _now() + dt.timedelta(seconds=self.ttl_s)
        return bytearray(json.dumps({"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(),
                                     "expires_at": expires.isoformat()}).encode())

    def _put(self, etag: str | None) -> bool:
        """Create the lease (``etag`` None: only if absent; else only over that ETag)."""
        from py4j.protocol import Py4JJavaError

        builder = self.fs.createFile(self.path).overwrite(etag is not None)
        builder = builder.must(_CONDITIONAL_ETAG, etag) if etag is not None else builder.must(_CONDITIONAL, True)
        try:
            out = builder.build()
            out.write(self._body())
            out.close()  # s3a PUTs on close: the condition is checked here
        except Py4JJavaError as e:
            name = e.java_exception.getClass().getSimpleName()
            if name in ("RemoteFileChangedException", "FileAlreadyExistsException"):
                return False
            raise
        self.etag = str(self.fs.getFileStatus(self.path).getEtag())
        return True

    def current(self) -> tuple[dict, str] | None:
        """(the lease's content, its ETag), None when there is none."""
        if not self.fs.exists(self.path):
            return None
        status = self.fs.getFileStatus(self.path)
        stream = self.fs.open(self.path)
        try:
            text = str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()
        try:
            return json.loads(text), str(status.getEtag())
        except ValueError:  # half-written by a foreign tool: treat as expired
            return {"expires_at": dt.datetime.min.replace(tzinfo=dt.UTC).isoformat()}, str(status.getEtag())

    def acquire(self) -> None:
        if self._put(None):
            return self._verify()
        found = self.current()
        if found is None and self._put(None):  # released in between
            return self._verify()
        lease, etag = found or ({}, None)
        expired = dt.datetime.fromisoformat(lease.get("expires_at", "9999-12-31T00:00:00+00:00")) < _now()
        if etag is not None and expired and self._put(etag):
            return self._verify()
        raise ConcurrentWriterError(
            f"{self.table} is being written by another writer (host {lease.get('host', '?')}, pid "
            f"{lease.get('pid', '?')}, lease until {lease.get('expires_at', '?')}): pinrec writes each table on "
            f"object storage from one writer at a time. Nothing was written; re-run when it is done "
            f"(a killed writer's lease expires by itself).")

    def _verify(self) -> None:
        """Once per bucket and process, with the lease just taken: creating it again if absent and
        overwriting it on a wrong ETag must both fail. A server that ignores the conditions lets
        a second writer in; then the lease is dropped and :class:`ConditionalWritesIgnored` raised.
        (If it does ignore them, the probes rewrote this writer's own lease: no one else's.)"""
        bucket = str(self.fs.getUri())
        if bucket in _VERIFIED:
            return
        held = self.etag
        ignored = [cond for cond, etag in (("If-None-Match: *", None), ("If-Match", _WRONG_ETAG)) if self._put(etag)]
        if ignored:
            self.fs.delete(self.path, False)
            raise ConditionalWritesIgnored(
                f"{bucket}: the S3 server accepted writes whose {' and '.join(ignored)} condition failed, so it "
                "ignores conditional writes. pinrec's one-writer-per-table lease needs them (AWS S3, MinIO and "
                f"SeaweedFS honour them; docs/deploy.md). Nothing was written to {self.table}.")
        self.etag = held
        _VERIFIED.add(bucket)

    def renew(self) -> bool:
        return self.etag is not None and self._put(self.etag)

    def release(self) -> None:
        found = self.current()
        if found is not None and found[1] == self.etag:
            self.fs.delete(self.path, False)


def needs_lease(table: str) -> bool:
    return urlparse(table).scheme in ("s3", "s3a")


@contextlib.contextmanager
def table_writer(spark, table: str, ttl_s: float = 300.0) -> Iterator[None]:
    """Hold ``table``'s writer lease for the body (module docstring); on local disk its OS lock, on HDFS nothing.
    Raises :class:`ConcurrentWriterError` when another writer holds it, or when this writer lost
    it while writing (a stall longer than ``ttl_s``)."""
    if not needs_lease(table):
        if urlparse(table).scheme in ("", "file"):
            with _local_writer(table, ttl_s):
                yield
        else:
            yield
        return
    lease = _Lease(spark, table, ttl_s)
    lease.acquire()
    stop, lost = threading.Event(), threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl_s / 4):
            if not lease.renew():
                lost.set()
                return

    beat = threading.Thread(target=heartbeat, name=f"lease:{table}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        if not lost.is_set():
            lease.release()
    if lost.is_set():
        raise ConcurrentWriterError(f"{table}: this writer lost its lease while writing (stalled over {ttl_s:.0f} s); "
                                    f"check the table's history before re-running")


@contextlib.contextmanager
def _local_writer(table: str, wait_s: float) -> Iterator[None]:
    """Hold the OS lock of a local table (module docstring) for the body."""
    # the path as written after the scheme (Location.spark does not percent-encode it: '#' is a name)
    path = (table.removeprefix("file://") if table.startswith("file://") else table.removeprefix("file:")).rstrip("/")
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f".{name}.writer-lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConcurrentWriterError(f"{table}: another process has been writing it for over {wait_s:.0f} s "
                                                f"(it holds {folder}/.{name}.writer-lock); nothing was written") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
