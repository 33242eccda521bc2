"""Measure and tune an ANN index against exact search on held-out queries.

The queries are real ones handed in by the caller. When they are corpus rows (the pins serving
searches with) each is left out of its own truth and results
(:class:`~pinrec.export.build.ann_build.WithoutSelf`): a corpus vector is its own nearest neighbour
and makes any index look perfect. Ground truth and recall@k: :mod:`pinrec.export.build.index_truth`.

* :func:`tune_nprobe`: the smallest ``nprobe`` whose recall@k reaches the target with 95%
  confidence (:func:`lower_bound`: mean - 1.645 standard errors, so a few hundred queries are
  enough and a lucky sample does not pass) — doubling from 1 until it does, then bisecting
  between the last miss and the first hit;
* :func:`measure_latency`: p50/p99 of single-query searches (best of 3 per query) and batch QPS
  at one thread and at all threads.

Anything with ``search(queries (B, d), k) -> (scores (B, k), ids (B, k))`` and
``set_search_params(nprobe=...)`` can be measured (:class:`pinrec.export.serving.shards.ShardedIndex`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import faiss
import numpy as np

from .index_truth import Truth, per_query_recall


class Searchable(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def set_search_params(self, **params: int) -> None: ...


@dataclass(frozen=True)
class Latency:
    """Single-query latency percentiles (ms, 1 thread) and batch throughput (queries/s)."""

    p50_ms: float
    p99_ms: float
    qps_1_thread: float
    qps_all_threads: float
    threads: int


@dataclass(frozen=True)
class Tuning:
    """The chosen search parameters, their recall@k (mean and 95% lower bound) and every setting
    tried on the tuning queries."""

    params: dict[str, int]
    recall: float
    recall_lower_bound: float
    target_met: bool
    trials: list[dict] = field(default_factory=list)


def lower_bound(per_query: np.ndarray, z: float = 1.645) -> float:
    """One-sided lower confidence bound of the mean recall, ``mean - z * sd / sqrt(n)`` (95% for
    z = 1.645): what the recall over *all* queries like these is at least, not just these."""
    n = per_query.shape[0]
    if n < 2:
        return float(per_query.mean())
    return float(per_query.mean() - z * per_query.std(ddof=1) / np.sqrt(n))


def tune_nprobe(index: Searchable, queries: np.ndarray, truth: Truth | np.ndarray, k: int, target: float,
                nlist: int, hnsw_quantizer: bool = False, z: float = 1.645) -> Tuning:
    """The cheapest ``nprobe`` in [1, nlist] whose recall@k on ``queries`` reaches ``target``
    with confidence: its :func:`lower_bound` (with ``z``; ``z=0`` compares the mean itself)
    must be >= target.

    ``truth``: the queries' exact neighbours, a :class:`~pinrec.export.build.index_truth.Truth` at ``k``
    (ties with the k-th included) or a plain (B, k) array of ids (:func:`per_query_recall`). With an HNSW coarse quantizer its ``efSearch`` is
    set to ``max(2 * nprobe, 16)``. If even ``nprobe = nlist`` misses the target, that setting is
    returned with ``target_met=False``.
    """
    seen: dict[int, tuple[float, float]] = {}
    trials: list[dict] = []

    def params(p: int) -> dict[str, int]:
        return {"nprobe": p, "quantizer_efSearch": max(2 * p, 16)} if hnsw_quantizer else {"nprobe": p}

    def reaches(p: int) -> bool:
        if p not in seen:
            index.set_search_params(**params(p))
            per_query = per_query_recall(index.search(queries, k)[1], truth, k)
            seen[p] = (float(per_query.mean()), lower_bound(per_query, z))
            trials.append({**params(p), "recall": round(seen[p][0], 5), "lower_bound": round(seen[p][1], 5)})
        return seen[p][1] >= target

    lo, hi, p = 0, None, 1
    while True:
        if reaches(p):
            hi = p
            break
        if p >= nlist:
            break
        lo, p = p, min(2 * p, nlist)
    if hi is None:
        index.set_search_params(**params(nlist))
        return Tuning(params(nlist), seen[nlist][0], seen[nlist][1], False, trials)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    index.set_search_params(**params(hi))
    return Tuning(params(hi), seen[hi][0], seen[hi][1], True, trials)


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_latency(index: Searchable, queries: np.ndarray, k: int, max_single: int = 300, repeats: int = 3) -> Latency:
    """Latency of ``index`` on ``queries`` with its current search parameters.

    p50/p99: over ``max_single`` queries, each searched alone with one faiss thread, ``repeats``
    times, keeping its fastest run — the query's own cost, not the scheduler's pauses on a shared
    machine. QPS: the whole batch in one call, at one thread and at all threads (best of
    ``repeats``).
    """
    threads = faiss.omp_get_max_threads()
    single = queries[:max_single]
    try:
        faiss.omp_set_num_threads(1)
        index.search(single[:1], k)  # warm-up: first touch of mmap'd pages, lazily built tables
        times = np.full(single.shape[0], np.inf)
        for _ in range(repeats):
            for i in range(single.shape[0]):
                t0 = time.perf_counter()
                index.search(single[i : i + 1], k)
                times[i] = min(times[i], time.perf_counter() - t0)
        qps_1 = queries.shape[0] / _best_time(lambda: index.search(queries, k), repeats)
    finally:
        faiss.omp_set_num_threads(threads)
    qps_all = queries.shape[0] / _best_time(lambda: index.search(queries, k), repeats)
    p50, p99 = np.percentile(times * 1e3, [50, 99])
    return Latency(float(p50), float(p99), float(qps_1), float(qps_all), threads)


def latency_dict(lat: Latency) -> dict:
    return {key: round(v, 4) if isinstance(v, float) else v for key, v in asdict(lat).items()}
