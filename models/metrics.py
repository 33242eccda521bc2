"""Ranking and calibration metrics in numpy: AUC (and its session bootstrap), log-loss, ECE,
grouped NDCG@k, Kendall's tau-b.

All take 1-D arrays of equal length; ``sample_weight`` (where accepted) re-weights rows, e.g.
by the training set's ``1 / negative_rate`` so metrics refer to the unsampled population.
"""
from __future__ import annotations

import numpy as np


def _as_1d(*arrays, names: tuple[str, ...]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() if a is not None else None for a in arrays]
    n = out[0].shape[0]
    for a, name in zip(out, names):
        if a is not None and a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} rows, expected {n}")
    if n == 0:
        raise ValueError("metrics need at least one row")
    return out


def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("sample_weight must be finite and non-negative")
    return w


def auc(y_true, y_score, sample_weight=None) -> float:
    """Area under the ROC curve from ranks: the (weighted) probability that a random positive
    scores above a random negative, ties counting 1/2. Raises when a class is absent."""
    y, s, w = _as_1d(y_true, y_score, sample_weight, names=("y_true", "y_score", "sample_weight"))
    w = _weights(w, y.size)
    pos, neg = w * (y > 0.5), w * (y <= 0.5)
    if pos.sum() == 0 or neg.sum() == 0:
        raise ValueError("AUC needs both positive and negative rows")
    _, group = np.unique(s, return_inverse=True)  # tie groups in ascending score order
    pos_g, neg_g = np.bincount(group, pos), np.bincount(group, neg)
    neg_below = np.cumsum(neg_g) - neg_g
    return float((pos_g * (neg_below + 0.5 * neg_g)).sum() / (pos.sum() * neg.sum()))


def session_resamples(groups, n: int, resamples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bootstrap over groups (sessions): ``(group (B,) 0..G-1, counts (R, G))``, where row r of
    ``counts`` says how often each group was drawn when drawing G groups with replacement; a row
    of the data appears ``counts[r, group[i]]`` times in resample r. ``groups`` None: every row is
    its own group. The same ``(groups, resamples, seed)`` give the same resamples, so metrics
    computed from them are paired."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    group = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    if group.shape[0] != n:
        raise ValueError(f"groups has {group.shape[0]} rows, expected {n}")
    n_groups = int(group.max()) + 1 if n else 0
    rng = np.random.default_rng([seed, 0xB007])  # its own stream, not correlated with a caller's default_rng(seed)
    return group, rng.multinomial(n_groups, np.full(n_groups, 1.0 / max(n_groups, 1)), size=resamples)


def auc_bootstrap(y_true, scores, groups=None, sample_weight=None, resamples: int = 200, seed: int = 0,
                  max_cells: int = 4_000_000) -> np.ndarray:
    """AUCs of M score columns on ``resamples`` bootstrap resamples of the rows' ``groups``:
    (M, R). Each resample (:func:`session_resamples`) weights every row by its group's count, so rows of one session move together (impressions of
    a session are not independent) and all M columns see the same resample: differences between
    columns are paired. ``groups`` None: every row is its own group. ``scores``: (B,) or (B, M).
    A resample without both classes gives NaN. ``max_cells`` bounds the (resamples x rows) block
    held at once."""
    y, w = _as_1d(y_true, sample_weight, names=("y_true", "sample_weight"))
    n = y.shape[0]
    w = _weights(w, n)
    s = np.asarray(scores, dtype=np.float64)
    s = s[:, None] if s.ndim == 1 else s
    if s.ndim != 2 or s.shape[0] != n:
        raise ValueError(f"scores must be (B,) or (B, M) with B = {n}, got {s.shape}")
    group, counts = session_resamples(groups, n, resamples, seed)
    positive = y > 0.5
    out = np.empty((s.shape[1], resamples))
    step = max(1, max_cells // n)
    for m in range(s.shape[1]):
        order = np.argsort(s[:, m], kind="stable")
        ranked = s[order, m]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # tie groups, ascending score
        pos_w, neg_w = (w * positive)[order], (w * ~positive)[order]
        for r0 in range(0, resamples, step):
            row_w = counts[r0:r0 + step][:, group[order]]  # (R', B) resampled multiplicity
            pos_g = np.add.reduceat(row_w * pos_w, starts, axis=1)
            neg_g = np.add.reduceat(row_w * neg_w, starts, axis=1)
            neg_below = np.cumsum(neg_g, axis=1) - neg_g
            total = pos_g.sum(axis=1) * neg_g.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[m, r0:r0 + step] = np.where(total > 0, (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1) / total,
                                                np.nan)
    return out


def log_loss(y_true, y_prob, sample_weight=None, eps: float = 1e-7) -> float:
    """Weighted mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
    y, p, w = _as_1d(y_true, y_prob, sample_weight, names=("y_true", "y_prob", "sample_weight"))
    w = _weights(w, y.size)
    p = np.clip(p, eps, 1 - eps)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log1p(-p))).sum() / w.sum())


def expected_calibration_error(y_true, y_prob, sample_weight=None, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width probability bins: sum over bins of the bin's share of the
    weight times |mean label - mean probability| in it."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p, w = _as_1d(y_true, y_prob, sample_weight, names=("y_true", "y_prob", "sample_weight"))
    w = _weights(w, y.size)
    b = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.abs(np.bincount(b, w * y, n_bins) - np.bincount(b, w * p, n_bins))  # = bin weight * |ybar - pbar|
    return float(gap.sum() / w.sum())


def _dcg(gains: np.ndarray, scores: np.ndarray, discount: np.ndarray) -> float:
    """DCG with tied scores sharing the mean gain of their group (as scikit-learn does)."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gains[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group_gain = np.add.reduceat(g, starts) / np.diff(np.r_[starts, s.size])
    group_disc = np.add.reduceat(discount, starts)
    return float((group_gain * group_disc).sum())


def ndcg_at_k(y_true, y_score, groups, k: int = 10) -> float:
    """Mean NDCG@k over groups (sessions), linear gains, discount 1/log2(rank + 1), ties averaged.
    Groups without any positive gain are skipped; raises when none is left."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y, s = _as_1d(y_true, y_score, names=("y_true", "y_score"))
    groups = np.asarray(groups).ravel()
    if groups.shape[0] != y.shape[0]:
        raise ValueError(f"groups has {groups.shape[0]} rows, expected {y.shape[0]}")
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    out = []
    for rows in np.split(order, starts[1:]):
        g = y[rows]
        if g.max() <= 0:
            continue
        disc = np.zeros(rows.size)
        top = min(k, rows.size)
        disc[:top] = 1.0 / np.log2(np.arange(2, top + 2))
        ideal = float((np.sort(g)[::-1] * disc).sum())
        out.append(_dcg(g, s[rows], disc) / ideal)
    if not out:
        raise ValueError("NDCG needs at least one group with a positive gain")
    return float(np.mean(out))


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (ties in either ranking corrected): :func:`scipy.stats.kendalltau`, O(n log n)
    (imported here: scipy comes with the pipeline extra, not the serving base install). NaN when
    either ranking is constant."""
    from scipy.stats import kendalltau

    x, y = _as_1d(x, y, names=("x", "y"))
    return float(kendalltau(x, y, variant="b").statistic)
