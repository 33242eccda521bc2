"""The plots the ranker job logs: :func:`reliability_figure` and :func:`position_ctr_figure`, matplotlib
figures (no pyplot)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ranker_eval_metrics import _check


def reliability_figure(labels, probs, tasks: Sequence[str], sample_weight=None, bins: int = 10):
    """Reliability diagram per task: mean label against mean probability in ``bins``
    equal-mass bins of the probability (rare events fill equal-width bins badly)."""
    from matplotlib.figure import Figure

    labels, probs = _check(labels, probs, tasks)
    w = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    fig = Figure(figsize=(4.5 * len(tasks), 4.2))
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), t + 1)
        order = np.argsort(probs[:, t], kind="stable")
        groups = np.array_split(order, min(bins, len(order)))
        mean_p = [np.average(probs[g, t], weights=w[g]) for g in groups if w[g].sum() > 0]
        mean_y = [np.average(labels[g, t], weights=w[g]) for g in groups if w[g].sum() > 0]
        top = max(max(mean_p), max(mean_y)) * 1.05 or 1.0
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
        ax.plot(mean_p, mean_y, marker="o", label="model")
        ax.set(title=f"{task}: reliability ({len(groups)} equal-mass bins)", xlabel="mean predicted probability",
               ylabel="observed rate")
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def position_ctr_figure(position, labels, with_position, position_free, tasks: Sequence[str],
                        oracle_free=None, sample_weight=None):
    """Per task, by position: the observed rate (biased), the model's mean probability with the
    position tower (fits the bias), its mean position-free probability (debiased) and, when
    given, the oracle's mean position-free probability."""
    from matplotlib.figure import Figure

    labels, with_position = _check(labels, with_position, tasks)
    _, position_free = _check(labels, position_free, tasks)
    position = np.asarray(position)
    w = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    levels = np.unique(position)
    fig = Figure(figsize=(5.5 * len(tasks), 4.2))
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), t + 1)
        series = {"observed rate": labels[:, t], "model, with position": with_position[:, t],
                  "model, position-free (debiased)": position_free[:, t]}
        if oracle_free is not None:
            series["oracle, position-free"] = np.asarray(oracle_free)[:, t]
        for name, values in series.items():
            means = [np.average(values[position == p], weights=w[position == p]) for p in levels]
            ax.plot(levels, means, marker=".", label=name)
        ax.set(title=f"{task} rate by position", xlabel="position", ylabel="mean")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
