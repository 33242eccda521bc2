"""The pre-ranker model: a logistic regression per task over encoded features, fitted by L-BFGS."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pinrec.export.encoding import EncodedBatch
from pinrec.models.metrics import auc
from pinrec.models.prerank import LogisticPrerank, predict_logits, train_logistic
from pinrec.models.ranker_trainer import RankerData

CARDS = (4, 3)


def planted(n: int, seed: int) -> tuple[RankerData, np.ndarray]:
    """Labels drawn from a known logistic model: (data, true logits (n, 2))."""
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, c, n) for c in CARDS], 1)
    dense = rng.normal(size=(n, 2)).astype(np.float32)
    per_value = np.array([[-1.0, 0.0, 1.0, 2.0], [0.5, -0.5, 0.0, 0.0]])
    save = -0.5 + per_value[0][cat[:, 0]] + per_value[1][cat[:, 1]] + 1.5 * dense[:, 0]
    closeup = 0.3 - 1.0 * dense[:, 1] + per_value[0][cat[:, 0]] * 0.5
    logits = np.stack([save, closeup], 1)
    labels = (rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float32)

    batch = EncodedBatch(cat.astype(np.int64), dense, np.zeros(n, np.int64))
    return RankerData.from_batch(batch, labels), logits


def test_forward_is_a_sum_of_one_weight_per_value_and_a_linear_dense_part():
    torch.manual_seed(0)
    model = LogisticPrerank(CARDS, 2, ("save", "closeup"))
    for p in model.parameters():
        torch.nn.init.normal_(p)
    cat = np.array([[0, 2], [3, 1]], np.int64)
    dense = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    table = model.categorical_weight.weight.detach().numpy()
    w, b = model.dense.weight.detach().numpy(), model.dense.bias.detach().numpy()
    want = b + dense @ w.T + table[cat[:, 0]] + table[4 + cat[:, 1]]
    np.testing.assert_allclose(predict_logits(model, cat, dense), want, rtol=1e-5, atol=1e-6)
    assert repr(model) == "LogisticPrerank(C=2, F=2, tasks=('save', 'closeup'))"


def test_lbfgs_recovers_the_planted_model():
    train, _ = planted(20_000, 0)
    test, true_logits = planted(5_000, 1)
    model = LogisticPrerank(CARDS, 2, ("save", "closeup"))
    losses = train_logistic(model, train, max_iter=100, l2=0.0)
    assert losses[-1] < losses[0] and not model.training
    got = predict_logits(model, test.categorical.numpy(), test.dense.numpy())
    for t in range(2):  # the fitted logits are the planted ones, up to sampling noise
        assert np.corrcoef(got[:, t], true_logits[:, t])[0, 1] > 0.99
        np.testing.assert_allclose(got[:, t], true_logits[:, t], atol=0.25)
        y = test.labels.numpy()[:, t]
        assert auc(y, got[:, t]) == pytest.approx(auc(y, true_logits[:, t]), abs=0.005)
    np.testing.assert_allclose(model.dense.weight.detach().numpy(), [[1.5, 0.0], [0.0, -1.0]], atol=0.1)


def test_l2_shrinks_the_weights_and_the_fit_is_deterministic():
    train, _ = planted(2_000, 0)
    norms = []
    for l2 in (0.0, 0.1):
        a, b = LogisticPrerank(CARDS, 2, ("save", "closeup")), LogisticPrerank(CARDS, 2, ("save", "closeup"))
        train_logistic(a, train, 50, l2)
        train_logistic(b, train, 50, l2)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        norms.append(float(a.penalty().detach()))
    assert norms[1] < 0.5 * norms[0]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="cardinalities must be >= 1"):
        LogisticPrerank((0,), 1, ("save",))
    with pytest.raises(ValueError, match="at least one categorical or dense"):
        LogisticPrerank((), 0, ("save",))
    train, _ = planted(10, 0)
    with pytest.raises(ValueError, match="max_iter >= 1"):
        train_logistic(LogisticPrerank(CARDS, 2, ("save", "closeup")), train, 0)
    with pytest.raises(ValueError, match="one label column per task"):
        train_logistic(LogisticPrerank(CARDS, 2, ("save",)), train)
