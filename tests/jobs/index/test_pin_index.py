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
