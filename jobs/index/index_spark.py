"""Distributed index build: Spark fills the shards of one trained FAISS index (issue #5).

The same steps as :func:`pinrec.export.build.ann_build.build_index`, with the corpus in a DataFrame
(``pin_id`` bigint, ``embedding`` array<float>) instead of driver memory:

1. one aggregation checks the input (nulls, one dimension, finite values, unique ids);
2. the driver collects the training sample — the ``size`` rows with the smallest
   :func:`pinrec.export.serving.shards.training_key`, the very sample the in-process build draws — and trains the
   empty index of the first candidate of :func:`pinrec.export.index_choice.choose_index` (or
   ``cfg.factory``; candidates are not compared here: each would cost a full pass);
3. the trained index is broadcast as ``faiss.serialize_index`` bytes; rows are keyed by
   ``shard_of(pin_id)``, repartitioned by shard (all rows of a shard meet in one partition) and
   ``mapInPandas`` adds each shard's vectors, in id order, to a copy of the index, writes the
   shard file and returns its index.json entry plus the exact top-k of the held-out queries
   within the shard, with every row tied with the shard's k-th
   (:func:`pinrec.export.build.index_truth.exact_search`);
4. the driver merges the per-shard exact results, all columns kept, into the ground truth, opens the shards,
   tunes ``nprobe``, measures, and writes index.json.

Shard files are byte-identical to the in-process build's (tested on a standalone cluster).
``out_dir`` must be a path every executor can write (local on one machine, else a shared mount).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pinrec.export.build.ann_build import (
    IndexReport,
    check_budget,
    check_training,
    evaluate,
    make_manifest,
    resolve_device,
    train_index,
    train_size,
)
from pinrec.export.build.index_truth import exact_search, merged_search, with_ties
from pinrec.export.index_choice import (
    DimensionMismatchError,
    DuplicateIdError,
    EmptyCorpusError,
    IndexConfig,
    IndexInputError,
    NonFiniteVectorError,
    check_ids,
    check_vectors,
    choose_index,
    normalize,
)
from pinrec.export.serving.shards import (
    ShardedIndex,
    fill_shard,
    imbalance,
    mean_residual,
    shard_of,
    training_key,
    write_manifest,
    write_shard,
)


def check_corpus(df, id_col: str, vec_col: str) -> tuple[int, int]:
    """(N, d) of the corpus, after one pass that rejects nulls, mixed dimensions, NaN/inf and
    duplicate ids with the same errors as the in-process build."""
    from pyspark.sql import functions as F

    bad = F.exists(vec_col, lambda v: F.isnan(v) | (F.abs(v) == F.lit(float("inf"))))
    row = df.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(id_col).alias("ids"),
                 F.min(F.size(vec_col)).alias("dmin"), F.max(F.size(vec_col)).alias("dmax"),
                 F.sum(F.when(F.col(id_col).isNull() | F.col(vec_col).isNull(), 1).otherwise(0)).alias("nulls"),
                 F.sum(F.when(bad, 1).otherwise(0)).alias("bad")).first()
    if row["n"] == 0:
        raise EmptyCorpusError("the corpus is empty: nothing to index")
    if row["nulls"]:
        raise IndexInputError(f"{row['nulls']} row(s) have a null {id_col} or {vec_col}")
    if row["dmin"] != row["dmax"] or row["dmin"] < 1:
        raise DimensionMismatchError(f"{vec_col} lengths range from {row['dmin']} to {row['dmax']}")
    if row["bad"]:
        raise NonFiniteVectorError(f"{row['bad']} vector(s) hold NaN or inf")
    if row["ids"] != row["n"]:
        raise DuplicateIdError(f"{row['n'] - row['ids']} duplicate {id_col} value(s)")
    return int(row["n"]), int(row["dmin"])


def _stack(column) -> np.ndarray:
    return np.stack(column.to_numpy()).astype(np.float32) if len(column) else np.empty((0, 0), np.float32)


def build_index_spark(spark, df, queries, cfg: IndexConfig, out_dir: str | Path, id_col: str = "pin_id",
                      vec_col: str = "embedding") -> IndexReport:
    """Build the sharded index of ``df`` with Spark; see the module docstring."""
    import faiss
    from pyspark.sql.types import LongType, StructField, StructType

    t0 = time.perf_counter()
    n, d = check_corpus(df, id_col, vec_col)
    q = check_vectors(queries, d, "queries")
    if q.shape[0] == 0:
        raise IndexInputError("held-out queries are required to tune and measure the index")
    if cfg.metric == "cosine":
        q = normalize(q)
    device, k, seed, num_shards, metric = resolve_device(cfg.device), min(cfg.k, n), cfg.seed, cfg.shards, cfg.metric
    plan = choose_index(n, d, cfg)[0]
    check_training([plan], n, cfg)

    keyed_schema = StructType(df.select(id_col, vec_col).schema.fields
                              + [StructField("_shard", LongType()), StructField("_key", LongType())])

    def keyed(batches):
        for pdf in batches:
            ids = pdf[id_col].to_numpy(np.int64)
            yield pdf.assign(_shard=shard_of(ids, num_shards), _key=training_key(ids, seed))

    rows = df.select(id_col, vec_col).mapInPandas(keyed, keyed_schema)
    size = train_size(plan, n, cfg)
    sample = rows.orderBy("_key").limit(size).select(id_col, vec_col).toPandas() if size else None
    xt = np.empty((0, d), np.float32)
    if sample is not None:
        sample = sample.sort_values(id_col, kind="stable")
        xt = check_vectors(_stack(sample[vec_col]), d)
        xt = normalize(xt) if metric == "cosine" else xt
    trained = train_index(plan, xt, cfg.faiss_metric, device, seed)
    sc = spark.sparkContext
    index_bytes = sc.broadcast(faiss.serialize_index(trained).tobytes())
    queries_bc = sc.broadcast(q)
    folder = str(Path(out_dir).resolve())
    faiss_metric = cfg.faiss_metric

    def fill(batches):
        import faiss as fx
        import pandas as pd

        parts: dict[int, list] = {}
        for pdf in batches:
            for s, group in pdf.groupby("_shard"):
                parts.setdefault(int(s), []).append(group)
        if not parts:
            return
        empty = fx.deserialize_index(np.frombuffer(index_bytes.value, dtype=np.uint8))
        qv = queries_bc.value
        for s, groups in sorted(parts.items()):
            pdf = pd.concat(groups)
            ids = check_ids(pdf[id_col].to_numpy(np.int64), len(pdf))
            x = check_vectors(_stack(pdf[vec_col]), d)
            x = normalize(x) if metric == "cosine" else x
            entry = write_shard(fill_shard(empty, x, ids, device), folder, s, num_shards)
            # the shard's exact top k and every row tied with its k-th: that holds every row of the shard
            # tied with the global k-th, which is at least as good
            dist, idx = exact_search(qv, x, k, faiss_metric)
            found = np.where(idx >= 0, ids[idx], -1)
            yield pd.DataFrame([{**entry, "dist": dist.astype(np.float32).tobytes(), "ids": found.tobytes(),
                                 "kk": dist.shape[1]}])

    out_schema = ("shard long, file string, ntotal long, bytes long, sha256 string, dist binary, ids binary, kk long")
    results = (rows.repartition(num_shards, "_shard").mapInPandas(fill, out_schema).collect())
    index_bytes.unpersist()
    queries_bc.unpersist()

    entries: list[dict | None] = [None] * num_shards
    parts = []
    for r in results:
        s, kk = r["shard"], r["kk"]
        entries[s] = {key: r[key] for key in ("shard", "file", "ntotal", "bytes", "sha256")}
        parts.append((np.frombuffer(r["dist"], np.float32).reshape(-1, kk), np.frombuffer(r["ids"], np.int64).reshape(-1, kk)))
    for s in range(num_shards):  # a shard no pin hashed to: write it empty
        if entries[s] is None:
            entries[s] = write_shard(fill_shard(trained, np.empty((0, d), np.float32), np.empty(0, np.int64)),
                                     folder, s, num_shards)
    truth = with_ties(*merged_search(parts, cfg.faiss_metric), k)  # a row tied with the k-th is as right as the one listed

    index = ShardedIndex([faiss.read_index(f"{folder}/{e['file']}", faiss.IO_FLAG_MMAP_IFC) for e in entries], metric)
    trial = evaluate(index, plan, q, truth, cfg)
    check_budget([trial], cfg)
    reference = {"residual": mean_residual(trained, xt), "imbalance": imbalance(index.shards)}
    manifest = make_manifest(plan, cfg, device, entries, trial, [trial], reference, q.shape[0], xt.shape[0],
                             time.perf_counter() - t0, measured_k=k)
    manifest["distributed"] = {"engine": "spark", "master": sc.master, "partitions": num_shards}
    write_manifest(folder, manifest)
    lat = trial["latency"]
    return IndexReport(folder, plan.factory, trial["search_params"], trial["recall_at_k"], trial["target_met"],
                       lat["p50_ms"], lat["p99_ms"], lat["qps_1_thread"], trial["memory_bytes"],
                       manifest["build_seconds"], manifest)
