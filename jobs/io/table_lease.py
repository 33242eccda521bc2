"""The lease object of one Delta table on object storage (:mod:`pinrec.jobs.io.table_lock` says why and how)."""
from __future__ import annotations

import datetime as dt
import json
import logging
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
#: the longest TTL a contender believes of a lease
_MAX_TTL_S = 3600.0
#: the longest pause between two looks at another writer's lease
_POLL_S = 5.0
_log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _claimed_ttl(lease: dict, default: float) -> float:
    """The TTL the holder renews its lease by; ``default`` when the lease names none (not pinrec's),
    at most :data:`_MAX_TTL_S`, so that a contender's wait stays bounded."""
    ttl = lease.get("ttl_s")
    ok = isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0 < ttl < float("inf")
    return min(float(ttl), _MAX_TTL_S) if ok else default


def _holder(lease: dict) -> str:
    return (f"host {lease.get('host', '?')}, pid {lease.get('pid', '?')}, since {lease.get('since', '?')} "
            f"by its clock")


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
        self.since, self.writes = _now().isoformat(timespec="seconds"), 0  # shown to contenders

    def _body(self) -> bytearray:
        self.writes += 1  # every renewal changes the content, so its ETag, which is what contenders watch
        return bytearray(json.dumps({"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(),
                                     "since": self.since, "ttl_s": self.ttl_s, "writes": self.writes}).encode())

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
        from py4j.protocol import Py4JJavaError

        while (etag := self._etag()) is not None:
            try:
                stream = self.fs.open(self.path)
                try:
                    text = str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
                finally:
                    stream.close()
            except Py4JJavaError:
                if self._etag() != etag:
                    continue  # rewritten (renewed) or released while read: s3a refuses to mix versions
                raise
            try:
                return json.loads(text), etag
            except ValueError:  # half-written by a foreign tool: its ETag is still watched like any other
                return {}, etag
        return None

    def _etag(self) -> str | None:
        from py4j.protocol import Py4JJavaError

        try:
            return str(self.fs.getFileStatus(self.path).getEtag())
        except Py4JJavaError as e:
            if e.java_exception.getClass().getSimpleName() == "FileNotFoundException":
                return None
            raise

    def acquire(self) -> None:
        """Take the lease: at once if there is none. Else wait, by this machine's monotonic clock (never
        the holder's: clocks differ), for it to change (renewed: its holder is alive, and
        :class:`ConcurrentWriterError` is raised) or to stay unchanged for its holder's TTL (the holder
        is dead: the lease is taken over on the ETag seen, so two contenders cannot both take it)."""
        if self._put(None):
            return self._verify()
        seen, since = None, 0.0  # the ETag watched, and when this writer first saw it
        while True:
            found = self.current()
            if found is None:  # released meanwhile
                if self._put(None):
                    return self._verify()
                continue
            lease, etag = found
            ttl = _claimed_ttl(lease, self.ttl_s)
            if seen is None:
                seen, since = etag, time.monotonic()
                # a warning: `pinrec` shows it without -v, so a re-run after a killed writer does not wait unexplained
                _log.warning("%s: waiting up to %.0f s for its writer's lease (%s) to be renewed (a live writer: this "
                             "one then fails) or to expire (a killed writer's: then taken over; nothing to delete by "
                             "hand)", self.table, ttl, _holder(lease))
            elif etag != seen:
                raise ConcurrentWriterError(self._busy(lease, "it renewed its lease while this writer waited"))
            elif time.monotonic() - since >= ttl:
                if self._put(etag):
                    return self._verify()
                raise ConcurrentWriterError(self._busy(lease, "it renewed its lease as it was taken over"))
            time.sleep(min(_POLL_S, ttl / 20))

    def _busy(self, lease: dict, how: str) -> str:
        return (f"{self.table} is being written by another writer ({_holder(lease)}; {how}): pinrec writes each "
                f"table on object storage from one writer at a time. Nothing was written; re-run when it is done "
                f"(a killed writer's lease is taken over {_claimed_ttl(lease, self.ttl_s):.0f} s after its last "
                f"renewal).")

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
