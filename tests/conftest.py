"""Shared fixtures: one local[1] Spark session with Delta for the whole run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark():
    from jobs.config import SparkConfig
    from jobs.spark import get_spark

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = get_spark(SparkConfig(master="local[1]", shuffle_partitions=1, jars_dir=str(REPO / "var" / "jars"),
                                    app_name="pinrec-tests"))
    yield session
    session.stop()


@pytest.fixture()
def lake(tmp_path):
    """A fresh landing zone + warehouse under tmp_path."""
    from jobs.ingest import IngestPaths

    return IngestPaths(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))
