"""The index job with ``storage.artifacts`` on S3 (SeaweedFS): built on local disk, uploaded with
``index.json`` last, the same files and search results as the local build; a rebuild replaces the
folder whole."""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.shards import ShardedIndex
from pinrec.jobs.index.pin_index import build_pin_index
from pinrec.jobs.io.folders import local_folder
from pinrec.jobs.io.lake import Location
from tests.support.s3 import BUCKET

D, VERSION = 8, "pinsage-test"
CFG = IndexConfig(metric="cosine", k=5, shards=2, latency_budget_ms=1000.0)


def _embeddings(spark, warehouse: str, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, D)).astype(np.float32)
    rows = [(int(i) * 7 + 1, [float(v) for v in x[i]], VERSION) for i in range(n)]
    spark.createDataFrame(rows, "pin_id bigint, embedding array<float>, model_version string") \
        .write.format("delta").save(f"{warehouse}/pin_embeddings")
    return x


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
def test_index_built_into_s3_artifacts_equals_the_local_build(spark, s3_server, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    x = _embeddings(spark, warehouse)
    local = build_pin_index(spark, warehouse, str(tmp_path / "artifacts"), CFG, None, queries=40)
    artifacts = Location(f"s3://{BUCKET}/index-{uuid.uuid4().hex[:12]}/artifacts", s3_server.options)
    remote = build_pin_index(spark, warehouse, artifacts, CFG, None, queries=40)

    target = artifacts / "index" / VERSION
    assert local.folder == str(tmp_path / "artifacts" / "index" / VERSION)
    assert remote.folder == str(target)  # the report names where the index is, not the scratch folder
    assert (remote.pins, remote.dim, remote.factory, remote.recall_at_k) == (300, D, local.factory, local.recall_at_k)
    local_dir = tmp_path / "artifacts" / "index" / VERSION
    assert [name for name, _ in target.entries()] == sorted(p.name for p in local_dir.iterdir())
    mine, theirs = json.loads((target / "index.json").read_text()), json.loads((local_dir / "index.json").read_text())
    assert [s["sha256"] for s in mine["shards"]] == [s["sha256"] for s in theirs["shards"]]
    for key in ("factory", "search_params", "d", "metric", "ntotal", "shards"):
        assert mine[key] == theirs[key], key
    for shard in theirs["shards"]:
        assert (target / shard["file"]).read_bytes() == (local_dir / shard["file"]).read_bytes()
    with local_folder(target) as downloaded:
        got = ShardedIndex.open(downloaded).search(x[:20], 5)
    want = ShardedIndex.open(local_dir).search(x[:20], 5)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0])

    (target / "stale.bin").write_bytes(b"from an older build")
    build_pin_index(spark, warehouse, artifacts, CFG, None, queries=40)
    assert "stale.bin" not in [name for name, _ in target.entries()]
    assert not (tmp_path / "artifacts" / "index" / f"{VERSION}.partial").exists()


def test_embeddings_must_be_whole_rows_of_one_length():
    import pyarrow as pa

    from pinrec.jobs.index.pin_index import embedding_matrix

    ids, x = embedding_matrix(pa.table({"pin_id": [20, 10], "embedding": [[3.0, 4.0], [1.0, 2.0]]}), "t")
    assert ids.tolist() == [10, 20] and x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    # ragged rows were re-cut into a (2, 4) matrix; a null row dropped and every later vector shifted
    for bad, message in (({"pin_id": [1, 2], "embedding": [[1.0] * 3, [1.0] * 5]}, r"one length > 0, got lengths 3..5"),
                         ({"pin_id": [1, 2, 3, 4], "embedding": [[1.0] * 3, None, [1.0] * 3, [1.0] * 3]},
                          "1 row.s. with a null embedding"),
                         ({"pin_id": [1, None], "embedding": [[1.0], [2.0]]}, "1 row.s. with a null pin_id")):
        with pytest.raises(ValueError, match=message):
            embedding_matrix(pa.table(bad), "t")


def test_a_non_finite_embedding_is_named_by_pin_id_and_column():
    import pyarrow as pa

    from pinrec.export.index_choice import NonFiniteVectorError
    from pinrec.jobs.index.pin_index import embedding_matrix

    # rows sorted by id: the message named row positions ([0], [1]) and only "vectors"
    table = pa.table({"pin_id": [30, 20, 10], "embedding": [[1.0, float("nan")], [1e39, 0.0], [1.0, 2.0]]})
    with pytest.raises(NonFiniteVectorError, match=r"^w/pin_embeddings: the embedding of 2 pin\(s\) holds NaN, inf or a "
                                                   r"value beyond float32's range \(pin_id \[20, 30\]\)$"):
        embedding_matrix(table, "w/pin_embeddings")


class _Run:
    run_id = "run-1"

    def __init__(self) -> None:
        self.metrics: dict = {}

    def log_metrics(self, metrics: dict) -> None:
        self.metrics.update(metrics)

    def log_dict(self, *args) -> None: ...

    def set_tags(self, *args) -> None: ...


NO_SAVES = (np.zeros((0, D), np.float32), np.zeros(0, np.int64))


def run_job(monkeypatch, tmp_path, ids, vectors, saved, cfg, queries=40):
    """build_pin_index without Spark: the embeddings and the users' saved-pin queries handed in, MLflow faked."""
    import contextlib

    from pinrec.jobs.index import pin_index
    from pinrec.jobs.io import tracking
    from pinrec.jobs.io.catalog import Catalog

    run = _Run()
    monkeypatch.setattr(Catalog, "of", classmethod(lambda cls, spark, warehouse: warehouse))
    monkeypatch.setattr(pin_index, "read_embeddings", lambda spark, catalog: (ids, vectors, VERSION, 4))
    monkeypatch.setattr(pin_index, "user_queries", lambda *args: saved)
    monkeypatch.setattr(tracking, "tracked_run", lambda *args, **kwargs: contextlib.nullcontext(run))
    report = build_pin_index(None, "warehouse", str(tmp_path / "artifacts"), cfg, "sqlite:///unused", queries=queries)
    return report, run.metrics


def test_the_report_and_mlflow_name_the_k_recall_was_measured_at(monkeypatch, tmp_path):
    # 6 pins, k = 10: recall is measured at 5 (each query without itself), labelled recall@10 before
    rng = np.random.default_rng(0)
    ids, x = np.arange(6, dtype=np.int64) * 7, rng.standard_normal((6, D)).astype(np.float32)
    report, metrics = run_job(monkeypatch, tmp_path, ids, x, NO_SAVES, IndexConfig(k=10, device="cpu", latency_budget_ms=1000.0))
    assert report.k == 5 and report.recall_at_k == 1.0 and "recall@5=1.0000" in report.render()
    assert metrics["recall_at_5"] == 1.0 and "recall_at_10" not in metrics
    manifest = json.loads((tmp_path / "artifacts" / "index" / VERSION / "index.json").read_text())
    assert manifest["measured"]["k"] == 5 and manifest["k"] == 10


def test_queries_are_saved_pins_own_embeddings_as_serving_asks():
    import pyarrow as pa

    from pinrec.jobs.index.pin_index import saved_pin_queries

    ids = np.array([10, 20, 30, 40], np.int64)
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)  # pin 40 has a zero (missing) embedding
    saves = pa.chunked_array([pa.array([[30, 10], None, [99, 40, 30], [20, None]], pa.list_(pa.int64()))])
    q, qids = saved_pin_queries(saves, ids, x, 10, seed=0)
    # the users' mean embeddings ([1, 0.5] normalised, ...) were tuned on; serving searches with each save
    assert qids.tolist() == [30, 10, 30, 20] and q.tolist() == [[1, 1], [1, 0], [1, 1], [0, 1]]
    q, qids = saved_pin_queries(saves, ids, x, 2, seed=0)
    assert len(qids) == 2 and all(x[ids.tolist().index(i)].tolist() == v for i, v in zip(qids, q.tolist()))


def test_the_job_tunes_on_saved_pins_each_without_itself(monkeypatch, tmp_path):
    rng = np.random.default_rng(1)
    ids, x = np.array([3, 5, 8, 13], np.int64), rng.standard_normal((4, D)).astype(np.float32)
    rows = np.array([0, 1, 2, 3, 0, 2, 2, 1])
    report, _ = run_job(monkeypatch, tmp_path, ids, x, (x[rows], ids[rows]), IndexConfig(k=10, device="cpu"), queries=8)
    assert report.query_kind == "users' recently saved pins, each without itself" and report.queries == 8
    assert report.k == 3 and report.recall_at_k == 1.0  # 4 pins, less the query's own: 3 neighbours to find


@pytest.mark.parametrize("saved", ["none", "its own pin"])
def test_a_one_pin_catalogue_is_indexed_and_measured_at_k_1(monkeypatch, tmp_path, saved):
    # each query without itself had k = 0 neighbours to find: the job failed with IndexInputError
    ids, x = np.array([42], np.int64), np.array([[0.6, 0.8] + [0.0] * (D - 2)], np.float32)
    queries = NO_SAVES if saved == "none" else (np.repeat(x, 3, axis=0), np.repeat(ids, 3))
    report, metrics = run_job(monkeypatch, tmp_path, ids, x, queries, CFG, queries=3)
    assert (report.factory, report.pins, report.k, report.recall_at_k, report.queries) == ("IDMap,Flat", 1, 1, 1.0, 1)
    assert report.query_kind == "the one pin itself (no other pin to find)" and metrics["recall_at_1"] == 1.0
    assert ShardedIndex.open(report.folder).search(x, 1)[1].tolist() == [[42]]

