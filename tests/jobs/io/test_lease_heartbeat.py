"""The lease heartbeat (:mod:`pinrec.jobs.io.lease_heartbeat`) on a fake lease: failed renewals are
retried; a lease not renewed for half its TTL, or taken over, is lost and its writer's jobs cancelled."""
from __future__ import annotations

import threading
import time

import pytest

from pinrec.jobs.io import lease_heartbeat
from pinrec.jobs.io.lease_heartbeat import Heartbeat


class FakeLease:
    """Renewals answer from ``script`` in turn (an exception is raised, a bool returned), then ``then``."""

    def __init__(self, ttl_s, script=(), then=True):
        self.ttl_s, self.script, self.then, self.calls = ttl_s, list(script), then, 0

    def renew(self):
        self.calls += 1
        answer = self.script.pop(0) if self.script else self.then
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(lease_heartbeat, "BEATS", 40)  # ttl 4 s: a renewal every 0.1 s, given up after 2 s
    monkeypatch.setattr(lease_heartbeat, "FIRST_RETRY_S", 0.05)


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_failed_renewals_are_retried_and_the_lease_is_kept():
    lease, cancelled = FakeLease(4.0, [OSError("503 Slow Down")] * 5 + [TimeoutError("read timed out")]), []
    beat = Heartbeat(lease, lambda: cancelled.append(1), time.monotonic())
    wait_for(lambda: lease.calls >= 12)  # six failures, then renewed again and again
    assert beat.close() is None and cancelled == [] and beat.error is None


def test_a_lease_not_renewed_for_half_its_ttl_is_lost_and_the_writer_s_jobs_cancelled_until_it_stops():
    lease, cancelled = FakeLease(4.0, then=OSError("503 Slow Down")), []
    started = time.monotonic()
    beat = Heartbeat(lease, lambda: cancelled.append(time.monotonic()), started)
    wait_for(lambda: len(cancelled) >= 2)  # once at the loss, again a second later (jobs started since)
    assert cancelled[0] - started >= 2.0  # not before half the TTL
    assert beat.close() == "not renewed for 2 s; last error: OSError('503 Slow Down')"
    assert lease.calls > 5  # retried meanwhile
    count = len(cancelled)
    time.sleep(1.5)
    assert len(cancelled) == count  # the writer stopped: nothing more to cancel


def test_a_renewal_hung_in_the_s3_client_counts_as_failed():
    answer = threading.Event()
    lease = FakeLease(4.0)
    lease.renew = lambda: answer.wait(60)  # never answers while the test runs
    cancelled = []
    beat = Heartbeat(lease, lambda: cancelled.append(1), time.monotonic())
    wait_for(lambda: cancelled)
    assert beat.close() == "not renewed for 2 s; no renewal was answered"
    answer.set()


def test_a_lease_taken_over_by_another_writer_is_lost_at_once():
    lease, cancelled = FakeLease(4.0, [True, False]), []
    started = time.monotonic()
    beat = Heartbeat(lease, lambda: cancelled.append(time.monotonic()), started)
    wait_for(lambda: cancelled)
    assert cancelled[0] - started < 1.5  # the second renewal, not the give-up at 2 s
    assert beat.close() == "another writer holds it now, or it was deleted"


def test_a_failure_to_cancel_is_part_of_the_reason():
    def refuse():
        raise RuntimeError("SparkContext stopped")

    beat = Heartbeat(FakeLease(4.0, then=False), refuse, time.monotonic())
    wait_for(lambda: "cancelling" in (beat.lost or ""))
    assert beat.close() == ("another writer holds it now, or it was deleted; cancelling the writer's Spark jobs "
                            "failed: RuntimeError('SparkContext stopped')")
