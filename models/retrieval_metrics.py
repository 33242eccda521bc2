r"""Ranking metrics of retrieval evaluation, from the rank of one relevant item per query (numpy).

Every query has exactly one relevant item (the held-out one); ``rank`` is its 0-based position in
the query's ranked candidate list, so ``rank = 0`` is the top. With :math:`r_q` the rank of query
:math:`q` among :math:`Q` queries:

.. math::
    \mathrm{HR@K} = \frac{1}{Q} \sum_q [r_q < K], \qquad
    \mathrm{NDCG@K} = \frac{1}{Q} \sum_q \frac{[r_q < K]}{\log_2(r_q + 2)}, \qquad
    \mathrm{MRR} = \frac{1}{Q} \sum_q \frac{1}{r_q + 1}

HR@K and NDCG@K are those of the leave-one-out protocol of `"Neural Collaborative Filtering"
<https://arxiv.org/abs/1708.05031>`_ (He et al., WWW 2017; ``getHitRatio`` / ``getNDCG`` of its
``evaluate.py``: ``log(2) / log(i + 2)`` for the 0-based position ``i``). With one relevant item
the ideal DCG is 1, so NDCG needs no normalisation.

Ties: :func:`ranks_from_scores` counts every other candidate whose score equals the target's as
ranked above it (pessimistic), so a model that scores everything alike gets rank ``C - 1``, never
a lucky hit. ``-inf`` marks a candidate that is excluded (it can never outrank the target unless
the target is ``-inf`` too); NaN scores are an error.
"""
from __future__ import annotations

import numpy as np


def ranks_from_scores(scores: np.ndarray, target: np.ndarray | int = 0) -> np.ndarray:
    """0-based rank of each query's target among its candidates, ties counted against the target.

    Args:
        scores: (Q, C) float scores of C candidates per query; ``-inf`` excludes a candidate.
        target: (Q,) int column of each query's relevant candidate, or one int for all
            (default 0: the target first, as in the NCF candidate lists).

    Returns:
        (Q,) int64 ranks in ``[0, C)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (Q, C) with C >= 1, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; mark excluded candidates with -inf instead")
    target = np.broadcast_to(np.asarray(target, dtype=np.int64), (scores.shape[0],))
    if target.size and (target.min() < 0 or target.max() >= scores.shape[1]):
        raise ValueError(f"target columns must lie in [0, {scores.shape[1]}), got [{target.min()}, {target.max()}]")
    rows = np.arange(scores.shape[0])
    own = scores[rows, target][:, None]
    others = np.ones(scores.shape, dtype=bool)
    others[rows, target] = False
    return ((scores >= own) & others).sum(axis=1).astype(np.int64)


def _ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer) or ranks.min() < 0:
        raise ValueError("ranks must be non-negative integers (0 = top of the list)")
    return ranks.astype(np.int64)


def _k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose target is in the top ``k`` (``rank < k``). ranks: (Q,) 0-based."""
    return float((_ranks(ranks) < _k(k)).mean())


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of ``1 / log2(rank + 2)`` over queries with ``rank < k`` (0 otherwise). ranks: (Q,)."""
    ranks, k = _ranks(ranks), _k(k)
    return float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean())


def mrr(ranks: np.ndarray, k: int | None = None) -> float:
    """Mean reciprocal rank ``1 / (rank + 1)``; with ``k``, MRR@K (0 beyond the top ``k``)."""
    ranks = _ranks(ranks)
    reciprocal = 1.0 / (ranks + 1.0)
    return float((reciprocal if k is None else np.where(ranks < _k(k), reciprocal, 0.0)).mean())


def overlap_at_k(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of common items between two top-K lists per query.

    Args:
        a, b: (Q, K) item ids, each row free of repeats (e.g. the K nearest neighbours of Q
            queries under two similarities).

    Returns:
        ``mean_q |a_q ∩ b_q| / K`` in [0, 1].
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] < 1:
        raise ValueError(f"a and b must be (Q, K) arrays of one shape with K >= 1, got {a.shape} and {b.shape}")
    common = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return float((common / a.shape[1]).mean())
