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
its holder id, host, pid, TTL and a count of its writes. The holder renews the lease every
``ttl_s / 10`` (a conditional overwrite on the lease's ETag, retried when it fails) and deletes it
when done. A second writer that finds a lease watches it, by its own monotonic clock (machines'
clocks differ, so no time written by one is compared with another's): when it changes, its holder is
alive and :class:`ConcurrentWriterError` is raised before the table is touched (after up to a
renewal interval: 30 s by default); when it stays unchanged for the TTL it names, its holder is dead
(killed) and the lease is taken over, again conditionally on the ETag seen, so two waiting writers
cannot both take it. Delta ignores names starting with ``_``.

A holder that cannot renew its lease for ``ttl_s / 2`` (an S3 outage, a stalled driver), or finds
it taken over, has lost it: its Spark jobs are cancelled (they carry a job tag of the lease), so
that files being written are not committed, and :class:`ConcurrentWriterError` is raised when
the body ends. Cancelling cannot stop a Delta commit the driver is already writing: that one may
land beside the next writer's, and the error says to check the table's history.

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
import fcntl
import os
import time
from collections.abc import Iterator
from urllib.parse import urlparse

from .lease_heartbeat import Heartbeat
from .table_lease import LEASE, ConcurrentWriterError, Lease

__all__ = ["LEASE", "ConcurrentWriterError", "needs_lease", "table_writer"]


def needs_lease(table: str) -> bool:
    return urlparse(table).scheme in ("s3", "s3a")


@contextlib.contextmanager
def table_writer(spark, table: str, ttl_s: float = 300.0) -> Iterator[None]:
    """Hold ``table``'s writer lease for the body (module docstring); on local disk its OS lock, on HDFS nothing.
    Raises :class:`ConcurrentWriterError` when another writer holds it, or when this writer lost it
    while writing (not renewed for ``ttl_s / 2``, or taken over): then the body's Spark jobs are
    cancelled (:mod:`~pinrec.jobs.io.lease_heartbeat`), and the error is raised when the body ends."""
    if not needs_lease(table):
        if urlparse(table).scheme in ("", "file"):
            with _local_writer(table, ttl_s):
                yield
        else:
            yield
        return
    lease = Lease(spark, table, ttl_s)
    lease.acquire()
    sc, tag = spark.sparkContext, f"pinrec-lease-{lease.holder}"
    sc.addJobTag(tag)  # the body's Spark jobs, for the heartbeat to cancel if the lease is lost
    beat = Heartbeat(lease, lambda: sc.cancelJobsWithTag(tag), lease.written)
    try:
        yield
    except BaseException as e:
        if beat.close() is not None:  # the body's error (its job cancelled) follows from the loss
            raise ConcurrentWriterError(_lost(table, beat.lost)) from e
        raise
    finally:
        sc.removeJobTag(tag)
        if beat.close() is None:
            lease.release()
    if beat.lost is not None:
        raise ConcurrentWriterError(_lost(table, beat.lost))


def _lost(table: str, why: str) -> str:
    return (f"{table}: this writer lost its lease while writing ({why}). Its Spark jobs were cancelled, but a "
            f"Delta commit already under way (the driver writes it; cancelling does not stop it) may have landed "
            f"beside another writer's: check the table's history (DESCRIBE HISTORY) before re-running")


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
