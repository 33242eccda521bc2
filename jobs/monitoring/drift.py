"""Drift maths: the newest day against the training window, for MLflow and the blessing gate.

Four kinds of signal, each a pure function on numpy / pandas (the Spark job that reads the
``training_set`` Delta table and logs to MLflow is :mod:`pinrec.jobs.monitoring.monitoring`; which
columns are compared, from the schemas: :mod:`pinrec.jobs.monitoring.columns`):

* :func:`psi` — the Population Stability Index of each task's predicted scores,
  ``sum_b (a_b - e_b) * ln(a_b / e_b)`` over ``bins`` quantile bins of the reference scores
  (``e_b``: reference share, ``a_b``: current share, both floored at ``floor`` so an empty bin
  stays finite). Below 0.1 is usually read as stable, above 0.25 as a significant shift.
* :func:`feature_shift` — per numeric feature: mean, std and null rate (null or NaN) in both
  windows. Two scores: its drift, the larger of ``|mean_c - mean_r| / std_r`` and
  ``|std_c - std_r| / std_r`` (``std_r`` = 1 for a constant reference; none when a window has no
  non-null value: there is no mean to compare), and its null-rate shift ``|null_c - null_r|``
  (a broken join that leaves a feature fully null shows here, as a shift of up to 1, and is gated
  on its own limit). Mean and std are over the non-null values, unweighted (both windows are
  sampled alike). An infinite value is refused, naming the column: features are finite
  aggregates, so it is corrupt data upstream, and its drift would be infinite or NaN.
* :func:`~pinrec.jobs.monitoring.category_drift.category_shift` — per categorical feature: the PSI
  over the frequencies of the reference's top ``max_categories`` categories, one "other" and one
  null bucket (same floor), and the share of the newest day's non-null rows whose category the
  reference never had (a vocabulary change, or a broken mapping turning everything into "unknown"),
  and the PSI's sampling noise: what days drawn from the reference window with as many users as the
  newest day reach (``noise_psi``).
* :func:`label_rates` — ``sum(w * y) / sum(w)`` per task with ``w = sample_weight`` (undoing the
  negative sampling); for the newest day only once its maturity window has closed (the training
  set's cut-off, from its Delta commit, is at least the day's end + ``maturity_s``), since labels
  that can still arrive would read as a drop.

**Warm-up** (:mod:`pinrec.jobs.monitoring.warm_up`): a view's feature is compared only on reference
days at least ``max(W, 1)`` days after the first ingested day (``W``: its ``window_days``), numeric
and categorical alike; until the newest day and some reference day are past it, it is listed in
``DriftReport.warming_up``, not compared. A raw table's column (``surface``, the pin's ``category``)
has no warm-up. Scores depend on every feature, so their PSI uses the reference days past the longest
window (at least the first day; ``score:<task>`` is listed as warming up until there are some).
All-time counts and ages (``Feature.cumulative``, e.g. ``pin__board_count``) are not compared at all: they
grow with history by construction.

Scores come from a callable or arrays, so monitoring runs before (and independently of) the ranker.
:meth:`DriftReport.drift_metrics` is the flat dict ``Metrics.drift`` of the bundle manifest carries
(``score_psi.<task>``, ``feature_drift.<column>``, ``null_rate_shift.<column>``,
``category_psi.<column>``, ``category_psi_noise.<column>``, ``unseen_category_share.<column>``,
``label_rate_shift.<task>``) and that
:func:`pinrec.export.build.blessing.evaluate` checks against ``max_score_psi`` /
``max_feature_drift`` / ``max_null_rate_shift`` / ``max_category_psi`` / ``max_unseen_category_share``.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from .category_drift import CategoryShift, SamplingNoise, category_shift, sampling_psi
from .config import MonitoringConfig
from .warm_up import as_date, complete, warmed_up


def psi_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """:func:`psi`'s inner bin edges: the reference's quantiles, equal ones merged."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def score_noise(reference: np.ndarray, frame, draws: int, bins: int, floor: float, noise: SamplingNoise) -> float:
    """The sampling noise of a score PSI (:func:`~pinrec.jobs.monitoring.category_drift.sampling_psi`):
    ``reference`` (N,) scores in :func:`psi`'s bins, days of ``draws`` users simulated from ``frame``'s
    (N rows) ``user_id`` and ``dt`` clusters when it has both, else of ``draws`` rows."""
    edges = psi_edges(reference, bins)
    grouped = {"user_id", "dt"} <= set(frame.columns)
    users, days = (frame["user_id"].to_numpy(), frame["dt"].astype(str).to_numpy()) if grouped else (None, None)
    return sampling_psi(np.searchsorted(edges, reference, side="left"), users, days, draws, edges.size + 1,
                        floor, noise)


def psi(reference, current, bins: int = 10, floor: float = 1e-4) -> float:
    """Population Stability Index of ``current`` against ``reference`` (1-D arrays of finite
    numbers, e.g. (N,) scores). Bins ``(-inf, q_1], (q_1, q_2], ..., (q_k, inf)`` at the
    reference's quantiles, equal quantiles merged: a constant reference still gets two bins."""
    ref, cur = np.asarray(reference, np.float64).ravel(), np.asarray(current, np.float64).ravel()
    for name, x in (("reference", ref), ("current", cur)):
        if x.size == 0:
            raise ValueError(f"psi: the {name} sample is empty")
        if not np.isfinite(x).all():
            raise ValueError(f"psi: the {name} sample has NaN or infinite values")
    edges = psi_edges(ref, bins)
    e = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=edges.size + 1) / ref.size
    a = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=edges.size + 1) / cur.size
    e, a = np.maximum(e, floor), np.maximum(a, floor)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureShift:
    """One feature in both windows (``None``: no non-null value there)."""

    mean_reference: float | None
    mean_current: float | None
    std_reference: float | None
    std_current: float | None
    null_rate_reference: float
    null_rate_current: float

    @property
    def drift(self) -> float | None:
        """The larger of the standardised mean shift and the relative std shift; None when either
        window has no non-null value (nothing to compare: see :attr:`null_rate_shift`)."""
        if self.mean_reference is None or self.mean_current is None:
            return None
        scale = self.std_reference if self.std_reference else 1.0
        return float(max(abs(self.mean_current - self.mean_reference) / scale,
                         abs(self.std_current - self.std_reference) / scale))

    @property
    def null_rate_shift(self) -> float:
        """``|null_rate_current - null_rate_reference|`` in [0, 1]."""
        return abs(self.null_rate_current - self.null_rate_reference)


def _stats(values, column: str, window: str) -> tuple[float | None, float | None, float]:
    """(mean, std, null rate) of one window's ``column``; an infinite value is refused: features are
    finite aggregates (counts, smoothed rates, ages), so one is corruption upstream, and its drift
    would be infinite or NaN, which no gate can judge."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"feature_shift: the {window} window has no rows")
    inf = np.isinf(x)
    if inf.any():
        raise ValueError(f"feature_shift: column {column!r} has {int(inf.sum())} infinite value(s) in the {window} "
                         f"window (e.g. {x[inf][0]}): features must be finite or null")
    ok = ~np.isnan(x)
    null_rate = float(1.0 - ok.mean())
    if not ok.any():
        return None, None, null_rate
    return float(x[ok].mean()), float(x[ok].std()), null_rate


def feature_shift(reference, current, columns) -> dict[str, FeatureShift]:
    """Mean/std/null-rate shift of ``columns`` between two pandas frames (nulls read as NaN; an
    infinite value is a ValueError naming the column)."""
    out = {}
    for column in columns:
        missing = [n for n, f in (("reference", reference), ("current", current)) if column not in f.columns]
        if missing:
            raise ValueError(f"feature_shift: column {column!r} is not in the {' and '.join(missing)} frame")
        mr, sr, nr = _stats(reference[column].astype("float64"), column, "reference")
        mc, sc, nc = _stats(current[column].astype("float64"), column, "current")
        out[column] = FeatureShift(mr, mc, sr, sc, nr, nc)
    return out


def label_rates(frame, tasks, weight: str | None = "sample_weight") -> dict[str, float]:
    """Weighted positive rate of every task column of ``frame`` (pandas)."""
    w = frame[weight].to_numpy(np.float64) if weight else np.ones(len(frame))
    if not len(frame) or w.sum() <= 0:
        raise ValueError("label_rates: no rows (or zero total weight)")
    return {t: float((frame[t].to_numpy(np.float64) * w).sum() / w.sum()) for t in tasks}


@dataclass(frozen=True)
class DriftReport:
    day: str
    reference: str
    reference_rows: int
    current_rows: int
    score_psi: dict[str, float] = field(default_factory=dict)
    score_psi_noise: dict[str, float] = field(default_factory=dict)
    features: dict[str, FeatureShift] = field(default_factory=dict)
    categories: dict[str, CategoryShift] = field(default_factory=dict)
    label_rate_reference: dict[str, float] = field(default_factory=dict)
    label_rate_current: dict[str, float] | None = None
    warming_up: tuple[str, ...] = ()
    mlflow_run_id: str | None = None

    def drift_metrics(self) -> dict[str, float]:
        """What ``pinrec.schemas.manifest.Metrics.drift`` carries (finite, >= 0); a non-finite value
        (inputs are checked, so an overflow) is a ValueError naming it, never left out."""
        out = {f"score_psi.{t}": v for t, v in self.score_psi.items()}
        out |= {f"score_psi_noise.{t}": v for t, v in self.score_psi_noise.items()}
        out |= {f"feature_drift.{c}": s.drift for c, s in self.features.items() if s.drift is not None}
        out |= {f"null_rate_shift.{c}": s.null_rate_shift for c, s in self.features.items()}
        out |= {f"category_psi.{c}": s.psi for c, s in self.categories.items()}
        out |= {f"category_psi_noise.{c}": s.noise_psi for c, s in self.categories.items() if s.noise_psi is not None}
        out |= {f"unseen_category_share.{c}": s.unseen_share for c, s in self.categories.items()
                if s.unseen_share is not None}
        if self.label_rate_current is not None:
            out |= {f"label_rate_shift.{t}": abs(self.label_rate_current[t] - self.label_rate_reference[t])
                    for t in self.label_rate_reference}
        bad = {k: v for k, v in out.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"drift metrics must be finite, got {bad}")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["features"] = {c: {**asdict(s), "drift": s.drift, "null_rate_shift": s.null_rate_shift}
                         for c, s in self.features.items()}
        return d

    def render(self) -> str:
        top = sorted(((c, s.drift) for c, s in self.features.items() if s.drift is not None), key=lambda kv: -kv[1])
        nulls = sorted(((c, s.null_rate_shift) for c, s in self.features.items()), key=lambda kv: -kv[1])
        cats = sorted(((c, s.psi, s.noise_psi) for c, s in self.categories.items()), key=lambda kv: -kv[1])
        psi_text = ", ".join(f"{t}={v:.4f}" + (f" (noise {self.score_psi_noise[t]:.3f})" if t in self.score_psi_noise
                                                else "") for t, v in sorted(self.score_psi.items())) or "no scores"
        labels = "maturity window open" if self.label_rate_current is None else ", ".join(
            f"{t} {self.label_rate_reference[t]:.4f}->{v:.4f}" for t, v in sorted(self.label_rate_current.items()))
        warm = f"; in warm-up (not compared): {len(self.warming_up)} signal(s)" if self.warming_up else ""
        return (f"drift {self.day} vs {self.reference} ({self.reference_rows} / {self.current_rows} rows): "
                f"score PSI {psi_text}; top feature drift " + ", ".join(f"{c}={v:.3f}" for c, v in top[:3])
                + "; top null-rate shift " + ", ".join(f"{c}={v:.3f}" for c, v in nulls[:3])
                + "; top category PSI " + ", ".join(f"{c}={v:.3f}" + (f" (noise {n:.3f})" if n is not None else "")
                                                    for c, v, n in cats[:3])
                + f"; label rate {labels}{warm}")


def drift_report(reference, current, columns, cfg: MonitoringConfig, *, day: str, reference_name: str,
                 scores_reference: Mapping[str, object] | None = None,
                 scores_current: Mapping[str, object] | None = None, labels_mature: bool = True,
                 history_start: dt.date | None = None, windows: Mapping[str, int | None] | None = None,
                 categorical=(), seed: int = 7) -> DriftReport:
    """Pure: two pandas windows (with the task and ``sample_weight`` columns, and ``dt`` when
    ``history_start`` is given) and optional per-task score arrays in, the report out. ``columns``:
    the numeric features, ``categorical``: the categorical ones. ``history_start`` (the first
    ingested day) and ``windows`` (column -> ``window_days``, None: no warm-up) turn on the warm-up
    rule; without them every feature is compared on every reference row. The categorical PSIs' sampling
    noise (``cfg.noise_resamples`` draws, ``seed``) draws clusters of ``user_id`` and ``dt`` when both
    windows have a ``user_id`` column, else rows."""
    scores_reference, scores_current = scores_reference or {}, scores_current or {}
    if set(scores_reference) != set(scores_current):
        raise ValueError(f"score tasks differ: reference {sorted(scores_reference)}, current {sorted(scores_current)}")
    windows, newest = windows or {}, dt.date.fromisoformat(day)
    rule = {"day": newest, "history_start": history_start, "windows": windows}
    features, warming = warmed_up(reference, current, columns, feature_shift, **rule)
    noise = SamplingNoise(cfg.noise_resamples, cfg.noise_quantile, seed) if cfg.noise_resamples else None
    compare = functools.partial(category_shift, max_categories=cfg.max_categories, floor=cfg.psi_floor,
                                noise=noise, group="user_id")
    categories, warming_categories = warmed_up(reference, current, categorical, compare, **rule)
    warming += warming_categories
    keep = np.ones(len(reference), dtype=bool)
    if history_start is not None and scores_reference:
        # scores depend on every feature: compare them only where the longest window is complete
        longest = max((w for c in (*columns, *categorical) if (w := windows.get(c, 0)) is not None), default=0)
        start = complete(history_start, longest)
        keep = (reference["dt"].map(as_date) >= start).to_numpy()
        if newest < start or not keep.any():
            warming += tuple(f"score:{t}" for t in sorted(scores_reference))
            scores_reference = scores_current = {}
    # a score PSI's sampling noise, as the categories': on a day of a few users the PSI is mostly who came
    draws = current["user_id"].nunique() if "user_id" in current.columns else len(current)
    score_noise_psi = {} if noise is None or not draws else {
        t: score_noise(np.asarray(scores_reference[t], np.float64)[keep], reference[keep], draws, cfg.psi_bins,
                       cfg.psi_floor, noise) for t in sorted(scores_reference)}
    return DriftReport(
        day=day, reference=reference_name, reference_rows=len(reference), current_rows=len(current),
        score_psi={t: psi(np.asarray(scores_reference[t])[keep], scores_current[t], cfg.psi_bins, cfg.psi_floor)
                   for t in sorted(scores_reference)}, score_psi_noise=score_noise_psi,
        features=features, categories=categories,
        label_rate_reference=label_rates(reference, cfg.tasks),
        label_rate_current=label_rates(current, cfg.tasks) if labels_mature else None,
        warming_up=warming)
