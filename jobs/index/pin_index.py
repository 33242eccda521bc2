"""The index job: the FAISS index over the current PinSage embeddings (``pinrec index``).

1. read the ``pin_embeddings`` table (the catalog) at its current Delta version (pin_id, embedding,
   model_version) into numpy through Arrow;
2. take ``queries`` real queries to tune and measure the index: a sample of users' recently saved
   pins, each searched with its own embedding (what serving's ANN channel asks with: one search per
   recent save), or a sample of all pins when fewer than 100 saves are found; either way each query
   is left out of its own truth and results (:class:`~pinrec.export.build.ann_build.WithoutSelf`),
   except in a one-pin catalogue, measured at k = 1 with that pin as the query;
3. :func:`pinrec.export.build.ann_build.build_index` chooses, tunes and writes the sharded index into
   ``<artifacts>/index/<embedding model_version>/`` (``index.json`` + shards; artifacts on S3: built
   in a temporary local folder, then uploaded with ``index.json`` last);
4. log the choice, recall@k and latency to MLflow (experiment ``pinrec-index``).

The output folder is keyed by the embedding version, so re-running on the same embeddings
rebuilds the same place and a new PinSage model never overwrites the index serving reads.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pinrec.export.index_choice import IndexConfig, NonFiniteVectorError
from pinrec.jobs.io.folders import replace_folder
from pinrec.jobs.io.lake import Location, as_location

if TYPE_CHECKING:
    from pinrec.jobs.io.tracking import ArtifactRoot

EXPERIMENT = "pinrec-index"
MIN_USER_QUERIES = 100  # fewer saved-pin queries than this: a larger sample of all pins bounds recall tighter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinIndexReport:
    """What the index job built: where, from which embeddings, and the builder's measurements
    (``k``: the k its recall was measured at, ``index.k`` or fewer when the corpus is smaller)."""

    folder: str
    embedding_version: str
    embeddings_delta_version: int
    pins: int
    dim: int
    queries: int
    query_kind: str
    factory: str
    search_params: dict
    recall_at_k: float
    k: int
    target_met: bool
    p50_ms: float
    p99_ms: float
    memory_bytes: int
    seconds: float
    run_id: str | None = None

    def render(self) -> str:
        met = "met" if self.target_met else "NOT met"
        return (f"index            {self.factory} over {self.pins} pins x {self.dim} ({self.embedding_version}, "
                f"pin_embeddings v{self.embeddings_delta_version}); recall@{self.k}={self.recall_at_k:.4f} "
                f"(target {met}) on {self.queries} held-out queries ({self.query_kind}); p50 {self.p50_ms:.3f} ms, p99 "
                f"{self.p99_ms:.3f} ms; {self.memory_bytes / 2**20:.1f} MiB; params {self.search_params}; "
                f"{self.seconds:.1f} s -> {self.folder}")


def read_embeddings(spark, warehouse) -> tuple[np.ndarray, np.ndarray, str, int]:
    """(pin ids (N,) int64 sorted, vectors (N, D) float32, model_version, Delta version) of the
    ``pin_embeddings`` table of ``warehouse`` (a path, Location or
    :class:`~pinrec.jobs.io.catalog.Catalog`); raises when it is missing, empty or mixes versions."""
    import pyarrow.compute as pc

    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    path = catalog.path("pin_embeddings")
    if not catalog.exists("pin_embeddings"):
        raise FileNotFoundError(f"no pin embeddings at {path}: run `pinrec pinsage` first")
    df = catalog.read("pin_embeddings")
    version = catalog.reads["pin_embeddings"]
    table = (df.select("pin_id", "embedding", "model_version").toArrow())
    if table.num_rows == 0:
        raise ValueError(f"{path} is empty")
    versions = pc.unique(table.column("model_version")).to_pylist()
    if len(versions) != 1:
        raise ValueError(f"{path} mixes embedding versions {versions}; rerun `pinrec pinsage`")
    ids, vectors = embedding_matrix(table, path)
    return ids, vectors, str(versions[0]), version


def embedding_matrix(table, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (N,) int64, vectors (N, D) float32)`` of an Arrow table with ``pin_id`` and a list column
    ``embedding``, sorted by id. A null id or embedding, or embeddings of unequal length, raise a
    ValueError naming ``where`` (flattening would silently drop a null list, or re-cut ragged rows
    into other pins' vectors); an embedding holding NaN or inf, or a value float32 cannot hold, raises
    :class:`~pinrec.export.index_choice.NonFiniteVectorError` naming ``where`` and the pin ids."""
    import pyarrow.compute as pc

    table = table.sort_by("pin_id")
    for column in ("pin_id", "embedding"):
        if nulls := table.column(column).null_count:
            raise ValueError(f"{where}: {nulls} row(s) with a null {column}")
    lengths = pc.list_value_length(table.column("embedding"))
    low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if low != high or not low:
        raise ValueError(f"{where}: embeddings must all have one length > 0, got lengths {low}..{high}")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
        flat = pc.list_flatten(table.column("embedding")).to_numpy(zero_copy_only=False).astype(np.float32)
    ids, vectors = table.column("pin_id").to_numpy().astype(np.int64), flat.reshape(table.num_rows, high)
    if not (finite := np.isfinite(vectors).all(axis=1)).all():
        bad = ids[~finite]
        raise NonFiniteVectorError(f"{where}: the embedding of {bad.size} pin(s) holds NaN, inf or a value beyond "
                                   f"float32's range (pin_id {bad[:5].tolist()})")
    return ids, vectors


def held_out_queries(vectors: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of ``min(n, N)`` corpus vectors (B, D) and their rows (B,): the fallback when
    too few saved pins are found (each query's own pin is left out of its truth and results:
    :class:`~pinrec.export.build.ann_build.WithoutSelf`)."""
    if n < 1:
        raise ValueError(f"queries must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(vectors), size=min(n, len(vectors)), replace=False))
    return np.ascontiguousarray(vectors[pick]), pick


def saved_pin_queries(last_saved, ids: np.ndarray, vectors: np.ndarray, n: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` queries (B, D) and their pin ids (B,): a seeded sample of the saves in
    ``last_saved`` (an Arrow list column of pin ids), each the saved pin's own embedding, as serving's
    ANN channel searches once per recent save (with the newest ``recommend.ann_queries`` of them).
    ``ids`` (N,) sorted, ``vectors`` (N, D); pins without an embedding, or with a zero one, are left out
    as serving leaves them out."""
    import pyarrow.compute as pc

    saved = pc.drop_null(pc.list_flatten(last_saved)).to_numpy(zero_copy_only=False).astype(np.int64)
    pos = np.minimum(np.searchsorted(ids, saved), len(ids) - 1)
    rows = pos[ids[pos] == saved]
    rows = rows[np.abs(vectors[rows]).sum(axis=1) > 0]
    rng = np.random.default_rng(seed)
    rows = rows[np.sort(rng.choice(len(rows), size=min(n, len(rows)), replace=False))]
    return np.ascontiguousarray(vectors[rows]), ids[rows]


def user_queries(spark, warehouse, ids: np.ndarray, vectors: np.ndarray, n: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`saved_pin_queries` over ``last_saved_pins`` of each user's newest user-feature row: up
    to ``n`` queries (B, D) and their pin ids (B,); none when there are no user features."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    if not catalog.exists("features_user"):
        return np.zeros((0, vectors.shape[1]), np.float32), np.zeros(0, np.int64)
    newest = Window.partitionBy("user_id").orderBy(F.col("feature_ts").desc())
    saves = (catalog.read("features_user")
             .withColumn("_r", F.row_number().over(newest)).where("_r = 1 and size(last_saved_pins) > 0")
             .select("user_id", "last_saved_pins").toArrow().sort_by("user_id"))
    return saved_pin_queries(saves.column("last_saved_pins"), ids, vectors, n, seed)


def index_folder(artifacts: str | Path | Location, embedding_version: str) -> Location:
    """``<artifacts>/index/<embedding_version>``: where the index over those embeddings lives."""
    return as_location(artifacts) / "index" / embedding_version


def build_pin_index(spark, warehouse, artifacts: str | Path | Location, cfg: IndexConfig,
                    tracking_uri: str | None, queries: int = 1000, experiment: str = EXPERIMENT, *,
                    artifact_root: ArtifactRoot | None = None) -> PinIndexReport:
    """Build the index over the current pin embeddings (module docstring). ``artifacts``: a local
    folder, or an S3 location (``storage.location("artifacts")``: a plain ``s3://`` string gets
    AWS's own endpoint), where the index is built in a temporary local folder and then uploaded,
    ``index.json`` last; ``artifact_root``: the MLflow experiment's artifact root if the run creates it."""
    from pinrec.export.build.ann_build import build_index
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.tracking import tracked_run

    start = time.perf_counter()
    catalog = Catalog.of(spark, warehouse)
    ids, vectors, emb_version, delta_v = read_embeddings(spark, catalog)
    cfg = dataclasses.replace(cfg, embedding_version=emb_version)
    q, query_ids = user_queries(spark, catalog, ids, vectors, queries, cfg.seed)
    query_kind = "users' recently saved pins, each without itself"
    if len(q) < min(queries, MIN_USER_QUERIES):
        log.warning("only %d saved pins to query with: tuning on a sample of pin embeddings instead", len(q))
        q, rows = held_out_queries(vectors, queries, cfg.seed)
        query_kind, query_ids = "a sample of pin embeddings, each without itself", ids[rows]
    if len(ids) == 1:  # without itself a query has nothing to find; with it, the one pin is the exact answer
        q, query_ids, query_kind = vectors, None, "the one pin itself (no other pin to find)"
    folder = index_folder(artifacts, emb_version)
    params = {"index": dataclasses.asdict(cfg), "pins": len(ids), "dim": vectors.shape[1], "queries": len(q),
              "query_kind": query_kind, "pin_embeddings_delta_version": delta_v}
    track = tracked_run(tracking_uri, experiment, "index", params, {"job": "index"}, artifact_root=artifact_root) \
        if tracking_uri else contextlib.nullcontext()
    with track as run, tempfile.TemporaryDirectory(prefix="pinrec-index-") as scratch:
        # S3: built on local disk, then uploaded; locally: built beside its place, renamed into it
        tmp = Path(scratch, "index") if folder.is_s3 else Path(folder.path + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        built = build_index(vectors, ids, q, cfg, tmp, query_ids=query_ids)
        if folder.is_s3:  # same embeddings -> same folder: replace it whole
            replace_folder(tmp, folder, last=("index.json",))
        else:
            shutil.rmtree(folder.path, ignore_errors=True)
            tmp.rename(folder.path)
        k = built.manifest["measured"]["k"]  # cfg.k, or fewer when the corpus is smaller
        report = PinIndexReport(str(folder), emb_version, delta_v, len(ids), vectors.shape[1], len(q), query_kind,
                                built.factory,
                                built.search_params, built.recall_at_k, k, built.target_met, built.p50_ms,
                                built.p99_ms, built.memory_bytes, time.perf_counter() - start,
                                None if run is None else run.run_id)
        if run is not None:
            run.log_metrics({f"recall_at_{k}": built.recall_at_k, "p50_ms": built.p50_ms, "p99_ms": built.p99_ms,
                             "qps_1_thread": built.qps_1_thread, "memory_bytes": built.memory_bytes,
                             "seconds": report.seconds})
            run.log_dict(json.loads(json.dumps(built.manifest, default=str)), "index.json")
            run.set_tags({"factory": built.factory, "embedding_version": emb_version})
    return report
