"""Metrics of a ranker on the temporal test split: per task and model, with bootstrap intervals.

Pure functions on numpy arrays (labels (B, T) in task order, probabilities (B, T), sessions (B,),
weights (B,)); :mod:`pinrec.jobs.ranking.ranker` does the reading and logging.

* :func:`task_metrics`: per task AUC, log-loss, expected calibration error (equal-width bins) and
  mean NDCG@k over sessions (:mod:`pinrec.models.metrics`), weighted by ``sample_weight``.
* :func:`auc_intervals`: percentile intervals of every model's AUC and of paired AUC gaps
  (e.g. oracle - ranker) from one session bootstrap (:func:`pinrec.models.metrics.auc_bootstrap`): the
  test split's positives are few (a few hundred saves on the demo world), so a difference in the
  third decimal is often noise, and the interval says which.
* :func:`render_table`: the results table.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pinrec.models.metrics import (
    auc,
    auc_bootstrap,
    expected_calibration_error,
    log_loss,
    ndcg_at_k,
)


@dataclass(frozen=True)
class MetricRow:
    """One line of the results table: ``model`` on ``task``; NaN where a metric is undefined.
    ``auc_low``/``auc_high``: the AUC's bootstrap interval (:func:`auc_intervals`), NaN when not
    computed."""

    model: str
    task: str
    auc: float
    logloss: float
    ece: float
    ndcg: float
    auc_low: float = math.nan
    auc_high: float = math.nan

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        keys = ("auc", "logloss", "ece", "ndcg") + (() if math.isnan(self.auc_low) else ("auc_low", "auc_high"))
        return {f"{prefix}{k}_{self.task}": getattr(self, k) for k in keys}


@dataclass(frozen=True)
class AucGap:
    """``reference``'s AUC minus ``model``'s on ``task`` (positive: the model ranks worse), with
    the ``level`` percentile interval of the same difference over paired session resamples."""

    model: str
    reference: str
    task: str
    gap: float
    low: float
    high: float
    level: float
    resamples: int

    def render(self) -> str:
        return (f"AUC gap {self.reference} - {self.model} ({self.task}): {self.gap:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}] ({self.level:.0%}, {self.resamples} session resamples)")



def _check(labels: np.ndarray, probs: np.ndarray, tasks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    labels, probs = np.asarray(labels, np.float64), np.asarray(probs, np.float64)
    if labels.ndim != 2 or labels.shape != probs.shape or labels.shape[1] != len(tasks):
        raise ValueError(f"labels {labels.shape} and probabilities {probs.shape} must both be (B, {len(tasks)})")
    return labels, probs


def task_metrics(model: str, labels, probs, tasks: Sequence[str], sessions=None, sample_weight=None,
                 ece_bins: int = 10, k: int = 10) -> list[MetricRow]:
    """One :class:`MetricRow` per task. AUC is NaN when a class is absent, NDCG when no session
    has a positive (or ``sessions`` is None)."""
    labels, probs = _check(labels, probs, tasks)
    rows = []
    for t, task in enumerate(tasks):
        y, p = labels[:, t], probs[:, t]
        both = 0 < (y > 0.5).sum() < len(y)
        ndcg = (ndcg_at_k(y, p, sessions, k) if sessions is not None and (y > 0).any() else math.nan)
        rows.append(MetricRow(model, task, auc(y, p, sample_weight) if both else math.nan,
                              log_loss(y, p, sample_weight), expected_calibration_error(y, p, sample_weight, ece_bins),
                              ndcg))
    return rows


def auc_intervals(rows: Sequence[MetricRow], labels, scored: Mapping[str, np.ndarray], tasks: Sequence[str],
                  sessions=None, sample_weight=None, pairs: Sequence[tuple[str, str]] = (), resamples: int = 200,
                  level: float = 0.95, seed: int = 0) -> tuple[list[MetricRow], list[AucGap]]:
    """``rows`` with ``auc_low``/``auc_high`` filled for every model in ``scored`` ({model: (B, T)
    probabilities}), and one :class:`AucGap` per task and ``(model, reference)`` pair, all from the
    same ``resamples`` session resamples (:func:`pinrec.models.metrics.auc_bootstrap`; ``sessions`` None:
    rows resampled one by one). Percentile intervals at ``level``; resamples lacking a class are
    skipped."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    unknown = sorted({m for pair in pairs for m in pair} - set(scored))
    if unknown:
        raise ValueError(f"pairs name models without scores: {unknown}")
    labels = np.asarray(labels, np.float64)
    names = list(scored)
    tail = 100 * (1 - level) / 2
    bounds: dict[tuple[str, str], tuple[float, float]] = {}
    gaps: list[AucGap] = []
    for t, task in enumerate(tasks):
        if not 0 < (labels[:, t] > 0.5).sum() < len(labels):
            continue
        probs = np.stack([_check(labels, scored[m], tasks)[1][:, t] for m in names], 1)
        draws = auc_bootstrap(labels[:, t], probs, sessions, sample_weight, resamples, seed)  # (M, R)
        for i, m in enumerate(names):
            ok = draws[i][~np.isnan(draws[i])]
            bounds[(m, task)] = tuple(np.percentile(ok, [tail, 100 - tail])) if ok.size else (math.nan, math.nan)
        for model, reference in pairs:
            i, j = names.index(model), names.index(reference)
            diff = draws[j] - draws[i]
            diff = diff[~np.isnan(diff)]
            point = auc(labels[:, t], probs[:, j], sample_weight) - auc(labels[:, t], probs[:, i], sample_weight)
            low, high = np.percentile(diff, [tail, 100 - tail]) if diff.size else (math.nan, math.nan)
            gaps.append(AucGap(model, reference, task, point, float(low), float(high), level, resamples))
    out = [replace(r, auc_low=float(bounds[(r.model, r.task)][0]), auc_high=float(bounds[(r.model, r.task)][1]))
           if (r.model, r.task) in bounds else r for r in rows]
    return out, gaps


def render_table(rows: Sequence[MetricRow]) -> str:
    """The rows as a fixed-width table; an "AUC interval" column when any row has one."""
    ci = any(not math.isnan(r.auc_low) for r in rows)
    lines = [f"{'model':<24}{'task':<9}{'AUC':>8}" + (f"{'AUC interval':>19}" if ci else "")
             + f"{'logloss':>9}{'ECE':>8}{'NDCG@10':>9}"]
    for r in rows:
        interval = "" if not ci else f"{'-':>19}" if math.isnan(r.auc_low) else f"  [{r.auc_low:.4f}, {r.auc_high:.4f}]"
        lines.append(f"{r.model:<24}{r.task:<9}{r.auc:>8.4f}{interval}{r.logloss:>9.4f}{r.ece:>8.4f}{r.ndcg:>9.4f}")
    return "\n".join(lines)
