"""The ranker job's encode step on a tiny inline training set: rows and labels per split, the
negative rate, the encoder fitted on train only, the test keys, and the checks."""
from __future__ import annotations

import numpy as np
import pytest

from pinrec.jobs.ranking.ranker_encode import SPLITS, encode
from pinrec.jobs.ranking.ranker_read import TrainingSet
from tests.jobs.ranking.training_frames import TASKS, small_configs


def test_encode_gives_each_split_its_batch_labels_and_weights(tiny_training_set):
    frame, _ = tiny_training_set
    data = encode(TrainingSet(frame), small_configs())
    assert data.tasks == TASKS and data.rows_by_split == {"train": 120, "validation": 120, "test": 120}
    assert data.spec is data.encoder.spec and data.spec.position == "position"
    for s in SPLITS:
        rows = frame[frame["split"] == s]
        batch = data.batches[s]
        assert batch.categorical.shape == (120, len(data.encoder.cardinalities)) == (120, 7)
        assert batch.dense.shape == (120, len(data.encoder.dense_names)) and batch.position.shape == (120,)
        np.testing.assert_array_equal(batch.position, rows["position"])  # 1..10 <= max_position: kept as is
        assert data.labels[s].dtype == np.float32 and data.labels[s].shape == (120, 2)
        np.testing.assert_array_equal(data.labels[s], rows[list(TASKS)].to_numpy())
        np.testing.assert_array_equal(data.weights[s], np.ones(120, np.float32))
    test = frame[frame["split"] == "test"]
    assert data.event_ids.tolist() == test["event_id"].tolist()
    assert data.sessions.tolist() == test["session_id"].tolist() and data.positions.tolist() == test["position"].tolist()
    assert data.negative_rate == 1.0  # every weight 1: nothing was sampled away


def test_the_negative_rate_comes_from_the_commit_else_from_the_weights(tiny_training_set):
    frame, _ = tiny_training_set
    negatives = frame[list(TASKS)].sum(axis=1) == 0
    sampled = frame.assign(sample_weight=np.where(negatives, 4.0, 1.0))
    assert encode(TrainingSet(sampled), small_configs()).negative_rate == 0.25
    assert encode(TrainingSet(sampled, {"negative_rate": 0.5}), small_configs()).negative_rate == 0.5


def test_the_encoder_is_fitted_on_the_train_split_only(tiny_training_set):
    frame, _ = tiny_training_set
    unseen = frame.assign(category=np.where(frame["split"] == "train", frame["category"], "only-after-train"))
    data = encode(TrainingSet(unseen), small_configs())
    column = data.encoder.categorical_names.index("category")
    assert data.encoder.cardinalities[column] == 1 + 3  # a, b, c and the unknown bucket
    assert (data.batches["train"].categorical[:, column] > 0).all()
    for s in ("validation", "test"):
        assert (data.batches[s].categorical[:, column] == 0).all()


def test_encode_rejects_an_empty_split_and_a_constant_label(tiny_training_set):
    frame, _ = tiny_training_set
    with pytest.raises(ValueError, match=r"no rows in split\(s\) \['validation'\]"):
        encode(TrainingSet(frame[frame["split"] != "validation"]), small_configs())
    constant = frame.assign(closeup=np.where(frame["split"] == "validation", 1, frame["closeup"]))
    with pytest.raises(ValueError, match="task 'closeup' has one label value only in the validation split"):
        encode(TrainingSet(constant), small_configs())
    # the test split may lack a class: its AUC is then NaN, nothing is fitted on it
    no_saves = frame.assign(save=np.where(frame["split"] == "test", 0, frame["save"]))
    assert encode(TrainingSet(no_saves), small_configs()).labels["test"][:, 0].sum() == 0
