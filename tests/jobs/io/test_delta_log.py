"""A Delta table's commits read from its log files: the same facts as DESCRIBE HISTORY, no Spark job."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.delta_log import commit_info, commit_versions

D1, D2 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)


def _jobs(spark) -> int:
    """Spark jobs started so far in this application."""
    return spark.sparkContext._jsc.sc().dagScheduler().nextJobId()


@pytest.mark.spark
def test_the_log_files_say_what_describe_history_says_without_a_job(spark, tmp_path):
    from delta.tables import DeltaTable

    catalog = Catalog(spark, str(tmp_path))
    path = catalog.path("impressions")
    assert commit_versions(spark, path) == [] and catalog.version("impressions") is None
    assert catalog.history("impressions") == []
    catalog.write("impressions", spark.createDataFrame([(1, D1), (2, D1)], "id bigint, dt date"), days=[D1])
    catalog.write("impressions", spark.createDataFrame([(3, D2)], "id bigint, dt date"), days=[D2],
                  user_metadata={"batch": "b2"})
    (tmp_path / "impressions" / "_delta_log" / "00000000000000000007.crc.tmp").write_text("not a commit")

    before = _jobs(spark)
    versions = commit_versions(spark, path)
    commits = catalog.history("impressions")
    newest = (catalog.version("impressions"), catalog.user_metadata("impressions", 0))
    assert _jobs(spark) == before  # no Spark job: DESCRIBE HISTORY starts one per call

    assert versions == [0, 1] and newest == (1, {"read": {}, "wrote_days": ["2026-01-05"]})
    history = {r["version"]: r for r in DeltaTable.forPath(spark, path).history().collect()}
    for commit in commits:
        row = history[commit.version]
        assert commit.operation == row["operation"] == "WRITE"
        assert commit.rows == int(row["operationMetrics"]["numOutputRows"])
        assert commit.user_metadata == json.loads(row["userMetadata"])
    assert [(c.version, c.rows, c.user_metadata.get("batch")) for c in commits] == [(1, 1, "b2"), (0, 2, None)]
    assert commit_info(spark, path, 1)["operationMetrics"]["numOutputRows"] == "1"
    with pytest.raises(ValueError, match=r"table 'impressions' has no version 5 \(it has 0..1\)"):
        catalog.user_metadata("impressions", 5)
