"""Calibration: Platt and isotonic against scikit-learn, the torch layers against numpy, JSON, score."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pinrec.models.calibration import (
    Calibration,
    CalibrationConfig,
    Isotonic,
    Platt,
    fit_calibration,
    fit_isotonic,
    fit_platt,
)

sklearn = pytest.importorskip("sklearn")


def noisy(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = np.round(rng.normal(size=n), 2)  # ties in the logits
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.0 * z - 1.0)))).astype(float)
    return z, y, rng.uniform(0.5, 2.0, n)


def test_platt_matches_unregularised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    z, y, w = noisy()
    got = fit_platt(z, y, w)
    lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(z[:, None], y, sample_weight=w)
    assert got.a == pytest.approx(lr.coef_[0, 0], abs=1e-5)
    assert got.b == pytest.approx(lr.intercept_[0], abs=1e-5)
    big = noisy(200_000, seed=1)
    recovered = fit_platt(big[0], big[1])
    assert recovered.a == pytest.approx(2.0, abs=0.05) and recovered.b == pytest.approx(-1.0, abs=0.05)


def test_platt_never_flips_the_ranking():
    z, y, w = noisy()
    with pytest.warns(RuntimeWarning, match="rank the calibration labels backwards"):
        flipped = fit_platt(-z, y, w)
    rate = float((w * y).sum() / w.sum())
    assert flipped.a == 0.0 and flipped.b == pytest.approx(np.log(rate / (1 - rate)), rel=1e-12)
    assert np.allclose(flipped.apply(np.array([-3.0, 0.0, 3.0])), rate)


def test_isotonic_matches_sklearn():
    from sklearn.isotonic import IsotonicRegression

    z, y, w = noisy()
    iso = fit_isotonic(z, y, w)
    ref = IsotonicRegression(out_of_bounds="clip").fit(z, y, sample_weight=w)
    q = np.linspace(-5, 5, 2001)
    np.testing.assert_allclose(iso.apply(q), ref.predict(q), atol=1e-12)
    assert np.all(np.diff(iso.apply(q)) >= 0)


def test_isotonic_by_hand():
    # labels 1, 0 at logits 0, 1 violate monotonicity and pool to 0.5; 1 at 2 stays
    iso = fit_isotonic([0.0, 1.0, 2.0], [1.0, 0.0, 1.0])
    assert iso == Isotonic((0.0, 1.0, 2.0), (0.5, 0.5, 1.0))
    np.testing.assert_allclose(iso.apply([-3.0, 1.5, 9.0]), [0.5, 0.75, 1.0])


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_torch_layer_equals_numpy(method):
    z, y, w = noisy()
    logits = np.stack([z, -z], 1)
    cal = fit_calibration(logits, np.stack([y, 1 - y], 1), ("save", "closeup"), CalibrationConfig(method), w)
    q = np.stack([np.linspace(-6, 6, 501), np.linspace(6, -6, 501)], 1)
    got = cal.module()(torch.tensor(q, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, cal.apply(q), atol=2e-6)
    probs = cal.apply(q)
    np.testing.assert_allclose(cal.score(probs), probs @ np.array([1.0, 0.3]))
    assert Calibration.from_json(cal.to_json()) == cal and cal.method == method


def test_isotonic_layer_pads_tasks_with_fewer_knots():
    cal = Calibration(("a", "b"), (Isotonic((0.0,), (0.3,)), Isotonic((-1.0, 0.0, 1.0), (0.1, 0.2, 0.9))), (1.0, 1.0))
    q = np.array([[-2.0, -2.0], [0.5, 0.5], [3.0, 3.0]])
    np.testing.assert_allclose(cal.module()(torch.tensor(q, dtype=torch.float32)).numpy(), cal.apply(q), atol=1e-7)
    np.testing.assert_allclose(cal.apply(q)[:, 0], 0.3)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="method"):
        CalibrationConfig(method="beta")
    with pytest.raises(ValueError, match="one weight per task"):
        fit_calibration(np.zeros((3, 2)), np.zeros((3, 2)), ("a", "b"), CalibrationConfig(score_weights=(1.0,)))
    with pytest.raises(ValueError, match="one calibration method"):
        Calibration(("a", "b"), (Platt(1, 0), Isotonic((0.0,), (0.5,))), (1.0, 1.0))
    with pytest.raises(ValueError, match="increasing"):
        Isotonic((1.0, 0.0), (0.1, 0.2))
    with pytest.raises(ValueError, match="one length"):
        fit_platt([0.0, 1.0], [1.0])


def test_null_score_weights_are_each_tasks_default():
    from pinrec.models.config import score_weights_for

    assert score_weights_for(("save", "closeup"), CalibrationConfig()) == (1.0, 0.3)
    assert score_weights_for(("save",), CalibrationConfig()) == (1.0,)  # changing the tasks needs no second setting
    assert score_weights_for(("save",), CalibrationConfig(score_weights=(2.0,))) == (2.0,)
    cal = fit_calibration(np.zeros((4, 1)), np.array([[0], [1], [0], [1]]), ("save",), CalibrationConfig())
    assert cal.score_weights == (1.0,)
