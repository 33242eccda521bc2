import dataclasses

from pinrec.jobs.io.catalog import Commit
from pinrec.jobs.report.commits import batches_of, raw_versions
from tests.support.run_facts import facts


def test_batches_of_keeps_the_newest_writer_of_each_day_up_to_the_version():
    def commit(version, days, batch):
        return Commit(version, "WRITE", 10 * (version + 1), {"batch_id": batch, "landing": {d: f"/l/{d}" for d in days}})

    commits = [commit(0, ["2026-01-05", "2026-01-06"], "b0"), commit(1, ["2026-01-06"], "b1"),
               Commit(2, "OPTIMIZE", None, {}), commit(3, ["2026-01-05"], "b3")]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 2)] == ["b0", "b1"]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 3)] == ["b1", "b3"]
    assert [c.user_metadata["batch_id"] for c in batches_of(commits, 0)] == ["b0"]
    assert batches_of([Commit(0, "WRITE", 5, {})], 0) == []  # written before lineage was recorded


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
