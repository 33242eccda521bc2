"""Evaluation of a ranker on the temporal test split: metrics per task, the synthetic world's
oracle, the position-debiasing comparison, baselines and the plots the ranker job logs.

Pure functions on numpy arrays (labels (B, T) in task order, probabilities (B, T), sessions (B,),
weights (B,)); :mod:`pinrec.jobs.ranking.ranker` does the reading and logging.

* :func:`task_metrics`: per task AUC, log-loss, expected calibration error (equal-width bins) and
  mean NDCG@k over sessions (:mod:`pinrec.models.metrics`), weighted by ``sample_weight``.
* :func:`auc_intervals`: percentile intervals of every model's AUC and of paired AUC gaps
  (e.g. oracle - ranker) from one session bootstrap (:func:`pinrec.models.metrics.auc_bootstrap`): the
  test split's positives are few (a few hundred saves on the demo world), so a difference in the
  third decimal is often noise, and the interval says which.
* :func:`oracle_probabilities`: the generator's true probabilities of the observed labels
  (:mod:`pinrec.jobs.ingest.synthetic`: ``closeup ~ exam_prob * p_closeup``, ``save ~ exam_prob * p_closeup *
  p_save``) and their position-free versions (``exam_prob`` = 1). Their AUC is the oracle AUC.
* :func:`debias_comparison`: Kendall's tau-b of a model's position-free ranking and of a model
  trained without the position feature against the oracle's position-free ranking, with a
  session-bootstrap interval of their difference; given several training seeds of both, it
  resamples the seeds too (training randomness moves tau more than the test sample does).
* :func:`logistic_baseline` (scikit-learn) and :func:`dcnmix_baseline` (deepctr-torch's DCNMix,
  Wang et al., WWW 2021), one binary model per task on the same encoded features, position-free.
* :func:`reliability_figure` and :func:`position_ctr_figure`: matplotlib figures (no pyplot).
"""
from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pinrec.models.metrics import (
    auc,
    auc_bootstrap,
    expected_calibration_error,
    kendall_tau,
    log_loss,
    ndcg_at_k,
    session_resamples,
)

TRUTH_COLUMNS = ("event_id", "p_closeup", "p_save", "exam_prob")


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


def render_table(rows: Sequence[MetricRow]) -> str:
    """The rows as a fixed-width table; an "AUC interval" column when any row has one."""
    ci = any(not math.isnan(r.auc_low) for r in rows)
    lines = [f"{'model':<24}{'task':<9}{'AUC':>8}" + (f"{'AUC interval':>19}" if ci else "")
             + f"{'logloss':>9}{'ECE':>8}{'NDCG@10':>9}"]
    for r in rows:
        interval = "" if not ci else f"{'-':>19}" if math.isnan(r.auc_low) else f"  [{r.auc_low:.4f}, {r.auc_high:.4f}]"
        lines.append(f"{r.model:<24}{r.task:<9}{r.auc:>8.4f}{interval}{r.logloss:>9.4f}{r.ece:>8.4f}{r.ndcg:>9.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- baselines
def _one_hot(categorical: np.ndarray, cardinalities: Sequence[int]):
    """(B, C) indices -> (B, sum cardinalities) sparse one-hot."""
    from scipy import sparse

    b = categorical.shape[0]
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
    cols = (categorical + offsets).ravel()
    rows = np.repeat(np.arange(b), categorical.shape[1])
    return sparse.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(b, int(sum(cardinalities))))


def logistic_baseline(train, train_labels, test, cardinalities: Sequence[int], train_weight=None,
                      c: float = 1.0, seed: int = 0) -> np.ndarray:
    """Logistic regression per task on dense + one-hot categorical features (no position);
    ``train``/``test`` are encoded batches. Returns (B_test, T) probabilities."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    def design(batch):
        return sparse.hstack([sparse.csr_matrix(batch.dense.astype(np.float64)),
                              _one_hot(batch.categorical, cardinalities)]).tocsr()

    x_train, x_test = design(train), design(test)
    labels = np.asarray(train_labels)
    out = []
    for t in range(labels.shape[1]):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(x_train, labels[:, t], sample_weight=train_weight)
        out.append(model.predict_proba(x_test)[:, 1])
    return np.stack(out, 1)


def dcnmix_baseline(train, train_labels, test, cardinalities: Sequence[int], epochs: int = 3,
                    batch_size: int = 1024, embedding_dim: int = 8, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """deepctr-torch's ``DCNMix`` (cross_num 2, low rank 16, 4 experts, DNN (128, 64)) per task,
    Adam and BCE for ``epochs`` epochs (deepctr's ``fit`` takes no sample weights: rows count
    once). Returns (B_test, T) probabilities. Raises ImportError naming the package when
    deepctr-torch is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it announces a version check on import
            from deepctr_torch.inputs import DenseFeat, SparseFeat
            from deepctr_torch.models import DCNMix
    except ImportError as exc:
        raise ImportError("the 'dcnmix' baseline needs deepctr-torch: pip install deepctr-torch "
                          "(or drop it from ranker_job.baselines)") from exc

    columns = ([SparseFeat(f"c{i}", int(n), embedding_dim=embedding_dim) for i, n in enumerate(cardinalities)]
               + [DenseFeat(f"d{j}", 1) for j in range(train.dense.shape[1])])

    def inputs(batch) -> dict[str, np.ndarray]:
        return {**{f"c{i}": batch.categorical[:, i] for i in range(batch.categorical.shape[1])},
                **{f"d{j}": batch.dense[:, j] for j in range(batch.dense.shape[1])}}

    x_train, x_test = inputs(train), inputs(test)
    labels = np.asarray(train_labels, np.float64)
    out = []
    for t in range(labels.shape[1]):
        model = DCNMix(columns, columns, cross_num=2, dnn_hidden_units=(128, 64), low_rank=16, num_experts=4,
                       task="binary", device=device, seed=seed)
        model.compile("adam", "binary_crossentropy")
        with contextlib.redirect_stdout(io.StringIO()):
            model.fit(x_train, labels[:, t], batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
            out.append(model.predict(x_test, batch_size=8192).ravel())
    return np.stack(out, 1)


# ---------------------------------------------------------------------------- figures
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
