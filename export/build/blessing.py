"""The blessing gate (TFX Evaluator style): may a candidate bundle replace what a channel serves?

A candidate is compared with the baseline, the version the channel points to now:

* recall@k may drop by at most ``max_recall_drop`` (absolute), and only the same k compares;
* p99 latency may grow by at most ``max_latency_increase`` (relative, 0.2 = +20 %) or by
  ``latency_slack_ms`` (absolute), whichever allows more (sub-millisecond latencies are noisy);
* for every ranker task of the baseline, AUC may drop by at most ``max_auc_drop`` (absolute) and
  the expected calibration error grow by at most ``max_calibration_increase`` (absolute); a task
  the baseline has and the candidate lacks fails.

The absolute floors (``min_recall``, ``min_auc``, ``max_calibration_error``, ``max_latency_p99_ms``)
apply to every candidate; with no baseline (the first version) they are the whole gate. The
verdict lists every failed check, so a rejected candidate's manifest says why.

Drift (``candidate.drift``, from :mod:`pinrec.jobs.monitoring.monitoring`: the newest day against the training
window) is judged on the candidate alone: the Population Stability Index of every task's
scores (``score_psi.<task>``) may be at most ``max_score_psi`` (0.25 is the usual "significant
shift" line) or, where larger, ``score_psi_noise_factor`` (3) times its sampling noise
(``score_psi_noise.<task>``, measured as the categories' below: a newest day of 14 ratings of a
MovieLens sample read 3.33 from sampling alone; null: the fixed limit only), every feature's drift score (``feature_drift.<column>``: the larger of its
standardised mean shift and relative std shift) at most ``max_feature_drift``, and every feature's
null-rate shift (``null_rate_shift.<column>``: ``|null rate now - null rate in the window|``) at
most ``max_null_rate_shift``. Its default, 0.5, lies above the shifts of an honest young history
(at most 0.17 on the 4-day demo: the user counts' null rate falls while the views' 2-day TTL fills
with users) and below a feature going fully null, or fully populated, from a null rate under 0.5
(a broken join: the demo's features are 1-31 % null once warmed up, ``days_since_last_save`` the
most, so going fully null is a shift of 0.69-0.99).
Categorical features (``category_psi.<column>``, ``unseen_category_share.<column>``: the PSI of the
category mix and the share of the day's rows in a category the window never had,
:mod:`pinrec.jobs.monitoring.category_drift`) are judged by :func:`category_psi_limit` and
``max_unseen_category_share``. A fixed PSI limit does not know the day's sample size: 0.25, the usual
"significant shift" line, fits a day of many users (on the demo, 300 users and 15-20k rows a day, the
honest category PSIs were at most 0.02 for the raw tables' columns and 0.095 for ``pin__category``),
while where a day's rows come from a few dozen users the PSI is mostly sampling (MovieLens-100K's
newest day, 536 rows of 11 users: ``user__top_category`` 0.97; the 40-60-user test worlds: up to 1.1
between two days). So a column's limit is ``max_category_psi`` (0.25) raised, where the day is small,
to ``category_psi_noise_factor`` (3) times its sampling noise (``category_psi_noise.<column>``: the
99th percentile of the PSI that days simulated from the training window with the day's number of
users reach), and a mapping that turns every value into "unknown" (PSI 9.2 or more: 17 on four equal
categories, 16.3 on MovieLens-100K) fails wherever the sample can show it. Either may be null: no
noise factor is a fixed limit, no ``max_category_psi`` with a factor is the noise limit alone, both
null turns the check off. ``max_unseen_category_share`` is off by default (null): a new vocabulary can
be honest (a new user's country: up to 0.08 on the test worlds) and a broken mapping to a value the
window never had also moves the PSI; 0.2 (a fifth of the day's rows in categories the model never
saw) suits a closed vocabulary. Measured 2026-12-07 (``docs/monitoring.md``): honest days at most 1.85 x
their noise.
A candidate without drift metrics skips these checks.

The serving funnel (``candidate.funnel``, :mod:`pinrec.jobs.funnel`: the test day replayed through
``recommend()``) is compared with the baseline's: the merged candidates' recalls and the served
list's HR, NDCG and recalls may drop by at most ``max_funnel_drop`` (absolute), its mean pairwise
cosine grow by at most ``max_cosine_increase`` and its category entropy drop by at most
``max_entropy_drop`` bits. A number missing on either side is not compared, and the verdict's
``notes`` say which (so do they when only one side has funnel numbers at all).

Embedding stability (``candidate.stability``) is judged on the candidate alone: the share of each pin's
10 nearest neighbours both versions agree on must be at least ``min_embedding_overlap`` (0: not
checked), against the version before it in ``pin_embeddings`` (``overlap_at_10``,
:mod:`pinrec.jobs.pinsage.pinsage_versions`) and against the champion bundle's embeddings
(``champion_overlap_at_10``, :mod:`pinrec.jobs.publish.champion_stability`: a rerun of a rejected
version is measured against itself by the first, never by the second), so a version that forgot everything (e.g. vectors that no
longer belong to their pins) is published only when forced, and the manifest says why. The
default 0.05 lies below every honest cold restart and untrained model measured and above vectors given to
the wrong pins (``docs/pinsage.md``); a floor that also blocks cold restarts must be set per deployment.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from pinrec.schemas.config_base import section
from pinrec.schemas.manifest import Blessing, Metrics

Tolerance = Annotated[float, Field(ge=0.0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


@section("blessing")
class BlessingConfig:
    """Tolerances of the gate (see the module docstring). All must be >= 0; ``min_recall``,
    ``min_auc``, ``max_null_rate_shift``, ``max_unseen_category_share`` and ``min_embedding_overlap``
    lie in [0, 1]; ``max_category_psi``, ``category_psi_noise_factor`` and ``max_unseen_category_share``
    may be null (module docstring)."""

    max_recall_drop: Tolerance = 0.01
    max_latency_increase: Tolerance = 0.2
    latency_slack_ms: Tolerance = 0.5
    max_auc_drop: Tolerance = 0.005
    max_calibration_increase: Tolerance = 0.01
    min_recall: Share = 0.0
    min_auc: Share = 0.5
    max_calibration_error: Tolerance = 0.2
    max_latency_p99_ms: Tolerance = 100.0
    max_score_psi: Tolerance = 0.25
    score_psi_noise_factor: Tolerance | None = 3.0  # as the categories': the module docstring
    max_feature_drift: Tolerance = 1.0
    max_null_rate_shift: Share = 0.5  # measured: the module docstring
    max_category_psi: Tolerance | None = 0.25  # raised by the sampling noise: the module docstring
    category_psi_noise_factor: Tolerance | None = 3.0  # measured: the module docstring
    max_unseen_category_share: Share | None = None  # not checked by default: the module docstring
    max_funnel_drop: Tolerance = 0.05
    max_cosine_increase: Tolerance = 0.05
    max_entropy_drop: Tolerance = 0.25
    min_embedding_overlap: Share = 0.05  # measured: docs/pinsage.md, "Day after day"


def evaluate(candidate: Metrics, baseline: Metrics | None, cfg: BlessingConfig,
             baseline_version: str | None = None) -> Blessing:
    """The verdict on ``candidate`` against ``baseline`` (None: first version, floors only)."""
    reasons: list[str] = []
    k = candidate.k
    if candidate.recall_at_k < cfg.min_recall:
        reasons.append(f"recall@{k} {candidate.recall_at_k:.4f} < minimum {cfg.min_recall:.4f}")
    if candidate.latency_p99_ms > cfg.max_latency_p99_ms:
        reasons.append(f"latency p99 {candidate.latency_p99_ms:.2f} ms > maximum {cfg.max_latency_p99_ms:.2f} ms")
    for task in sorted(candidate.auc):
        if candidate.auc[task] < cfg.min_auc:
            reasons.append(f"auc[{task}] {candidate.auc[task]:.4f} < minimum {cfg.min_auc:.4f}")
        if candidate.calibration_error[task] > cfg.max_calibration_error:
            reasons.append(f"calibration_error[{task}] {candidate.calibration_error[task]:.4f} > maximum "
                           f"{cfg.max_calibration_error:.4f}")
    reasons += _drift(candidate.drift, cfg)
    for key, against in (("overlap_at_10", "the previous one"), ("champion_overlap_at_10", "the one serving")):
        overlap = candidate.stability.get(key)
        if cfg.min_embedding_overlap and overlap is not None and overlap < cfg.min_embedding_overlap:
            reasons.append(f"embedding stability: {key} {overlap:.4f} < minimum {cfg.min_embedding_overlap:.4f} "
                           f"(the PinSage version moved too far from {against})")
    notes: list[str] = []
    if baseline is not None:
        reasons += _against_baseline(candidate, baseline, cfg, baseline_version or "baseline")
        failed, notes = _funnel(candidate.funnel, baseline.funnel, cfg, baseline_version or "baseline")
        reasons += failed
    return Blessing(blessed=not reasons, reasons=tuple(reasons), baseline_version=baseline_version,
                    notes=tuple(notes))


def _against_baseline(c: Metrics, b: Metrics, cfg: BlessingConfig, name: str) -> list[str]:
    reasons = []
    if c.k != b.k:
        reasons.append(f"recall@{c.k} is not comparable with {name}'s recall@{b.k}")
    elif c.recall_at_k < b.recall_at_k - cfg.max_recall_drop:
        reasons.append(f"recall@{c.k} {c.recall_at_k:.4f} < {name} {b.recall_at_k:.4f} - {cfg.max_recall_drop:.4f}")
    # sub-millisecond latencies (small exact indexes) move by more than 20 % with machine noise
    limit = max(b.latency_p99_ms * (1.0 + cfg.max_latency_increase), b.latency_p99_ms + cfg.latency_slack_ms)
    if c.latency_p99_ms > limit:
        reasons.append(f"latency p99 {c.latency_p99_ms:.2f} ms > {name} {b.latency_p99_ms:.2f} ms "
                       f"x {1.0 + cfg.max_latency_increase:.2f}")
    for task in sorted(b.auc):
        if task not in c.auc:
            reasons.append(f"task {task!r} of {name} has no metrics in the candidate")
            continue
        if c.auc[task] < b.auc[task] - cfg.max_auc_drop:
            reasons.append(f"auc[{task}] {c.auc[task]:.4f} < {name} {b.auc[task]:.4f} - {cfg.max_auc_drop:.4f}")
        if c.calibration_error[task] > b.calibration_error[task] + cfg.max_calibration_increase:
            reasons.append(f"calibration_error[{task}] {c.calibration_error[task]:.4f} > {name} "
                           f"{b.calibration_error[task]:.4f} + {cfg.max_calibration_increase:.4f}")
    return reasons


def category_psi_limit(max_psi: float | None, noise_factor: float | None, noise: float | None) -> float | None:
    """The PSI a categorical column may reach: ``max_psi``, or ``noise_factor`` x its sampling ``noise``
    where that is larger; None: not checked (both null, or only the factor and no noise measured)."""
    scaled = None if noise_factor is None or noise is None else noise_factor * noise
    if max_psi is None or scaled is None:
        return max_psi if scaled is None else scaled
    return max(max_psi, scaled)


def _drift(drift: dict[str, float], cfg: BlessingConfig) -> list[str]:
    reasons = []
    for key in sorted(drift):
        kind, _, name = key.partition(".")
        if kind == "score_psi":
            noise = drift.get(f"score_psi_noise.{name}")
            limit = category_psi_limit(cfg.max_score_psi, cfg.score_psi_noise_factor, noise)
            if drift[key] > limit:
                why = "" if limit == cfg.max_score_psi else \
                    f" ({cfg.score_psi_noise_factor:g} x its sampling noise {noise:.4f})"
                reasons.append(f"score PSI[{name}] {drift[key]:.4f} > maximum {limit:.4f}{why}")
        elif kind == "feature_drift" and drift[key] > cfg.max_feature_drift:
            reasons.append(f"feature drift[{name}] {drift[key]:.4f} > maximum {cfg.max_feature_drift:.4f}")
        elif kind == "null_rate_shift" and drift[key] > cfg.max_null_rate_shift:
            reasons.append(f"null-rate shift[{name}] {drift[key]:.4f} > maximum {cfg.max_null_rate_shift:.4f}")
        elif kind == "category_psi":
            noise = drift.get(f"category_psi_noise.{name}")
            limit = category_psi_limit(cfg.max_category_psi, cfg.category_psi_noise_factor, noise)
            if limit is not None and drift[key] > limit:
                why = "" if limit == cfg.max_category_psi else \
                    f" ({cfg.category_psi_noise_factor:g} x its sampling noise {noise:.4f})"
                reasons.append(f"category PSI[{name}] {drift[key]:.4f} > maximum {limit:.4f}{why}")
        elif (kind == "unseen_category_share" and cfg.max_unseen_category_share is not None
              and drift[key] > cfg.max_unseen_category_share):
            reasons.append(f"unseen category share[{name}] {drift[key]:.4f} > maximum "
                           f"{cfg.max_unseen_category_share:.4f}")
    return reasons


#: funnel keys where higher is better: the merged candidates' numbers and the served list's quality
_FUNNEL_QUALITY = re.compile(r"candidates\.merged\..+|served\.(hr|ndcg|recall|truth_recall)@.+")


def _funnel(c: dict[str, float], b: dict[str, float], cfg: BlessingConfig, name: str) -> tuple[list[str], list[str]]:
    """(failed checks, notes) of the candidate's funnel ``c`` against the baseline's ``b``."""
    if not c and not b:
        return [], []
    if not c or not b:
        return [], [f"funnel not compared: {'the candidate' if not c else name} has no funnel metrics"]
    gated = sorted(k for k in set(c) | set(b)
                   if _FUNNEL_QUALITY.fullmatch(k) or k in ("served.cosine", "served.category_entropy"))
    reasons, alone = [], [k for k in gated if (k in c) != (k in b)]
    for key in (k for k in gated if k in c and k in b):
        if key == "served.cosine":
            if c[key] > b[key] + cfg.max_cosine_increase:
                reasons.append(f"funnel {key} {c[key]:.4f} > {name} {b[key]:.4f} + {cfg.max_cosine_increase:.4f}")
        elif key == "served.category_entropy":
            if c[key] < b[key] - cfg.max_entropy_drop:
                reasons.append(f"funnel {key} {c[key]:.4f} < {name} {b[key]:.4f} - {cfg.max_entropy_drop:.4f}")
        elif c[key] < b[key] - cfg.max_funnel_drop:
            reasons.append(f"funnel {key} {c[key]:.4f} < {name} {b[key]:.4f} - {cfg.max_funnel_drop:.4f}")
    notes = [f"funnel {k} not compared: only the {'candidate' if k in c else name} has it" for k in alone]
    return reasons, notes
