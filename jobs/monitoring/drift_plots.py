"""Figures of a drift report for MLflow (matplotlib ``Figure`` objects, no pyplot state).

* :func:`score_histogram_figure` — per task, the predicted-score histograms of the reference
  window and the newest day on the reference's quantile bins (the bins the PSI uses), with the PSI
  in the title.
* :func:`feature_drift_figure` — the ``top`` features by drift score as horizontal bars, with the
  blessing gate's threshold drawn when given.
* :func:`category_psi_figure` — the same for the categorical features' PSI over category frequencies,
  with each column's own limit (it depends on the column's sampling noise) marked on its bar.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def score_histogram_figure(reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray],
                           psi: Mapping[str, float], bins: int = 10):
    """``reference`` / ``current``: task -> (N,) scores; one panel per task."""
    from matplotlib.figure import Figure

    tasks = sorted(reference)
    if not tasks or set(tasks) != set(current):
        raise ValueError(f"score tasks differ or are empty: {sorted(reference)} vs {sorted(current)}")
    fig = Figure(figsize=(4.5 * len(tasks), 3.8))
    for t, task in enumerate(tasks):
        ref, cur = np.asarray(reference[task], np.float64), np.asarray(current[task], np.float64)
        edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)))
        inner = edges[1:-1]
        share_ref = np.bincount(np.searchsorted(inner, ref, side="left"), minlength=edges.size - 1) / ref.size
        share_cur = np.bincount(np.searchsorted(inner, cur, side="left"), minlength=edges.size - 1) / cur.size
        ax = fig.add_subplot(1, len(tasks), t + 1)
        x = np.arange(edges.size - 1)
        ax.bar(x - 0.2, share_ref, width=0.4, label="reference")
        ax.bar(x + 0.2, share_cur, width=0.4, label="newest day")
        ax.set(title=f"{task}: PSI {psi.get(task, float('nan')):.4f}", xlabel="reference score decile",
               ylabel="share of rows")
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def feature_drift_figure(drift: Mapping[str, float], top: int = 20, threshold: float | None = None):
    """``drift``: column -> drift score; the ``top`` largest as bars."""
    if not drift:
        raise ValueError("feature_drift_figure: no feature drift scores")
    return _bars(drift, "feature drift: max(|Δmean|/std, |Δstd|/std)", "drift score", top, threshold)


def category_psi_figure(psi: Mapping[str, float], top: int = 20, threshold: float | None = None,
                        limits: Mapping[str, float] | None = None):
    """``psi``: categorical column -> PSI over its category frequencies; the ``top`` largest as bars;
    ``limits``: column -> the gate's limit for it, a red tick on its bar (or one ``threshold`` line)."""
    if not psi:
        raise ValueError("category_psi_figure: no categorical feature compared")
    return _bars(psi, "categorical features: PSI of the category mix", "PSI", top, threshold, limits)


def _bars(values: Mapping[str, float], title: str, xlabel: str, top: int, threshold: float | None,
          limits: Mapping[str, float] | None = None):
    from matplotlib.figure import Figure

    items = sorted(values.items(), key=lambda kv: kv[1])[-top:]
    fig = Figure(figsize=(7.0, 0.3 * len(items) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh([name for name, _ in items], [value for _, value in items])
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", linewidth=1, label=f"gate {threshold:g}")
        ax.legend(loc="lower right")
    ticks = [(i, limits[name]) for i, (name, _) in enumerate(items) if name in (limits or {})]
    if ticks:
        ax.plot([v for _, v in ticks], [i for i, _ in ticks], linestyle="none", marker="|", markersize=16,
                markeredgewidth=2, color="red", label="gate limit")
        ax.legend(loc="lower right")
    ax.set(title=title, xlabel=xlabel)
    fig.tight_layout()
    return fig
