"""A spark-submit step's result JSON, written by the ``pinrec task`` command and read back by the
DAG task, locally and on S3 (SeaweedFS). The submit path itself: tests/dags/test_spark_submit.py."""
from __future__ import annotations

import pytest

from pinrec.jobs.io.lake import Location
from pinrec.jobs.orchestration.spark_submit import SKIPPED, read_result, write_result
from pinrec.jobs.orchestration.tasks import NotEnoughHistoryError


@pytest.fixture()
def artifacts(any_location) -> Location:
    return any_location / "artifacts"


def test_result_round_trip_then_removed(artifacts):
    at = artifacts / "_spark_submit" / "features-2026-01-05-abc.json"
    write_result({"day": "2026-01-05", "wrote": {"features_pin": {"rows": 5}}}, at)
    assert at.read_text() == '{"day": "2026-01-05", "wrote": {"features_pin": {"rows": 5}}}'
    assert read_result(at, remove=False) == {"day": "2026-01-05", "wrote": {"features_pin": {"rows": 5}}}
    assert read_result(at) == {"day": "2026-01-05", "wrote": {"features_pin": {"rows": 5}}}
    assert not at.exists()
    with pytest.raises(FileNotFoundError, match=f"spark-submit finished but wrote no result at {at}"):
        read_result(at)


def test_a_skipped_step_raises_again_when_read(artifacts):
    at = artifacts / "_spark_submit" / "training-set.json"
    write_result({SKIPPED: "the training window ending 2026-01-05 holds 1 landed day(s)"}, at)
    with pytest.raises(NotEnoughHistoryError, match="holds 1 landed day"):
        read_result(at)
    assert not at.exists()
