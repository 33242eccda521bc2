"""The ranker job's train and calibrate steps on a tiny inline training set: shapes, the epoch hook,
seeded reproducibility, the no-position twin, and calibration matching the validation label rates."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pinrec.jobs.ranking.ranker_encode import SPLITS, encode
from pinrec.jobs.ranking.ranker_read import TrainingSet
from pinrec.jobs.ranking.ranker_train import calibrate, served_probabilities, train
from tests.jobs.ranking.training_frames import TASKS, small_configs


@pytest.fixture(scope="module")
def data(tiny_training_set):
    import torch

    torch.set_num_threads(1)
    return encode(TrainingSet(tiny_training_set[0]), small_configs())


def test_train_fits_a_seeded_ranker_and_reports_each_epoch(data):
    cfg = small_configs()
    epochs = []
    trained = train(data, cfg.model, cfg.train, hook=lambda epoch, metrics: epochs.append((epoch, set(metrics))))
    assert trained.device == "cpu" and 1 <= len(trained.result.history) <= cfg.train.epochs
    assert [e for e, _ in epochs] == list(range(len(trained.result.history)))
    assert all("val_logloss" in names for _, names in epochs)
    free, biased = trained.logits("test"), trained.logits("test", with_position=True)
    assert free.shape == biased.shape == (120, len(TASKS)) and free.dtype == np.float32
    assert not np.allclose(free, biased)  # the position tower moves the logits
    np.testing.assert_array_equal(train(data, cfg.model, cfg.train).logits("test"), free)  # same seed, same model
    assert not np.array_equal(train(data, cfg.model, replace(cfg.train, seed=1)).logits("test"), free)


def test_the_twin_trains_with_every_position_unknown(data):
    cfg = small_configs()
    twin = train(data, cfg.model, cfg.train, position=False)
    for s in SPLITS:
        assert (twin.splits[s].position == 0).all() and len(twin.splits[s].position) == 120
    assert (data.batches["test"].position > 0).all()  # the shared encoded data is left as it was
    # a constant position: the tower adds the same logit to every row
    shift = twin.logits("test", with_position=True) - twin.logits("test")
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)


def test_calibrate_matches_the_weighted_validation_label_rate(data):
    cfg = small_configs()
    trained = train(data, cfg.model, cfg.train)
    ranker = calibrate(trained, data, cfg.calibration)
    assert ranker.trained is trained and ranker.calibration.tasks == TASKS and ranker.calibration.method == "platt"
    p = ranker.calibration.apply(trained.logits("validation"))
    w, y = data.weights["validation"], data.labels["validation"]
    # Platt's intercept: at the likelihood's optimum the weighted mean probability is the weighted label rate
    np.testing.assert_allclose(np.average(p, axis=0, weights=w), np.average(y, axis=0, weights=w), atol=1e-6)
    test = ranker.probabilities("test")
    assert test.shape == (120, 2) and ((test > 0) & (test < 1)).all()
    np.testing.assert_allclose(served_probabilities(data, cfg.model, cfg.train, cfg.calibration, cfg.train.seed, True),
                               test)
