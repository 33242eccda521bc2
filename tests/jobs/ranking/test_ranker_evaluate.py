"""The ranker job's evaluate step on a tiny inline training set: which models get rows (the twin and
the oracle only when enabled), the debiasing comparison, the intervals, and real metric values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pinrec.jobs.ranking.ranker_encode import encode
from pinrec.jobs.ranking.ranker_eval import task_metrics
from pinrec.jobs.ranking.ranker_evaluate import ORACLE_PAIRS, evaluate
from pinrec.jobs.ranking.ranker_read import TrainingSet
from pinrec.jobs.ranking.ranker_train import calibrate, train
from pinrec.models.metrics import auc
from tests.jobs.ranking.training_frames import TASKS, small_configs


@pytest.fixture(scope="module")
def fitted(tiny_training_set):
    import torch

    torch.set_num_threads(1)
    cfg = small_configs()
    data = encode(TrainingSet(tiny_training_set[0]), cfg)
    return data, calibrate(train(data, cfg.model, cfg.train), data, cfg.calibration)


def models(evaluation) -> list[str]:
    return list(dict.fromkeys(r.model for r in evaluation.metrics))


def test_everything_on_with_the_truth(fitted, tiny_training_set):
    data, ranker = fitted
    truth = tiny_training_set[1]
    evaluation = evaluate(data, ranker, small_configs(baselines=("logreg",), debias_seeds=2), truth)
    assert models(evaluation) == ["ranker", "ranker (with position)", "oracle", "oracle (position-free)",
                                  "ranker, no position", "logistic regression"]
    assert [(r.model, r.task) for r in evaluation.metrics[:2]] == [("ranker", "save"), ("ranker", "closeup")]
    assert set(evaluation.scored) == set(models(evaluation))
    assert all(p.shape == (120, 2) for p in evaluation.scored.values())
    # the served probabilities, their metrics, and the oracle's truth for the test events
    y, w = data.labels["test"], data.weights["test"]
    np.testing.assert_array_equal(evaluation.probabilities, ranker.probabilities("test"))
    row = evaluation.metrics[1]
    assert row.auc == auc(y[:, 1], evaluation.probabilities[:, 1], w) and row.auc_low <= row.auc <= row.auc_high
    plain = task_metrics("ranker", y, evaluation.probabilities, TASKS, data.sessions, w)
    assert [(r.logloss, r.ece, r.ndcg) for r in plain] == [(r.logloss, r.ece, r.ndcg) for r in evaluation.metrics[:2]]
    test_truth = truth.set_index("event_id").loc[data.event_ids]
    np.testing.assert_allclose(evaluation.oracle_free[:, 1], test_truth["p_closeup"])
    np.testing.assert_allclose(evaluation.scored["oracle"][:, 1], test_truth["p_closeup"] * test_truth["exam_prob"])
    # two seed pairs per task; the gaps of both oracle pairs per task, each from 20 resamples
    assert [d.task for d in evaluation.debias] == list(TASKS)
    assert all(len(d.seed_differences) == 2 and d.rows == 120 for d in evaluation.debias)
    assert {(g.model, g.reference, g.task) for g in evaluation.auc_gaps} == {(m, r, t) for m, r in ORACLE_PAIRS
                                                                             for t in TASKS}
    assert all(g.resamples == 20 for g in evaluation.auc_gaps)


def test_only_the_ranker_without_twin_truth_baselines_or_resamples(fitted):
    data, ranker = fitted
    evaluation = evaluate(data, ranker, small_configs(no_position_twin=False, bootstrap_resamples=0))
    assert models(evaluation) == ["ranker", "ranker (with position)"] and len(evaluation.metrics) == 4
    assert evaluation.debias == () and evaluation.auc_gaps == () and evaluation.oracle_free is None
    assert all(math.isnan(r.auc_low) and math.isnan(r.auc_high) for r in evaluation.metrics)
    expected = 1 / (1 + np.exp(-ranker.trained.logits("test", with_position=True).astype(np.float64)))
    np.testing.assert_allclose(evaluation.with_position, expected)


def test_the_twin_without_truth_has_rows_but_no_debiasing(fitted):
    data, ranker = fitted
    evaluation = evaluate(data, ranker, small_configs())
    assert models(evaluation) == ["ranker", "ranker (with position)", "ranker, no position"]
    assert evaluation.debias == () and evaluation.auc_gaps == ()  # no oracle: no gap pairs
    assert all(not math.isnan(r.auc_low) for r in evaluation.metrics)  # every AUC still has its interval


def test_the_truth_without_twin_has_oracle_rows_and_gaps_but_no_debiasing(fitted, tiny_training_set):
    data, ranker = fitted
    evaluation = evaluate(data, ranker, small_configs(no_position_twin=False), tiny_training_set[1])
    assert models(evaluation) == ["ranker", "ranker (with position)", "oracle", "oracle (position-free)"]
    assert evaluation.debias == () and len(evaluation.auc_gaps) == len(ORACLE_PAIRS) * len(TASKS)


def test_the_truth_must_hold_every_test_event(fitted, tiny_training_set):
    data, ranker = fitted
    truth = tiny_training_set[1]
    with pytest.raises(ValueError, match="not in the truth"):
        evaluate(data, ranker, small_configs(), truth[truth["event_id"] != data.event_ids[0]])
