"""Step 5 of the ranker job, evaluate: every model's (B_test, T) test probabilities, then their
metrics, the debiasing comparison and the bootstrap intervals (:mod:`pinrec.jobs.ranking.ranker_eval`).

Models, in the order of the report's rows:

* ``ranker``: the calibrated position-free probabilities (as served);
* ``ranker (with position)``: the sigmoid of its logits with the position tower (the likelihood of
  the observed, position-biased labels);
* with the synthetic world's truth, ``oracle`` and ``oracle (position-free)``: the generator's
  probabilities of the observed labels and without the examination bias;
* with ``ranker_job.no_position_twin``, ``ranker, no position``: the same ranker trained without
  the position feature; with the truth as well, Kendall's tau of both models' position-free rankings
  against the oracle's, over ``debias_seeds`` seed pairs (the first pair: the ranker and its twin);
* the baselines ``ranker_job.baselines`` (logistic regression; deepctr-torch's DCNMix, Wang et al.,
  WWW 2021), position-free;
* any model scored elsewhere (``extra``: the pre-ranker, :mod:`pinrec.jobs.ranking.ranker_prerank`).

With ``bootstrap_resamples``, every AUC gets its session-bootstrap interval, and with the truth the
paired gaps oracle - ranker (with position) and oracle (position-free) - ranker.
Pure but for training: no I/O, the truth comes in as a frame.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import ranker_eval as ev
from .ranker_configs import RankerConfigs
from .ranker_encode import EncodedData
from .ranker_train import CalibratedRanker, served_probabilities

if TYPE_CHECKING:
    import pandas as pd

    from .ranker_eval import AucGap, DebiasComparison, MetricRow

BASELINE_NAMES = {"logreg": "logistic regression", "dcnmix": "deepctr DCNMix"}
#: (model, reference) pairs whose AUC gap gets an interval when the oracle is there
ORACLE_PAIRS = (("ranker (with position)", "oracle"), ("ranker", "oracle (position-free)"))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """``metrics``: one row per (model, task), models in the module docstring's order; ``debias``: one
    comparison per task (empty without the twin or the truth); ``auc_gaps``: per task and
    :data:`ORACLE_PAIRS` pair (empty without the truth or resamples); ``scored``: each model's
    (B_test, T) test probabilities by name."""

    metrics: tuple[MetricRow, ...]
    debias: tuple[DebiasComparison, ...]
    auc_gaps: tuple[AucGap, ...]
    scored: dict[str, np.ndarray]

    @property
    def probabilities(self) -> np.ndarray:
        """(B_test, T) the ranker's served probabilities."""
        return self.scored["ranker"]

    @property
    def with_position(self) -> np.ndarray:
        """(B_test, T) the ranker's probabilities with the position tower."""
        return self.scored["ranker (with position)"]

    @property
    def oracle_free(self) -> np.ndarray | None:
        """(B_test, T) the oracle's position-free probabilities; None without the truth."""
        return self.scored.get("oracle (position-free)")


def seed_pairs(data: EncodedData, ranker: CalibratedRanker, twin: np.ndarray, cfg: RankerConfigs
               ) -> tuple[np.ndarray, np.ndarray]:
    """(S, B_test, T) position-free test probabilities of S = ``debias_seeds`` rankers trained with the
    position and of S trained without it, seeds ``seed, seed + 1, ...``: the first of each is the
    ranker and its ``twin``; the others are trained here (all with the position, then all without)."""
    seed = cfg.train.seed
    extra = range(seed + 1, seed + cfg.job.debias_seeds)
    debiased = np.stack([ranker.probabilities("test"),
                         *(served_probabilities(data, cfg.model, cfg.train, cfg.calibration, s, True) for s in extra)])
    no_position = np.stack([twin, *(served_probabilities(data, cfg.model, cfg.train, cfg.calibration, s, False)
                                    for s in extra)])
    return debiased, no_position


def baseline(name: str, data: EncodedData, cfg: RankerConfigs, device: str) -> np.ndarray:
    """(B_test, T) test probabilities of baseline ``name`` (a value of ``ranker_job.baselines``),
    trained on the encoded ``train`` split; DCNMix on CUDA when the ranker trained there."""
    train, test = data.batches["train"], data.batches["test"]
    cards = data.encoder.cardinalities
    if name == "logreg":
        return ev.logistic_baseline(train, data.labels["train"], test, cards, data.weights["train"],
                                    seed=cfg.train.seed)
    return ev.dcnmix_baseline(train, data.labels["train"], test, cards, cfg.job.baseline_epochs,
                              cfg.train.batch_size, cfg.model.embedding_dim, cfg.train.seed,
                              "cuda:0" if device.startswith("cuda") else "cpu")


def evaluate(data: EncodedData, ranker: CalibratedRanker, cfg: RankerConfigs,
             truth: pd.DataFrame | None = None, extra: Mapping[str, np.ndarray] | None = None) -> Evaluation:
    """Score every model on the test split and compare them (module docstring). ``truth``: the
    synthetic world's impressions (:data:`~pinrec.jobs.ranking.ranker_eval_oracle.TRUTH_COLUMNS`) holding
    every test event, or None; ``extra``: {model: (B_test, T) probabilities} of models trained
    elsewhere, metered last. Seeds: ``cfg.train.seed`` for the twin, the baselines and the
    resamples."""
    job, tasks, seed = cfg.job, data.tasks, cfg.train.seed
    y, w, sessions = data.labels["test"], data.weights["test"], data.sessions
    with_position = 1 / (1 + np.exp(-ranker.trained.logits("test", with_position=True).astype(np.float64)))
    scored = {"ranker": ranker.probabilities("test"), "ranker (with position)": with_position}
    if truth is not None:
        observed, free = ev.oracle_probabilities(truth, data.event_ids, tasks)
        scored |= {"oracle": observed, "oracle (position-free)": free}
    debias: list[DebiasComparison] = []
    if job.no_position_twin:
        twin = served_probabilities(data, cfg.model, cfg.train, cfg.calibration, seed, position=False)
        scored["ranker, no position"] = twin
        if truth is not None:
            debiased, no_position = seed_pairs(data, ranker, twin, cfg)
            debias = ev.debias_comparison(scored["oracle (position-free)"], debiased, no_position, tasks, sessions,
                                          job.bootstrap_resamples, seed=seed)
    for name in job.baselines:
        scored[BASELINE_NAMES[name]] = baseline(name, data, cfg, ranker.trained.device)
    scored |= dict(extra or {})
    metrics = [row for name, p in scored.items()
               for row in ev.task_metrics(name, y, p, tasks, sessions, w, job.ece_bins, job.ndcg_k)]
    gaps: list[AucGap] = []
    if job.bootstrap_resamples:
        metrics, gaps = ev.auc_intervals(metrics, y, scored, tasks, sessions, w,
                                         ORACLE_PAIRS if truth is not None else (), job.bootstrap_resamples, seed=seed)
    return Evaluation(tuple(metrics), tuple(debias), tuple(gaps), scored)
