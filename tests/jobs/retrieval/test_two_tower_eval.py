"""Tests of :mod:`pinrec.jobs.retrieval.two_tower_eval`: the retrieval form of the pairs, and the two-tower
trained per split inside :func:`~pinrec.jobs.retrieval.retrieval_eval.evaluate_retrieval` learning a next-item
rule that popularity cannot, with the temperature chosen on validation and PinSage's vectors read."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.retrieval.baselines import ItemEmbeddings
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_eval import evaluate_retrieval
from pinrec.jobs.retrieval.two_tower_eval import (
    TwoTowerLogModel,
    latest_history,
    pin_features,
    sequence_pairs,
)
from pinrec.models.config import TwoTowerConfig

LOO = "user-item leave-one-out"
RING, CATALOGUE = 20, np.arange(1, 121)


def log(rows) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [r[0] for r in rows], "pin_id": [r[1] for r in rows],
                         "ts": pd.to_datetime([r[2] for r in rows], unit="h", utc=True)})


def test_sequence_pairs_hold_the_items_before_each_target_newest_first():
    # user 7: pins 30, 10, 20, 10 (a repeat, dropped), 40; user 3: one pin (no pair)
    train = log([(7, 30, 0), (7, 10, 1), (3, 20, 1), (7, 20, 2), (7, 10, 3), (7, 40, 4)])
    pin_ids = np.array([10, 20, 30, 40])
    pairs = sequence_pairs(train, pin_ids, 2)
    assert pairs["user_id"].tolist() == [7, 7, 7] and pairs["target"].tolist() == [0, 1, 3]
    assert [h.tolist() for h in pairs["history"]] == [[2, -1], [0, 2], [1, 0]]
    assert pairs["position"].tolist() == [1, 2, 3] and pairs["last"].tolist() == [False, False, True]
    users, history = latest_history(train, pin_ids, 3)
    assert users.tolist() == [3, 7] and history.tolist() == [[1, -1, -1], [3, 1, 0]]
    with pytest.raises(ValueError, match="not in the catalogue"):
        sequence_pairs(train, np.array([10, 20]), 2)


def test_pin_features_come_from_the_training_log_only():
    train = log([(1, 10, 0), (2, 10, 1), (2, 20, 2)])
    x = pin_features(train, np.array([10, 20, 30]), ItemEmbeddings(np.array([10]), np.array([[2.0]])))
    # columns: content, has_content, log1p(users) = (log 3, log 2, 0), each standardised
    assert x.shape == (3, 3)
    pop = np.log1p([2.0, 1.0, 0.0])
    np.testing.assert_allclose(x[:, 2], (pop - pop.mean()) / pop.std(), rtol=1e-6)
    np.testing.assert_allclose(x[:, 1], [np.sqrt(2), -1 / np.sqrt(2), -1 / np.sqrt(2)], rtol=1e-6)


def ring_log(users: int = 60, steps: int = 8, seed: int = 0) -> pd.DataFrame:
    """Each user walks the ring of pins 1..20 one step at a time from a random start: the held-out
    pin is the one after the user's last, which a model of the history can learn and popularity cannot."""
    rng = np.random.default_rng(seed)
    rows = [(u, (start + j) % RING + 1, j) for u, start in enumerate(rng.integers(0, RING, users), 1)
            for j in range(steps)]
    return log(rows)


def ring_vectors() -> ItemEmbeddings:
    return ItemEmbeddings(np.arange(1, RING + 1), np.eye(RING))


def tower_cfg(**change) -> TwoTowerConfig:
    return TwoTowerConfig(**{"epochs": 25, "batch_size": 64, "list_length": 3, "temperatures": (0.1, 0.5),
                             "eval_k": 3, "device": "cpu", "progress": False, "hidden_channels": 32, **change})


def test_two_tower_learns_the_next_pin_of_the_history_where_popularity_cannot():
    seen = []

    class Spy(TwoTowerLogModel):
        def __call__(self, train, embedded=None):
            seen.append((train, dict(embedded)))
            return super().__call__(train, embedded)

    model = Spy(tower_cfg(), content=ring_vectors(), pins=CATALOGUE, threads=1)
    cfg = RetrievalEvalConfig(baselines=("popularity",))
    report = evaluate_retrieval(ring_log(), cfg=cfg, pins=CATALOGUE, scorer_sources={"two-tower": model})
    tower, popular = (report.metric(LOO, m, "NDCG@10") for m in ("two-tower", "popularity"))
    assert report.metric(LOO, "two-tower", "HR@10") >= 0.9 and tower > popular + 0.3, report.render()
    (train, embedded), = seen
    held = set(map(tuple, report.negatives[["user_id", "pin_id"]].values.tolist()))
    assert embedded == {} and len(train) == 60 * 7
    assert not held & set(map(tuple, train[["user_id", "pin_id"]].values.tolist()))
    assert report.notes["two-tower.pooled"] == "pin features"
    assert report.notes["two-tower.pairs"] == 60 * 6 and report.notes["two-tower.validation_pairs"] == 60
    recall = report.notes["two-tower.validation_recall"]
    chosen = report.notes["two-tower.temperature"]
    assert set(recall) == {"0.1", "0.5"} and recall[f"{chosen:g}"] == max(recall.values())
    row = next(r for r in report.rows if r.model == "two-tower")
    assert set(row.ci95) == {"HR@10", "NDCG@10"} and row.queries == 60


def test_two_tower_reads_the_vectors_of_the_embedding_model_trained_in_the_same_call():
    trained = []

    def pinsage(train: pd.DataFrame) -> ItemEmbeddings:
        trained.append(len(train))
        return ring_vectors()

    model = TwoTowerLogModel(tower_cfg(temperatures=(0.2,)), pins=CATALOGUE, threads=1)  # no content: PinSage's
    report = evaluate_retrieval(ring_log(), {"pinsage": pinsage}, cfg=RetrievalEvalConfig(baselines=()),
                                pins=CATALOGUE, scorer_sources={"two-tower": model})
    assert trained == [60 * 7] and report.notes["two-tower.pooled"] == "pinsage"
    assert report.metric(LOO, "two-tower", "HR@10") >= 0.9, report.render()


def test_two_tower_without_users_of_three_items_says_so():
    two = log([(u, p, p) for u in range(1, 30) for p in (1, 2)])
    with pytest.raises(ValueError, match="three or more training items"):
        TwoTowerLogModel(tower_cfg())(two)
