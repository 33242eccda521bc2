"""The synthetic world's oracle on the test split, and the position-debiasing comparison against it.

* :func:`oracle_probabilities`: the generator's true probabilities of the observed labels
  (:mod:`pinrec.jobs.ingest.synthetic`: ``closeup ~ exam_prob * p_closeup``, ``save ~ exam_prob * p_closeup *
  p_save``) and their position-free versions (``exam_prob`` = 1). Their AUC is the oracle AUC.
* :func:`debias_comparison`: Kendall's tau-b of a model's position-free ranking and of a model
  trained without the position feature against the oracle's position-free ranking, with a
  session-bootstrap interval of their difference; given several training seeds of both, it
  resamples the seeds too (training randomness moves tau more than the test sample does).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pinrec.models.metrics import kendall_tau, session_resamples

from .ranker_eval_metrics import _check

TRUTH_COLUMNS = ("event_id", "p_closeup", "p_save", "exam_prob")


@dataclass(frozen=True)
class DebiasComparison:
    """Kendall's tau-b against the oracle's position-free ranking of one task, averaged over the
    training seeds of both models; ``low``/``high``: the interval of ``tau_debiased -
    tau_no_position`` over paired session resamples (and, with several seeds, resampled seeds;
    NaN when not computed); ``seed_differences``: the difference of each seed's pair."""

    task: str
    tau_debiased: float
    tau_no_position: float
    rows: int
    low: float = math.nan
    high: float = math.nan
    seed_differences: tuple[float, ...] = ()

    @property
    def debiased_closer(self) -> bool:
        return self.tau_debiased > self.tau_no_position

    @property
    def verdict(self) -> str:
        """``"closer"`` / ``"farther"`` when the interval excludes 0, ``"tie"`` when it holds it,
        ``"closer?"`` / ``"farther?"`` (the point estimate only) without an interval,
        ``"undefined"`` when a tau is NaN (a constant score ranks nothing)."""
        if math.isnan(self.tau_debiased) or math.isnan(self.tau_no_position):
            return "undefined"
        if math.isnan(self.low):
            return "closer?" if self.debiased_closer else "farther?"
        return "closer" if self.low > 0 else "farther" if self.high < 0 else "tie"

    def render(self) -> str:
        interval = "" if math.isnan(self.low) else f" [{self.low:+.4f}, {self.high:+.4f}]"
        seeds = "" if len(self.seed_differences) < 2 else (
            f" over {len(self.seed_differences)} training seeds (each: "
            f"{', '.join(f'{d:+.4f}' for d in self.seed_differences)})")
        return (f"kendall tau vs oracle position-free ({self.task}): debiased {self.tau_debiased:.4f}, no position "
                f"{self.tau_no_position:.4f}, difference {self.tau_debiased - self.tau_no_position:+.4f}{interval}"
                f"{seeds} -> debiased {self.verdict}")


def oracle_probabilities(truth: pd.DataFrame, event_ids, tasks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) true probabilities of the observed labels and (B, T) position-free ones, in the
    order of ``event_ids``. ``truth`` has :data:`TRUTH_COLUMNS`; raises on an unknown task or
    an event id the truth does not hold."""
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"the truth frame lacks columns {missing}")
    rows = truth.drop_duplicates("event_id").set_index("event_id").reindex(pd.Index(np.asarray(event_ids)))
    if rows["p_closeup"].isna().any():
        raise ValueError(f"{int(rows['p_closeup'].isna().sum())} event id(s) are not in the truth "
                         f"(e.g. {rows.index[rows['p_closeup'].isna()][:3].tolist()})")
    pc, ps, exam = (rows[c].to_numpy(np.float64) for c in ("p_closeup", "p_save", "exam_prob"))
    free = {"closeup": pc, "save": pc * ps}
    unknown = [t for t in tasks if t not in free]
    if unknown:
        raise ValueError(f"no oracle for task(s) {unknown}; known: {sorted(free)}")
    return (np.stack([exam * free[t] for t in tasks], 1), np.stack([free[t] for t in tasks], 1))


def debias_comparison(oracle_free, debiased, no_position, tasks: Sequence[str], sessions=None,
                      resamples: int = 0, level: float = 0.95, seed: int = 0,
                      max_rows: int = 200_000) -> list[DebiasComparison]:
    """Per task: tau(oracle position-free, position-debiased model's position-free score) and
    tau(oracle position-free, model trained without position). ``oracle_free`` (B, T);
    ``debiased`` and ``no_position`` (B, T), or (S, B, T) for S training seeds of each model
    (paired by index: seed s of both), whose taus are averaged. With ``resamples`` and at most
    ``max_rows`` rows (each tau costs O(B log B)), the ``level`` percentile interval of the
    difference over ``resamples`` resamples of ``sessions`` (None: of rows), both taus on the
    same resample; with S > 1 each resample also draws S seed pairs with replacement, so the
    interval covers the training's randomness as well as the test sample's (coarsely: a
    bootstrap over a handful of seeds understates their spread; ``seed_differences`` shows it)."""
    oracle_free = np.asarray(oracle_free, np.float64)
    debiased, no_position = np.asarray(debiased, np.float64), np.asarray(no_position, np.float64)
    if debiased.ndim == 2:
        debiased, no_position = debiased[None], no_position[None]
    if debiased.ndim != 3 or debiased.shape != no_position.shape:
        raise ValueError(f"debiased {debiased.shape} and no_position {no_position.shape} must both be (B, T) or "
                         f"(S, B, T)")
    for s in range(debiased.shape[0]):
        _check(oracle_free, debiased[s], tasks)
    n_seeds, n = debiased.shape[0], len(oracle_free)

    def differences(rows) -> np.ndarray:
        """(S, T) tau differences of each seed pair on ``rows``."""
        out = np.empty((n_seeds, len(tasks)))
        for t in range(len(tasks)):
            o = oracle_free[rows, t]
            for s in range(n_seeds):
                out[s, t] = kendall_tau(o, debiased[s, rows, t]) - kendall_tau(o, no_position[s, rows, t])
        return out

    draws = np.full((len(tasks), max(resamples, 0)), np.nan)
    if resamples > 0 and n <= max_rows:
        group, counts = session_resamples(sessions, n, resamples, seed)  # the AUC intervals' resamples
        seed_draws = np.random.default_rng([seed, 0x5EED]).integers(0, n_seeds, (resamples, n_seeds))
        for r in range(resamples):
            per_seed = differences(np.repeat(np.arange(n), counts[r, group]))
            draws[:, r] = per_seed[seed_draws[r]].mean(0) if n_seeds > 1 else per_seed[0]
    tail = 100 * (1 - level) / 2
    out = []
    for t, task in enumerate(tasks):
        ok = draws[t][~np.isnan(draws[t])]
        low, high = np.percentile(ok, [tail, 100 - tail]) if ok.size else (math.nan, math.nan)
        tau_d = [kendall_tau(oracle_free[:, t], debiased[s, :, t]) for s in range(n_seeds)]
        tau_n = [kendall_tau(oracle_free[:, t], no_position[s, :, t]) for s in range(n_seeds)]
        out.append(DebiasComparison(task, float(np.mean(tau_d)), float(np.mean(tau_n)), n, float(low), float(high),
                                    tuple(float(a - b) for a, b in zip(tau_d, tau_n, strict=True))))
    return out
