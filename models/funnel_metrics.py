r"""Metrics of the serving funnel replay (:mod:`pinrec.jobs.funnel`): one ranked list and a *set* of
relevant items per user (numpy, no I/O).

With :math:`L` a user's ranked list (best first), :math:`R` the items relevant to them (e.g. the
pins they saved on the replayed day) and :math:`L_{:n}` its first ``n`` items:

.. math::
    \mathrm{recall@n} = \frac{|L_{:n} \cap R|}{|R|}, \qquad
    \mathrm{HR@k} = [L_{:k} \cap R \neq \emptyset], \qquad
    \mathrm{NDCG@k} = \frac{\sum_{i < k,\, L_i \in R} 1 / \log_2(i + 2)}{\sum_{i < \min(k, |R|)} 1 / \log_2(i + 2)}

(binary relevance; the ideal list puts every relevant item first). A list shorter than ``n`` is
taken whole. The diversity guardrail of a served list: the mean cosine similarity over its distinct
pairs of embeddings (rows of zeros, pins without an embedding, are left out) and the Shannon
entropy (bits) of its categories. Every function raises ValueError on an empty ``relevant`` set
or a bad cut-off instead of returning a value that averages wrongly.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["category_entropy", "channel_shares", "hit_at", "mean_of", "mean_pairwise_cosine", "ndcg_at", "recall_at"]


def _cut(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the cut-off must be a positive integer, got {n!r}")
    return int(n)


def _relevant(relevant: Iterable[Hashable]) -> set:
    out = set(relevant)
    if not out:
        raise ValueError("relevant is empty: a user without relevant items has no recall (leave them out)")
    return out


def recall_at(ranked: Sequence[Hashable], relevant: Iterable[Hashable], n: int) -> float:
    """Share of ``relevant`` among the first ``n`` of ``ranked`` (each item counted once)."""
    rel = _relevant(relevant)
    return len(rel.intersection(list(ranked)[:_cut(n)])) / len(rel)


def hit_at(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """1.0 when any of the first ``k`` of ``ranked`` is relevant, else 0.0."""
    rel = _relevant(relevant)
    return float(any(item in rel for item in list(ranked)[:_cut(k)]))


def ndcg_at(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Binary-relevance NDCG of the first ``k`` of ``ranked`` (module docstring); a repeated item
    gains only at its first position."""
    rel, k = _relevant(relevant), _cut(k)
    seen: set = set()
    dcg = 0.0
    for i, item in enumerate(list(ranked)[:k]):
        if item in rel and item not in seen:
            dcg += 1.0 / np.log2(i + 2.0)
        seen.add(item)
    ideal = float((1.0 / np.log2(np.arange(min(k, len(rel))) + 2.0)).sum())
    return dcg / ideal


def channel_shares(channels: Iterable[str], names: Sequence[str]) -> dict[str, float]:
    """Share of each of ``names`` among ``channels`` (the first channel of every served pin, pooled
    over users); names that never occur get 0.0. An empty ``channels`` gives 0.0 for all."""
    counts = Counter(channels)
    unknown = sorted(set(counts) - set(names))
    if unknown:
        raise ValueError(f"channels {unknown} are not among {list(names)}")
    total = sum(counts.values())
    return {c: counts[c] / total if total else 0.0 for c in names}


def mean_pairwise_cosine(vectors: np.ndarray) -> float | None:
    """Mean cosine similarity over the distinct pairs of the rows of ``vectors`` (M, D); rows of
    zeros are left out. None when fewer than two rows remain (no pair to measure)."""
    v = np.asarray(vectors, np.float64)
    if v.ndim != 2:
        raise ValueError(f"vectors must be (M, D), got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    v = v[norms > 0] / norms[norms > 0, None]
    m = len(v)
    if m < 2:
        return None
    gram = v @ v.T
    return float((gram.sum() - np.trace(gram)) / (m * (m - 1)))


def category_entropy(categories: Iterable[Hashable | None]) -> float:
    """Shannon entropy in bits of the categories of a list (None counts as one category of its
    own); 0.0 for an empty list or a single category."""
    counts = np.array(list(Counter(categories).values()), np.float64)
    if not counts.size:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() + 0.0)


def mean_of(values: Mapping[str, list[float]]) -> dict[str, float]:
    """The mean of each non-empty list (empty lists are left out: nothing measured)."""
    return {k: float(np.mean(v)) for k, v in values.items() if len(v)}
