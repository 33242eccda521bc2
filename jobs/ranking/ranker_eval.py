"""Evaluation of a ranker on the temporal test split: metrics per task, the synthetic world's
oracle, the position-debiasing comparison, baselines and the plots the ranker job logs.

Pure functions on numpy arrays (labels (B, T) in task order, probabilities (B, T), sessions (B,),
weights (B,)); :mod:`pinrec.jobs.ranking.ranker` does the reading and logging.

The names below are importable from here as before the module was split; each lives, with the
docstring that describes it, in one of these:

- :mod:`pinrec.jobs.ranking.ranker_eval_metrics`: :class:`MetricRow`, :class:`AucGap`,
  :func:`task_metrics` (AUC, log-loss, ECE, NDCG@k per task), :func:`auc_intervals` (session-bootstrap
  intervals of every model's AUC and of paired AUC gaps) and :func:`render_table`;
- :mod:`pinrec.jobs.ranking.ranker_eval_oracle`: :data:`TRUTH_COLUMNS`, :func:`oracle_probabilities` (the
  generator's true probabilities), :class:`DebiasComparison` and :func:`debias_comparison` (Kendall's tau
  of the debiased and the position-free models against the oracle);
- :mod:`pinrec.jobs.ranking.ranker_eval_baselines`: :func:`logistic_baseline` (scikit-learn) and
  :func:`dcnmix_baseline` (deepctr-torch's DCNMix);
- :mod:`pinrec.jobs.ranking.ranker_eval_figures`: :func:`reliability_figure` and :func:`position_ctr_figure`.
"""
from __future__ import annotations

from .ranker_eval_baselines import dcnmix_baseline, logistic_baseline
from .ranker_eval_figures import position_ctr_figure, reliability_figure
from .ranker_eval_metrics import (
    AucGap,
    MetricRow,
    auc_intervals,
    render_table,
    task_metrics,
)
from .ranker_eval_oracle import (
    TRUTH_COLUMNS,
    DebiasComparison,
    debias_comparison,
    oracle_probabilities,
)

__all__ = [
    "TRUTH_COLUMNS",
    "AucGap",
    "DebiasComparison",
    "MetricRow",
    "auc_intervals",
    "dcnmix_baseline",
    "debias_comparison",
    "logistic_baseline",
    "oracle_probabilities",
    "position_ctr_figure",
    "reliability_figure",
    "render_table",
    "task_metrics",
]
