"""Ranking metrics against hand-computed values and scikit-learn on small arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pinrec.models.metrics import (
    auc,
    auc_bootstrap,
    expected_calibration_error,
    kendall_tau,
    log_loss,
    ndcg_at_k,
    session_resamples,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_auc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4), (0.8>0.1), (0.4=0.4 -> 1/2), (0.4>0.1)
    assert auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert auc([1, 0], [0.3, 0.3]) == 0.5


@pytest.mark.parametrize("n", [7, 50, 400])
def test_auc_and_log_loss_match_sklearn(n):
    rng = np.random.default_rng(n)
    y, s, w = rng.integers(0, 2, n), np.round(rng.normal(size=n), 1), rng.uniform(0.2, 3.0, n)
    y[:2] = [0, 1]
    assert auc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
    assert auc(y, s, w) == pytest.approx(sklearn_metrics.roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    p = 1 / (1 + np.exp(-s))
    assert log_loss(y, p, w) == pytest.approx(sklearn_metrics.log_loss(y, p, sample_weight=w), abs=1e-12)


def test_ece_by_hand():
    # bin [0.1, 0.2): p 0.1, 0.1, y 0, 1 -> |0.5 - 0.1| * 2/4; bin [0.9, 1]: p 0.9, 1.0, y 1, 1 -> |1 - 0.95| * 2/4
    assert expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 1.0]) == pytest.approx(0.2 + 0.025)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_ndcg_matches_sklearn_per_group():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), [12, 3, 8, 15, 1, 9])
    y = rng.integers(0, 3, groups.size).astype(float)
    s = np.round(rng.normal(size=groups.size), 1)  # with ties
    y[groups == 4] = 0  # a group without positives is skipped
    want = [sklearn_metrics.ndcg_score([y[groups == g]], [s[groups == g]], k=10)
            for g in range(6) if y[groups == g].max() > 0]
    assert ndcg_at_k(y, s, groups, k=10) == pytest.approx(np.mean(want), abs=1e-12)
    assert ndcg_at_k([1, 0, 0], [0.9, 0.5, 0.1], ["a", "a", "a"]) == 1.0
    assert ndcg_at_k([0, 0, 1], [0.9, 0.5, 0.1], [1, 1, 1], k=2) == 0.0


def test_kendall_tau_b_corrects_for_ties():
    # 6 pairs: 4 concordant, 0 discordant, one tied in x only, one tied in y only:
    # tau-b = (4 - 0) / sqrt((6 - 1) * (6 - 1)) = 0.8 (tau-a would say 4/6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    y = np.random.default_rng(0).normal(size=200)
    assert kendall_tau(y, -y) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))  # a constant ranking orders nothing


def test_bad_input_raises():
    with pytest.raises(ValueError, match="both"):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="rows"):
        log_loss([1, 0], [0.5])
    with pytest.raises(ValueError, match="non-negative"):
        auc([1, 0], [0.2, 0.3], [1.0, -1.0])
    with pytest.raises(ValueError, match="positive gain"):
        ndcg_at_k([0, 0], [0.1, 0.2], [1, 1])


def _delong_sd(y, s) -> float:
    """DeLong et al. (1988): the AUC's standard error from its structural components."""
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(np.sqrt(psi.mean(1).var(ddof=1) / len(pos) + psi.mean(0).var(ddof=1) / len(neg)))


def test_auc_bootstrap_spread_matches_delong_and_respects_sessions():
    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.1
    s = 0.9 * y + rng.normal(size=3000)
    draws = auc_bootstrap(y, s, resamples=400, seed=1)
    assert draws.shape == (1, 400) and not np.isnan(draws).any()
    assert np.std(draws) == pytest.approx(_delong_sd(y, s), rel=0.15)
    assert abs(np.mean(draws) - auc(y, s)) < 0.005
    # every row five times as one session: the same information, so resampling sessions gives the
    # spread of the original rows; resampling the copies one by one would claim sqrt(5) x less
    y5, s5, session = np.repeat(y, 5), np.repeat(s, 5), np.repeat(np.arange(3000), 5)
    by_session = np.std(auc_bootstrap(y5, s5, session, resamples=400, seed=1))
    by_row = np.std(auc_bootstrap(y5, s5, resamples=400, seed=1))
    assert by_session == pytest.approx(_delong_sd(y, s), rel=0.15)
    assert by_row == pytest.approx(by_session / np.sqrt(5), rel=0.2)


def test_auc_bootstrap_is_paired_weighted_and_handles_degenerate_resamples():
    rng = np.random.default_rng(6)
    y = rng.random(500) < 0.3
    s = y + rng.normal(size=500)
    draws = auc_bootstrap(y, np.stack([s, s, -s], 1), resamples=50)
    np.testing.assert_array_equal(draws[0], draws[1])          # same resamples for every column
    np.testing.assert_allclose(draws[2], 1 - draws[0], atol=1e-12)
    separated = auc_bootstrap(y, y.astype(float), resamples=20)
    np.testing.assert_array_equal(separated, 1.0)
    # zero weights remove rows: the draws equal those of the remaining rows resampled by session
    w = (np.arange(500) % 2).astype(float)
    groups = np.arange(500) // 2  # each session holds one weighted and one zero-weight row
    np.testing.assert_allclose(auc_bootstrap(y, s, groups, w, resamples=30),
                               auc_bootstrap(y[1::2], s[1::2], resamples=30))
    one_positive = np.r_[True, np.zeros(99, bool)]  # most resamples miss the only positive
    assert np.isnan(auc_bootstrap(one_positive, np.arange(100.0), resamples=20)).any()
    with pytest.raises(ValueError, match="scores"):
        auc_bootstrap(y, np.ones((499, 2)))
    with pytest.raises(ValueError, match="resamples"):
        auc_bootstrap(y, s, resamples=0)


def test_session_resamples_draw_whole_sessions_reproducibly():
    sessions = np.array(["b", "a", "b", "c", "a", "a"])
    group, counts = session_resamples(sessions, 6, resamples=50, seed=3)
    np.testing.assert_array_equal(group, [1, 0, 1, 2, 0, 0])        # sessions a, b, c -> 0, 1, 2
    assert counts.shape == (50, 3) and (counts.sum(axis=1) == 3).all()  # 3 sessions drawn per resample
    again = session_resamples(sessions, 6, resamples=50, seed=3)[1]
    np.testing.assert_array_equal(counts, again)                       # same seed: the same, paired resamples
    assert not np.array_equal(counts, session_resamples(sessions, 6, resamples=50, seed=4)[1])
    rows, per_row = session_resamples(None, 4, resamples=2)
    np.testing.assert_array_equal(rows, np.arange(4))
    assert per_row.shape == (2, 4) and (per_row.sum(axis=1) == 4).all()
    with pytest.raises(ValueError, match="resamples"):
        session_resamples(sessions, 6, resamples=0)
    with pytest.raises(ValueError, match="groups has 6 rows"):
        session_resamples(sessions, 5, resamples=1)
