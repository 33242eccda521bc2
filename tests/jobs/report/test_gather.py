import dataclasses
import datetime as dt
import json

import pytest

from pinrec.export.serving.store import Store
from pinrec.jobs.io.catalog import Commit
from pinrec.jobs.io.lake import Location
from pinrec.jobs.report.gather import (
    batches_of,
    raw_versions,
    resolve,
    retrieval_eval_facts,
)
from pinrec.schemas.manifest import MANIFEST_FILE, bundle_prefix
from tests.jobs.report.test_page import facts


def _publish(store: Store, version: str, hour: int, blessed: bool = True) -> None:
    m = facts().manifest
    blessing = dataclasses.replace(m.blessing, blessed=True, reasons=()) if blessed else m.blessing
    m = dataclasses.replace(m, version=version, created_at=dt.datetime(2026, 1, 10, hour, tzinfo=dt.UTC),
                            blessing=blessing)
    store.put_bytes(bundle_prefix(m.name, version) + MANIFEST_FILE, m.to_json().encode())


def test_resolve_defaults_to_the_newest_version_promoted_or_not(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no published bundle of 'homefeed'.*pinrec publish bundle"):
        resolve(store, "homefeed", None)
    _publish(store, "v1", 10)
    _publish(store, "v3", 12, blessed=False)  # rejected by the gate: still the newest run's bundle
    _publish(store, "v2", 11)
    store.put_bytes(bundle_prefix("homefeed", "v4") + "index/index.json", b"{}")  # incomplete: no manifest yet
    assert resolve(store, "homefeed", None).version == "v3"
    assert resolve(store, "homefeed", "v1").version == "v1"
    assert resolve(store, "other", "homefeed/v2").version == "v2"
    with pytest.raises(FileNotFoundError, match=r"no bundle homefeed/v9 .*stored versions: v1, v2, v3, v4"):
        resolve(store, "homefeed", "v9")


def test_batches_of_keeps_the_newest_writer_of_each_day_up_to_the_version():
    def commit(version, days, batch):
        return Commit(version, "WRITE", 10 * (version + 1), {"batch_id": batch, "landing": {d: f"/l/{d}" for d in days}})

    commits = [commit(0, ["2026-01-05", "2026-01-06"], "b0"), commit(1, ["2026-01-06"], "b1"),
               Commit(2, "OPTIMIZE", None, {}), commit(3, ["2026-01-05"], "b3")]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 2)] == ["b0", "b1"]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 3)] == ["b1", "b3"]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 0)] == ["b0"]
    assert batches_of([Commit(0, "WRITE", 5, {})], 0) == []  # written before lineage was recorded


def test_retrieval_eval_report_is_read_when_present(tmp_path):
    artifacts = Location(str(tmp_path))
    assert retrieval_eval_facts(artifacts).startswith(f"no {tmp_path}/retrieval_eval/report.json")
    (tmp_path / "retrieval_eval").mkdir()
    rows = [{"task": "leave_one_out", "model": "popularity", "metrics": {"hr@10": 0.1}, "queries": 40, "ci95": {}}]
    (tmp_path / "retrieval_eval" / "report.json").write_text(json.dumps({"config": {}, "rows": rows, "notes": {}}))
    found = retrieval_eval_facts(artifacts)
    assert found["rows"] == rows and found["where"] == f"{tmp_path}/retrieval_eval/report.json"
    assert dt.datetime.fromisoformat(found["modified"]).tzinfo is not None


class FakeCatalog:
    """The few looks :func:`pinrec.jobs.publish.lineage.table_lineage` takes, over literal commits."""

    def __init__(self, commits: dict[str, list[Commit]]):
        self.commits = commits

    def exists(self, table):
        return table in self.commits

    def history(self, table):
        return sorted(self.commits.get(table, []), key=lambda c: -c.version)

    def user_metadata(self, table, version=None):
        return next(c.user_metadata for c in self.commits[table] if c.version == version)


def test_raw_versions_follow_the_lineage_to_the_newest_raw_version_reached():
    landing = {"landing": {"2026-01-05": "/l/x"}, "batch_id": "b"}
    catalog = FakeCatalog({
        "pins": [Commit(0, "WRITE", 5, landing), Commit(1, "WRITE", 6, landing), Commit(2, "WRITE", 7, landing)],
        "impressions": [Commit(v, "WRITE", 9, landing) for v in range(4)],
        "training_set": [Commit(0, "WRITE", 3, {"read": {"impressions": 2, "pins": 0}})],
        "pin_embeddings": [Commit(0, "WRITE", 3, {"read": {}})]})
    m = facts().manifest
    m = dataclasses.replace(m, lineage=dataclasses.replace(
        m.lineage, delta_versions={"pins": 1, "training_set": 0, "pin_embeddings": 0, "ranker:impressions": 3}))
    # pins@1 (the bundle's read) beats pins@0 (the training set's); "ranker:" entries are not followed
    assert raw_versions(catalog, m) == {"pins": 1, "impressions": 2}
