"""The exact ground truth an ANN index is measured against, and recall@k against it.

Ground truth is exact search (:func:`faiss.knn`) over the same (normalised, for cosine) corpus.
Rows tied with a query's k-th neighbour are all kept (:func:`exact_search` widens until it has
them): which of them an exact search returns depends on the order it met them (shards merge in
another order than one flat scan), so any of them is a correct k-th neighbour.

* :func:`exact_knn`: the plain exact top-k;
* :func:`exact_knn_with_ties`: the top-k and every row tied with the k-th;
* :func:`per_query_recall` / :func:`recall_at_k`: k-recall@k, |approx top-k ∩ exact top-k| / k,
  where the rows tied with the k-th share the places the strictly better rows leave.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class Truth:
    """The exact neighbours of B queries at ``k``: ``ids`` (B, K >= k) ids (or rows) best first, -1
    padded; the first ``better[i]`` (``better``: (B,) int) of row i score strictly better than its
    k-th, the others tie with the k-th. A correct top-k holds all the better ones and any
    ``k - better[i]`` of the tied ones."""

    ids: np.ndarray
    better: np.ndarray
    k: int


def exact_knn(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str) -> np.ndarray:
    """(B, k) int64 row indices of the exact top-k of each query (``metric``: ``ip`` or ``l2``)."""
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    _, idx = faiss.knn(queries, corpus, min(k, corpus.shape[0]), metric=fm)
    return idx


def exact_knn_with_ties(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str, rel: float = 1e-6,
                        ids: np.ndarray | None = None, own: np.ndarray | None = None) -> Truth:
    """The :class:`Truth` of ``queries`` (B, d) at ``k`` over ``corpus`` (N, d): each query's exact
    top-k and every other row whose score ties with its k-th (within ``rel`` of its magnitude;
    :func:`exact_search`). ``ids`` (N,): the corpus's ids (default: row numbers). ``own`` (B,): each
    query's own id, left out before its k-th is found (queries that are corpus rows: with
    unnormalised ``ip`` the row need not be its own nearest, and a truth cut at k + 1 then held a
    neighbour worse than the k-th)."""
    skip = int(own is not None)
    k = min(k, corpus.shape[0] - skip)
    if k < 1:
        raise ValueError(f"no neighbour to find: k={k} over {corpus.shape[0]} row(s)")
    scores, idx = exact_search(queries, corpus, k + skip, metric, rel)
    found = idx if ids is None else np.where(idx >= 0, np.asarray(ids, np.int64)[idx], -1)
    if skip:
        mine = found == np.asarray(own, np.int64)[:, None]
        order = np.argsort(mine, axis=1, kind="stable")  # the query's own id moved last, dropped
        scores = np.where(mine, np.inf if metric == "l2" else -np.inf, scores)
        scores, found = np.take_along_axis(scores, order, 1), np.take_along_axis(np.where(mine, -1, found), order, 1)
    return with_ties(scores, found, k, rel)


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


def with_ties(scores: np.ndarray, idx: np.ndarray, k: int, rel: float = 1e-6) -> Truth:
    """The :class:`Truth` at ``k`` of an exact search ranked best first (``idx`` (B, W) ids or rows,
    ``scores`` their (B, W) scores or distances, W >= k): the top k, then the others whose score
    ties with the k-th (within ``rel``), -1 for the rest (also the Spark build's merged shards)."""
    k = min(k, idx.shape[1])
    top = np.arange(idx.shape[1])[None, :] < k
    tied = tied_mask(scores, idx, k, rel)
    return Truth(np.where(top | tied, idx, -1), (top & ~tied & (idx >= 0)).sum(axis=1), k)


def per_query_recall(found: np.ndarray, truth: Truth | np.ndarray, k: int | None = None) -> np.ndarray:
    """(B,) recall@k of (B, >= k) ``found`` ids: with a :class:`Truth`, (|found ∩ better| +
    min(|found ∩ tied|, k - |better|)) / k — a tied row found instead of the one exact search
    listed is a hit, but two tied rows never make up for a better one missed; with a plain (B, K)
    array, |found ∩ truth| / k (``k`` None: K). -1 never matches; a repeated id counts once."""
    if isinstance(truth, Truth):
        if k is not None and k != truth.k:
            raise ValueError(f"the truth was found at k={truth.k}, recall asked at k={k}")
        ids, better, k = truth.ids, truth.better, truth.k
    else:
        ids, k = truth, k or truth.shape[1]
        better = np.full(ids.shape[0], ids.shape[1])
    if found.shape[0] != ids.shape[0]:
        raise ValueError(f"found has {found.shape[0]} queries, truth {ids.shape[0]}")
    out = np.empty(ids.shape[0], np.float64)
    for i, (f, t, b) in enumerate(zip(found[:, :k], ids, better)):
        f, tied = f[f >= 0], t[b:]
        hits = np.intersect1d(f, t[:b]).size + min(np.intersect1d(f, tied[tied >= 0]).size, max(k - b, 0))
        out[i] = hits / k
    return out


def recall_at_k(found: np.ndarray, truth: Truth | np.ndarray, k: int | None = None) -> float:
    """Mean over queries of :func:`per_query_recall` (k-recall@k)."""
    return float(per_query_recall(found, truth, k).mean())
