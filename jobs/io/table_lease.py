"""The lease object of one Delta table on object storage (:mod:`pinrec.jobs.io.table_lock` says why and how)."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid

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


class Lease:
    """The lease object of one table, through the session's Hadoop filesystem (py4j)."""

    def __init__(self, spark, table: str, ttl_s: float) -> None:
        jvm = spark._jvm
        self._jvm, self.table, self.ttl_s = jvm, table, ttl_s
        self.path = jvm.org.apache.hadoop.fs.Path(f"{table.rstrip('/')}/{LEASE}")
        self.fs = self.path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self.holder = uuid.uuid4().hex
        self.etag: str | None = None
        self.written = 0.0  # monotonic time the last write of this lease that succeeded was sent

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
            sent = time.monotonic()  # the lease is written after this moment, at the latest when close returns
            out.close()  # s3a PUTs on close: the condition is checked here
        except Py4JJavaError as e:
            name = e.java_exception.getClass().getSimpleName()
            if name in ("RemoteFileChangedException", "FileAlreadyExistsException"):
                return False
            raise
        self.written = sent
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
        """Rewrite the lease over its ETag; False when it is no longer this holder's (raises when a request fails)."""
        if self.etag is not None and self._put(self.etag):
            return True
        found = self.current()
        if found is None or found[0].get("holder") != self.holder:
            return False
        self.etag = found[1]  # a renewal of ours landed but its answer was lost (a timeout): renew over it
        return self._put(self.etag)

    def release(self) -> None:
        found = self.current()
        if found is not None and found[0].get("holder") == self.holder:  # its ETag may be one we never heard of
            self.fs.delete(self.path, False)
