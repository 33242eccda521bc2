"""Keeps a writer lease alive while its holder writes, and says when it cannot (:mod:`pinrec.jobs.io.table_lock`).

Two threads: one renews the lease every ``ttl_s / 10``, retrying a renewal that fails (a 503, a
socket timeout) after a pause that doubles from half a second; the other, a watchdog, declares the
lease lost when no renewal has succeeded for ``ttl_s / 2`` (a renewal hung in the S3 client's own
retries counts as failed), or at once when the lease is no longer this holder's. A lost lease calls
``on_lost`` (the table writer cancels its Spark jobs there), and again every second until the holder
stops, so that jobs started after the loss are cancelled too. Giving up at half the TTL leaves the
other half, before another writer may take the lease over, for the cancellation to take hold.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

#: renewals per TTL
BEATS = 10
#: the pause before the first retry of a failed renewal; doubled on each failure, up to the renewal interval
FIRST_RETRY_S = 0.5


class Renewable(Protocol):
    ttl_s: float

    def renew(self) -> bool:
        """Rewrite the lease; False when it is no longer this holder's (raises when the request fails)."""


class Heartbeat:
    """Renews ``lease``, last written at monotonic time ``written`` (or just after), until :meth:`close`."""

    def __init__(self, lease: Renewable, on_lost: Callable[[], None], written: float) -> None:
        self.lease, self.on_lost = lease, on_lost
        self.every = lease.ttl_s / BEATS
        self.last_ok = written  # when the last successful renewal was sent: the lease was written after it
        self.error: BaseException | None = None  # the failure of the renewals since last_ok
        self.lost: str | None = None  # why, once lost
        self._closed = False
        self._wake = threading.Event()  # lost or closed
        self._stop = threading.Event()  # closed
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._renew, name="lease-renew", daemon=True),
                         threading.Thread(target=self._watch, name="lease-watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _lose(self, why: str) -> None:
        with self._lock:
            if self._closed or self.lost is not None:
                return
            self.lost = why
        self._wake.set()

    def _renew(self) -> None:
        failures = 0
        while not self._wake.wait(self._pause(failures)):
            sent = time.monotonic()
            try:
                if not self.lease.renew():
                    return self._lose("another writer holds it now, or it was deleted")
            except Exception as e:  # noqa: BLE001  (a failed request: retried until the watchdog gives up)
                self.error, failures = e, failures + 1
                continue
            self.last_ok, self.error, failures = sent, None, 0

    def _pause(self, failures: int) -> float:
        if failures:
            return min(self.every, FIRST_RETRY_S * 2 ** (failures - 1))
        return max(0.0, self.last_ok + self.every - time.monotonic())  # at once when a slow write used it up

    def _watch(self) -> None:
        give_up = self.lease.ttl_s / 2
        while not self._wake.is_set():
            left = self.last_ok + give_up - time.monotonic()
            if left <= 0:
                self._lose(f"not renewed for {give_up:.0f} s; "
                           + (f"last error: {self.error!r}" if self.error else "no renewal was answered"))
            else:
                self._wake.wait(left)
        while self.lost is not None and not self._stop.is_set():
            try:
                self.on_lost()
            except Exception as e:  # noqa: BLE001  (reported by close: the holder raises with it)
                self.lost += f"; cancelling the writer's Spark jobs failed: {e!r}"
                return
            self._stop.wait(1.0)

    def close(self) -> str | None:
        """Stop renewing; why the lease was lost, None if it was held throughout."""
        with self._lock:
            first, self._closed = not self._closed, True
        self._stop.set()
        self._wake.set()
        if first:
            for thread in self._threads:
                thread.join(1.0)  # a renewal stuck in the S3 client is left to its daemon thread
        return self.lost
