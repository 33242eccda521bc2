"""Diversity re-ranking of :mod:`pinrec.export.serving.recommend`: a per-category cap and maximal marginal relevance.

Greedy selection by score (ties: smaller pin id first) with at most ``category_cap`` pins per
category and, when ``mmr_lambda < 1``, maximal marginal relevance (Carbonell & Goldstein, SIGIR
1998): ``argmax_i lambda * rel_i - (1 - lambda) * max_{j in S} cos(e_i, e_j)``, ``rel`` the score
min-max scaled to [0, 1] over the candidates. Fewer than k positions come back when the
candidates cannot fill k under the cap. numpy only.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rerank(score: np.ndarray, pin_ids: np.ndarray, cats: np.ndarray, k: int, category_cap: int = 0,
           mmr_lambda: float = 1.0, embed: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    r"""Positions of the chosen candidates, in result order.

    Args:
        score (np.ndarray): (B,) ranker scores. pin_ids (np.ndarray): (B,) int64 (tie-break).
        cats (np.ndarray): (B,) int64 category codes (>= 0).
        k (int): most positions returned.
        category_cap (int, optional): most pins of one category (0: no cap). (default: ``0``)
        mmr_lambda (float, optional): relevance weight of MMR (1: score order). (default: ``1.0``)
        embed (callable, optional): positions (S,) -> (S, D) float32 embeddings (a fresh array;
            needed when ``mmr_lambda < 1``). (default: ``None``)
    """
    order = np.lexsort((pin_ids, -score))
    cats = cats[order]
    if category_cap:
        by_cat = np.argsort(cats, kind="stable")
        sorted_cats = cats[by_cat]
        start = np.searchsorted(sorted_cats, sorted_cats, side="left")
        rank = np.empty(len(cats), np.int64)
        rank[by_cat] = np.arange(len(cats)) - start
        order, cats = order[rank < category_cap], cats[rank < category_cap]
    if mmr_lambda >= 1.0 or len(order) <= 1:
        return order[:k]
    if embed is None:
        raise ValueError("MMR (mmr_lambda < 1) needs the candidates' embeddings")
    emb = embed(order)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    s = score[order]
    rel = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.ones_like(s)
    lam, cap = mmr_lambda, category_cap or len(order)
    max_sim = np.full(len(order), -np.inf)
    open_ = np.ones(len(order), bool)
    taken = np.zeros(int(cats.max()) + 1, np.int64)
    chosen: list[int] = []
    while len(chosen) < k and open_.any():
        gain = np.where(open_, lam * rel - (1 - lam) * (max_sim if chosen else 0.0), -np.inf)
        i = int(np.argmax(gain))  # first max: the better-scored of equal gains
        chosen.append(i)
        open_[i] = False
        taken[cats[i]] += 1
        if taken[cats[i]] >= cap:
            open_ &= cats != cats[i]
        max_sim = np.maximum(max_sim, emb @ emb[i])
    return order[np.array(chosen, np.int64)]
