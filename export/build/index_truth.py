"""The exact ground truth an ANN index is measured against, and recall@k against it.

Ground truth is exact search (:func:`faiss.knn`) over the same (normalised, for cosine) corpus.
Rows tied with a query's k-th neighbour are all kept (:func:`exact_search` widens until it has
them): which of them an exact search returns depends on the order it met them (shards merge in
another order than one flat scan), so any of them is a correct k-th neighbour.

* :func:`exact_knn`: the plain exact top-k;
* :func:`exact_knn_with_ties`: the top-k and every row tied with the k-th;
* :func:`per_query_recall` / :func:`recall_at_k`: k-recall@k, |approx top-k ∩ exact top-k| / k.
"""
from __future__ import annotations

import faiss
import numpy as np


def exact_knn(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str) -> np.ndarray:
    """(B, k) int64 row indices of the exact top-k of each query (``metric``: ``ip`` or ``l2``)."""
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    _, idx = faiss.knn(queries, corpus, min(k, corpus.shape[0]), metric=fm)
    return idx


def exact_knn_with_ties(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str,
                        rel: float = 1e-6) -> np.ndarray:
    """(B, K) int64 row indices, K >= k: each query's exact top-k followed by every other row whose
    score ties with its k-th (within ``rel`` of its magnitude; :func:`exact_search`), -1 after.
    Which of tied rows an exact search returns depends on the order it met them (shards merge in
    another order than one flat scan), so any of them is a correct k-th neighbour."""
    k = min(k, corpus.shape[0])
    scores, idx = exact_search(queries, corpus, k, metric, rel)
    return with_ties(scores, idx, k, rel)


def tie_width(k: int, n: int) -> int:
    """How many neighbours an exact search keeps at first to find the rows tied with the k-th of ``n``."""
    return min(n, 4 * k)


def exact_search(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str,
                 rel: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(B, W) scores and row indices, best first, of each query's exact top-``k`` and every row tied
    with its k-th (``metric``: ``ip`` or ``l2``); rows past a query's last are -1 with the worst score.

    It keeps :func:`tie_width` neighbours, then doubles the width for the queries whose last one
    still ties with their k-th, until none does or W = N: duplicates (re-pins of one image) can tie
    by the hundred, and a truth cut at a fixed width counted the tied rows an index found as misses.
    """
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    n = corpus.shape[0]
    k, width = min(k, n), tie_width(min(k, n), n)
    scores, idx = faiss.knn(queries, corpus, width, metric=fm)
    todo = np.flatnonzero(tied_mask(scores, idx, k, rel)[:, -1])
    while todo.size and width < n:
        width = min(2 * width, n)
        wide_scores, wide_idx = faiss.knn(queries[todo], corpus, width, metric=fm)
        pad = width - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.inf if metric == "l2" else -np.inf)
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        scores[todo], idx[todo] = wide_scores, wide_idx
        todo = todo[tied_mask(wide_scores, wide_idx, k, rel)[:, -1]]
    return scores, idx


def merged_search(parts: list[tuple[np.ndarray, np.ndarray]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The (B, sum W_s) scores and ids, best first, of per-shard :func:`exact_search` results ``parts``
    ((B, W_s) scores and ids each, -1 padded): every column is kept, so no shard's tied rows are cut."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(scores if metric == "l2" else -scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def tied_mask(scores: np.ndarray, idx: np.ndarray, k: int, rel: float = 1e-6) -> np.ndarray:
    """(B, W) bool: the entries of a best-first exact result whose score ties with the k-th (within
    ``rel`` of its magnitude); -1 entries never tie."""
    kth = scores[:, k - 1:k]
    return (np.abs(scores - kth) <= rel * np.maximum(np.abs(kth), 1e-12)) & (idx >= 0)


def with_ties(scores: np.ndarray, idx: np.ndarray, k: int, rel: float = 1e-6) -> np.ndarray:
    """(B, W) ids or rows of an exact search ranked best first (``scores`` its (B, W) scores or
    distances, W >= k): the top k, then the others whose score ties with the k-th (within ``rel``),
    -1 for the rest (:func:`exact_knn_with_ties`; also the Spark build's merged shards)."""
    if idx.shape[1] <= k:
        return idx
    keep = np.arange(idx.shape[1])[None, :] < k
    return np.where(keep | tied_mask(scores, idx, k, rel), idx, -1)


def per_query_recall(found: np.ndarray, truth: np.ndarray, k: int | None = None) -> np.ndarray:
    """(B,) |found_i[:k] ∩ truth_i| / k, at most 1, for (B, >= k) found ids and (B, K) truth ids (-1
    never matches; ``k`` None: K). With :func:`exact_knn_with_ties`' truth (K > k: the rows tied with
    the k-th), a tied row found instead of the one exact search listed counts as a hit."""
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found has {found.shape[0]} queries, truth {truth.shape[0]}")
    k = k or truth.shape[1]
    return np.array([min(np.intersect1d(f[f >= 0], t[t >= 0]).size, k) / k for f, t in zip(found[:, :k], truth)],
                    dtype=np.float64)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Mean over queries of :func:`per_query_recall` (k-recall@k)."""
    return float(per_query_recall(found, truth, k).mean())
