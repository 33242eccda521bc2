"""Tiny bundle files, lineage and metrics for the export and publish tests."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from pinrec.schemas.manifest import Lineage, Metrics

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def write_bundle_files(folder: Path, seed: int = 0, dim: int = 8, shards: int = 2, vectors: int = 100,
                       factory: str = "Flat"):
    """A tiny candidate: ``shards`` inner-product faiss shards (``factory``, trained on all vectors)
    over ``vectors`` random vectors, index.json,
    an ONNX ranker (sigmoid(x @ W), x: (B, 4)), its encoder JSON and 20 pins of metadata.
    Returns (BundleFiles, the vectors (N, dim), W (4, 1))."""
    import faiss
    import onnx
    import pyarrow as pa
    import pyarrow.parquet as pq
    from onnx import TensorProto, helper, numpy_helper

    from pinrec.export.build.publish import BundleFiles

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((vectors, dim)).astype(np.float32)
    shard_paths = []
    for i, part in enumerate(np.array_split(xb, shards)):
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
        index.add(part)
        shard_paths.append(str(folder / f"shard_{i:03d}.faiss"))
        faiss.write_index(index, shard_paths[-1])
    (folder / "index.json").write_text(json.dumps({"dim": dim, "metric": "ip",
                                                    "shards": [Path(p).name for p in shard_paths]}))
    w = rng.standard_normal((4, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["p"])], "ranker",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["B", 1])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "ranker.onnx"))
    (folder / "encoder.json").write_text(json.dumps({"features": ["a", "b", "c", "d"], "seed": seed}))
    n = 20
    pins = pa.table({
        "pin_id": pa.array(np.arange(n, dtype=np.int64) + 1000 * seed),
        "category": pa.array([f"cat{i % 3}" for i in range(n)]),
        "created_at": pa.array([dt.datetime(2026, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
                               pa.timestamp("us", tz="UTC")),
        "nsfw": pa.array([i % 7 == 0 for i in range(n)]),
        "blocked": pa.array([i % 11 == 0 for i in range(n)]),
    })
    pq.write_table(pins, folder / "pins.parquet")
    files = BundleFiles(index_meta=str(folder / "index.json"), index_shards=tuple(shard_paths),
                        ranker=str(folder / "ranker.onnx"), encoder=str(folder / "encoder.json"),
                        pins=str(folder / "pins.parquet"))
    return files, xb, w


def metrics(recall: float = 0.30, p99: float = 10.0, auc: float = 0.70, ece: float = 0.02, k: int = 100) -> Metrics:
    return Metrics(k=k, recall_at_k=recall, latency_p50_ms=p99 / 2, latency_p99_ms=p99,
                   auc={"closeup": auc, "save": auc - 0.05}, calibration_error={"closeup": ece, "save": ece})


LINEAGE = Lineage(code_version="0123456789abcdef0123456789abcdef01234567", config_hash="c0ffee",
                  mlflow_run_ids={"ranker": "r1", "pinsage": "p1"},
                  delta_versions={"impressions": 3, "pins": 1, "training_set": 0})
