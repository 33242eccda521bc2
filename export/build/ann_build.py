"""Build the sharded ANN index over pin embeddings: choose, train once, fill S shards, tune on
held-out queries, measure, write ``index.json`` (issue #5). The future ``pinrec index`` calls
:func:`build_index`; :mod:`pinrec.jobs.index.index_spark` runs the same steps with Spark filling the shards.

1. check the input (finite (N, d) float vectors, unique int64 ids, queries of the same d; for
   ``cosine`` both are L2-normalised and searched by inner product);
2. :func:`pinrec.export.index_choice.choose_index` proposes candidates that fit the memory budget;
3. for each: train one empty index on a seeded sample (:func:`pinrec.export.serving.shards.training_sample`;
   candidates with the same lists reuse the coarse centroids and the vectors' list assignment) —
   on the GPU when ``device`` resolves to ``gpu`` (faiss's k-means runs through a GPU flat
   ``clustering_index``; shards are filled on the GPU and copied back with
   ``index_gpu_to_cpu``) — fill the shards, tune ``nprobe`` to the cheapest value whose recall@k
   on the held-out queries reaches ``target_recall`` with 95% confidence (its lower bound, not
   just its mean, must reach it), measure p50/p99 single-query latency, QPS and the size;
4. keep the fastest candidate (p50) that reaches the target within the memory budget (within
   the latency budget too when one does; with none reaching the target, the best recall and
   ``target_met`` false), write its shards and index.json.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from pinrec.export.index_choice import (
    EmptyCorpusError,
    IndexConfig,
    IndexInputError,
    IndexPlan,
    MemoryBudgetError,
    check_ids,
    check_vectors,
    choose_index,
    normalize,
)
from pinrec.export.serving.shards import (
    FORMAT_VERSION,
    HASH_NAME,
    ShardedIndex,
    build_shards,
    coarse_assign,
    imbalance,
    mean_residual,
    training_sample,
    write_manifest,
    write_shard,
)

from .index_truth import Truth, exact_knn_with_ties, per_query_recall
from .index_tuning import latency_dict, lower_bound, measure_latency, tune_nprobe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexReport:
    """What :func:`build_index` wrote: the folder, the chosen factory and search parameters, and
    the measurements of the chosen candidate (``manifest`` is the full index.json)."""

    folder: str
    factory: str
    search_params: dict
    recall_at_k: float
    target_met: bool
    p50_ms: float
    p99_ms: float
    qps_1_thread: float
    memory_bytes: int
    build_seconds: float
    manifest: dict


def resolve_device(device: str) -> str:
    """``auto`` -> ``gpu`` when faiss sees a GPU, else ``cpu``; ``gpu`` without one is an error."""
    gpus = faiss.get_num_gpus()
    if device == "gpu" and gpus == 0:
        raise ValueError("index.device='gpu' but faiss sees no GPU (install the 'gpu' extra, faiss-gpu)")
    if device == "auto":
        return "gpu" if gpus > 0 else "cpu"
    return device


def prepare(vectors, ids, queries, cfg: IndexConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (and, for cosine, normalised) float32 vectors (N, d), int64 ids (N,), queries (B, d)."""
    arr = np.asarray(vectors)
    if arr.size == 0:
        raise EmptyCorpusError("the corpus is empty: nothing to index")
    x = check_vectors(arr)
    xid = check_ids(ids, x.shape[0])
    q = check_vectors(queries, x.shape[1], "queries")
    if q.shape[0] == 0:
        raise IndexInputError("held-out queries are required to tune and measure the index")
    if cfg.metric == "cosine":
        x, q = normalize(x), normalize(q)
    return x, xid, q


def train_size(plan: IndexPlan, n: int, cfg: IndexConfig) -> int:
    """Vectors to train on: ``cfg.train_sample`` or 40 per list (faiss's k-means asks for 39) (10 000 at least for PQ's 256
    centroids per sub-quantiser), never more than N."""
    size = cfg.train_sample or 40 * plan.nlist
    if plan.code.startswith("PQ"):
        size = max(size, 256 * 39)
    return min(n, size)


def check_training(plans: list[IndexPlan], n: int, cfg: IndexConfig) -> None:
    """Raise :class:`IndexInputError` naming ``index.train_sample`` when a plan would train its ``nlist``
    lists on fewer vectors (faiss's k-means refuses that, but only after the exact search)."""
    for plan in plans:
        if plan.kind == "ivf" and (size := train_size(plan, n, cfg)) < plan.nlist:
            raise IndexInputError(f"index.train_sample={cfg.train_sample} gives {size} training vectors for the "
                                  f"{plan.nlist} lists of {plan.factory} (N={n}); k-means needs at least one per list "
                                  f"(0: 40 per list)")


def train_index(plan: IndexPlan, xt: np.ndarray, metric: str, device: str = "cpu", seed: int = 7,
                centroids: np.ndarray | None = None) -> faiss.Index:
    """An empty index of ``plan`` trained on ``xt`` (n, d); ``metric`` is ``ip`` or ``l2``.

    ``centroids``: (nlist, d) coarse centroids trained before (another candidate with the same
    lists): they are reused and only the list code (SQ/PQ) is trained.
    """
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(plan.d, plan.factory, fm)
    if plan.kind == "flat":
        return index
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    if centroids is not None:
        ivf.quantizer.add(centroids)
    gpu_clustering = device == "gpu" and centroids is None
    if gpu_clustering:
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    index.train(xt)
    if gpu_clustering:
        ivf.clustering_index = None
    return index


def coarse_centroids(index: faiss.Index) -> np.ndarray | None:
    """The (nlist, d) coarse centroids of an IVF without pre-transform (else ``None``)."""
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        return None
    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def default_params(trained: faiss.Index) -> dict[str, int]:
    """The search parameters a freshly trained index carries (``nprobe``, HNSW ``efSearch``).

    Shard files are written with these, not with the tuned values, so that a file depends only
    on the trained index and the pins it holds (the Spark job writes shards before tuning); the
    tuned values live in index.json and :meth:`ShardedIndex.open` applies them.
    """
    if isinstance(faiss.downcast_index(trained), faiss.IndexIDMap):
        return {}
    ivf = faiss.extract_index_ivf(trained)
    params = {"nprobe": int(ivf.nprobe)}
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        params["quantizer_efSearch"] = int(quantizer.hnsw.efSearch)
    return params


def evaluate(index: ShardedIndex, plan: IndexPlan, queries: np.ndarray, truth: Truth, cfg: IndexConfig) -> dict:
    """Tune (IVF) and measure one candidate on ``queries`` (B, d) against their exact neighbours
    ``truth`` (:class:`~pinrec.export.build.index_truth.Truth`, :func:`exact_knn_with_ties`); returns its trial
    record. ``target_met``: the 95% lower bound of recall@k reaches
    the target."""
    k = min(cfg.k, index.ntotal)
    if plan.tunable:
        tuning = tune_nprobe(index, queries, truth, k, cfg.target_recall, plan.nlist, "_HNSW" in plan.factory)
        params, trials, recall, low = tuning.params, tuning.trials, tuning.recall, tuning.recall_lower_bound
    else:
        per_query = per_query_recall(index.search(queries, k)[1], truth, k)
        params, trials, recall, low = {}, [], float(per_query.mean()), lower_bound(per_query)
    lat = measure_latency(index, queries, k)
    size = int(sum(faiss.serialize_index(s).nbytes + _lookup_table_bytes(s) for s in index.shards))
    return {"factory": plan.factory, "reason": plan.reason, "search_params": params, "recall_at_k": round(recall, 5),
            "recall_lower_bound": round(low, 5), "tuning": trials, "latency": latency_dict(lat), "memory_bytes": size,
            "target_met": low >= cfg.target_recall, "memory_ok": size <= cfg.memory_budget_mb * 2**20,
            "latency_ok": lat.p99_ms <= cfg.latency_budget_ms}


def pick(trials: list[dict]) -> int:
    """Index of the chosen trial. Recall first: the fastest (p50) trial that reaches the target
    within the memory budget, preferring those within the latency budget too; when none reaches
    the target, the best recall within the memory budget."""
    for need in (("target_met", "memory_ok", "latency_ok"), ("target_met", "memory_ok")):
        ok = [i for i, t in enumerate(trials) if all(t[key] for key in need)]
        if ok:
            return min(ok, key=lambda i: trials[i]["latency"]["p50_ms"])
    fits = [i for i, t in enumerate(trials) if t["memory_ok"]] or list(range(len(trials)))
    return max(fits, key=lambda i: trials[i]["recall_at_k"])


def _lookup_table_bytes(shard: faiss.Index) -> int:
    """Bytes of the PQ lookup table an IVF-PQ shard holds beside its file (faiss precomputes it for
    l2 with residuals, and again whenever the file is opened): memory the file size does not show."""
    try:
        ivf = faiss.extract_index_ivf(shard)
    except RuntimeError:  # not an IVF index
        return 0
    table = getattr(faiss.downcast_index(ivf), "precomputed_table", None)
    return int(table.size()) * 4 if table is not None else 0


def check_budget(trials: list[dict], cfg: IndexConfig) -> None:
    """Raise :class:`MemoryBudgetError` when no measured candidate fits ``index.memory_budget_mb`` (the
    estimates that admitted them were too low): shipping the best of them anyway would break the
    budget a serving host was sized by."""
    if trials and not any(t["memory_ok"] for t in trials):
        sizes = ", ".join(f"{t['factory']} {t['memory_bytes'] / 2**20:.2f} MB" for t in trials)
        raise MemoryBudgetError(f"no index fits index.memory_budget_mb={cfg.memory_budget_mb}: measured {sizes} "
                                f"({cfg.shards} shard(s), each with its own trained parts); raise the budget or "
                                "lower index.shards")


def make_manifest(plan: IndexPlan, cfg: IndexConfig, device: str, entries: list[dict], trial: dict,
                  candidates: list[dict], reference: dict, n_queries: int, train_n: int,
                  build_seconds: float, measured_k: int | None = None) -> dict:
    """The index.json document (shared by the in-process and the Spark build); ``measured_k``: the k the
    recall was measured at (``cfg.k``, or fewer when the corpus is smaller), under ``measured.k``."""
    return {
        "format": FORMAT_VERSION, "hash": HASH_NAME, "factory": plan.factory, "kind": plan.kind,
        "metric": cfg.metric, "faiss_metric": cfg.faiss_metric, "d": plan.d, "nlist": plan.nlist,
        "ntotal": int(sum(e["ntotal"] for e in entries)), "num_shards": len(entries), "shards": entries,
        "search_params": trial["search_params"], "k": cfg.k,
        "measured": {key: trial[key] for key in ("recall_at_k", "recall_lower_bound", "target_met", "latency",
                                                 "memory_bytes", "tuning")}
        | {"queries": n_queries, "k": int(measured_k if measured_k is not None else cfg.k)},
        "candidates": [{k: v for k, v in c.items() if k != "tuning"} for c in candidates],
        "drift_reference": reference, "train_size": train_n, "device": device,
        "embedding_version": cfg.embedding_version, "faiss_version": faiss.__version__,
        "build_seconds": round(build_seconds, 3), "added": 0, "config": dataclasses.asdict(cfg),
    }


class WithoutSelf:
    """``index`` searched for one neighbour more, each query's own pin id (``own``, (B,)) removed: for
    queries that are corpus rows, which every index finds first and which would inflate recall."""

    def __init__(self, index, own: np.ndarray) -> None:
        self.index, self.own = index, np.asarray(own, np.int64)[:, None]

    def __getattr__(self, name: str):
        return getattr(self.index, name)

    @property
    def ntotal(self) -> int:  # the neighbours a query can have: every pin but itself
        return self.index.ntotal - 1

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, found = self.index.search(queries, k + 1)
        keep = found != self.own[: len(found)]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept ones first, in rank order
        kept = np.take_along_axis(keep, order, axis=1)
        return np.take_along_axis(scores, order, axis=1), np.where(kept, np.take_along_axis(found, order, axis=1), -1)


def build_index(vectors, ids, queries, cfg: IndexConfig, out_dir: str | Path,
                query_ids: np.ndarray | None = None) -> IndexReport:
    """Build, tune and write the sharded index over ``vectors`` (N, d) with pin ``ids`` (N,),
    tuned on held-out ``queries`` (B, d) (see the module docstring). ``query_ids`` (B,): when the
    queries are corpus rows, their pin ids, left out of their own truth and results (:class:`WithoutSelf`)."""
    t0 = time.perf_counter()
    x, xid, q = prepare(vectors, ids, queries, cfg)
    device = resolve_device(cfg.device)
    k = min(cfg.k, x.shape[0] - (query_ids is not None))
    if k < 1:
        raise IndexInputError("a corpus of one vector queried by itself has no neighbour to find")
    plans = choose_index(x.shape[0], x.shape[1], cfg)
    check_training(plans, x.shape[0], cfg)
    truth = exact_knn_with_ties(q, x, k, cfg.faiss_metric, ids=xid, own=query_ids)
    searchable = (lambda index: WithoutSelf(index, query_ids)) if query_ids is not None else (lambda index: index)
    best: tuple | None = None
    trials: list[dict] = []
    coarse_cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # coarse key -> (centroids, assignment)
    for plan in plans:
        t1 = time.perf_counter()
        sample = training_sample(xid, train_size(plan, x.shape[0], cfg), cfg.seed)
        xt = x[sample]
        coarse = plan.factory.split(",")[0]
        cached = coarse_cache.get(coarse)
        trained = train_index(plan, xt, cfg.faiss_metric, device, cfg.seed, cached[0] if cached else None)
        if plan.kind == "ivf" and cached is None and (c := coarse_centroids(trained)) is not None:
            cached = coarse_cache[coarse] = (c, coarse_assign(trained, x) if device == "cpu" else None)
        shards = build_shards(trained, x, xid, cfg.shards, device, cached[1] if cached else None)
        trial = evaluate(searchable(ShardedIndex(shards, cfg.metric)), plan, q, truth, cfg)
        trial["build_seconds"] = round(time.perf_counter() - t1, 3)
        log.info("candidate %s: %s", plan.factory, trial)
        trials.append(trial)
        if pick(trials) == len(trials) - 1:
            best = (plan, trained, shards, xt, trial)
    check_budget(trials, cfg)
    plan, trained, shards, xt, trial = best
    ShardedIndex(shards, cfg.metric).set_search_params(**default_params(trained))
    folder = Path(out_dir)
    entries = [write_shard(s, folder, i, len(shards)) for i, s in enumerate(shards)]
    reference = {"residual": mean_residual(trained, xt), "imbalance": imbalance(shards)}
    manifest = make_manifest(plan, cfg, device, entries, trial, trials, reference, q.shape[0], xt.shape[0],
                             time.perf_counter() - t0, measured_k=k)
    write_manifest(folder, manifest)
    lat = trial["latency"]
    return IndexReport(str(folder), plan.factory, trial["search_params"], trial["recall_at_k"], trial["target_met"],
                       lat["p50_ms"], lat["p99_ms"], lat["qps_1_thread"], trial["memory_bytes"],
                       manifest["build_seconds"], manifest)
