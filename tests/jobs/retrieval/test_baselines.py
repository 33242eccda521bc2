"""Tests of :mod:`pinrec.jobs.retrieval.baselines`: embedding means with recency weights, popularity counts, ALS and
BPR of ``implicit`` on a clustered log, and the ItemEmbeddings constructors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.retrieval.baselines import (
    EmbeddingScorer,
    ImplicitScorer,
    ItemEmbeddings,
    PopularityScorer,
)
from pinrec.jobs.retrieval.retrieval_protocols import leave_one_out
from pinrec.models.retrieval_metrics import hit_rate_at_k, ranks_from_scores
from tests.support.logs import clustered_log, log_of


def test_embedding_scorer_means_and_recency_weights():
    train = log_of([(1, 10, 0), (1, 11, 48)])  # pin 10 is two days older than pin 11
    emb = ItemEmbeddings.of({10: np.array([1.0, 0.0]), 11: np.array([0.0, 1.0]), 12: np.array([1.0, 1.0])})
    plain = EmbeddingScorer(emb, train).score(np.array([1]), np.array([[10, 11, 99]]))
    np.testing.assert_allclose(plain, [[0.5, 0.5, -np.inf]])  # pin 99 has no embedding
    recent = EmbeddingScorer(emb, train, half_life_days=1.0).score(np.array([1]), np.array([[10, 11]]))
    np.testing.assert_allclose(recent, [[0.25 / 1.25, 1 / 1.25]])


def ranks_of(scorer, split) -> np.ndarray:
    users, candidates = split.candidates()
    return ranks_from_scores(scorer.score(users, candidates))


def test_matrix_factorisations_learn_the_clusters():
    split = leave_one_out(clustered_log(users_per_group=4), 99, seed=1)
    popularity = PopularityScorer(split.train)
    als = ImplicitScorer("als", split.train, split.catalogue, factors=12, random_state=1, num_threads=1)
    bpr = ImplicitScorer("bpr", split.train, split.catalogue, factors=12, iterations=200, learning_rate=0.05,
                         random_state=1, num_threads=1)
    assert hit_rate_at_k(ranks_of(popularity, split), 10) < 0.3  # 10 of 100 candidates: chance is 0.1
    assert hit_rate_at_k(ranks_of(als, split), 10) > 0.9 and hit_rate_at_k(ranks_of(bpr, split), 10) > 0.9
    assert als.item_embeddings().vectors.shape == (120, 12) and bpr.item_embeddings().vectors.shape == (120, 12)
    with pytest.raises(ValueError, match="catalogue"):
        ImplicitScorer("als", split.train, split.catalogue[:50], factors=4)
    with pytest.raises(ValueError, match="unknown implicit model"):
        ImplicitScorer("svd", split.train, split.catalogue)


def test_popularity_counts_distinct_training_users():
    train = log_of([(1, 1, 0), (1, 1, 5), (2, 1, 0), (2, 2, 1), (3, 2, 0)])  # user 1 twice on pin 1
    assert PopularityScorer(train).score(np.array([1, 2]), np.array([[1, 2, 9], [9, 2, 1]])).tolist() == [
        [2.0, 2.0, 0.0], [0.0, 2.0, 2.0]]


def test_item_embeddings_constructors_and_errors():
    emb = ItemEmbeddings.of((np.array([5, 3]), np.array([[1.0, 0.0], [0.0, 2.0]])))
    vectors, found = emb.lookup(np.array([[3, 4], [5, 5]]))
    assert found.tolist() == [[True, False], [True, True]]
    np.testing.assert_allclose(vectors[0], [[0.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(emb.normalized().vectors, [[1.0, 0.0], [0.0, 1.0]])
    for bad in ({}, (np.array([1, 1]), np.zeros((2, 2))), (np.array([1]), np.array([[np.nan]])), [1, 2],
                (np.zeros(0), np.zeros((0, 3)))):
        with pytest.raises(ValueError):
            ItemEmbeddings.of(bad)


def test_ease_equals_per_item_ridge_regression_and_scores_co_consumed_items():
    from pinrec.jobs.retrieval.baselines import BaselineTooLarge, EaseScorer

    t = pd.Timestamp("2020-01-01", tz="UTC")
    pairs = [(1, 10), (1, 11), (2, 10), (2, 11), (2, 12), (3, 12), (3, 13), (4, 10), (4, 13)]
    train = pd.DataFrame({"user_id": [u for u, _ in pairs], "pin_id": [p for _, p in pairs], "ts": t})
    ease = EaseScorer(train, np.array([10, 11, 12, 13, 14]), lam=2.0)
    x = ease.x.toarray()  # X is kept sparse
    assert x.shape == (4, 5) and x.sum() == len(pairs)
    for j in range(5):  # Steck's constraint diag(B) = 0 makes column j a ridge regression on the other items
        rest = [i for i in range(5) if i != j]
        a = x[:, rest]
        want = np.linalg.solve(a.T @ a + 2.0 * np.eye(4), a.T @ x[:, j])
        np.testing.assert_allclose(ease.weights[rest, j], want, atol=1e-10)
        assert ease.weights[j, j] == 0.0
    scores = ease.score(np.array([3]), np.array([[10, 11, 14]]))
    # user 3 (12, 13): 10 is co-consumed with both (users 2, 4), 11 with 12 only, 14 never
    assert scores[0, 0] > scores[0, 1] > scores[0, 2] == 0.0
    with pytest.raises(ValueError, match="lambda must be > 0"):
        EaseScorer(train, np.array([10, 11, 12, 13]), lam=0.0)
    with pytest.raises(BaselineTooLarge, match=r"EASE: 30 items exceed max_items=20 \(two dense N x N float64"):
        EaseScorer(train, np.arange(10, 40), max_items=20)


def test_a_baseline_too_large_for_the_dataset_is_skipped_with_a_note_and_the_others_reported():
    from pinrec.jobs.retrieval.baselines import EASE_MAX_ITEMS
    from pinrec.jobs.retrieval.config import RetrievalEvalConfig
    from pinrec.jobs.retrieval.retrieval_eval import evaluate_retrieval

    t = pd.Timestamp("2020-01-01", tz="UTC")
    log = pd.DataFrame({"user_id": np.repeat(np.arange(1, 21), 3), "pin_id": np.tile([10, 11, 12], 20),
                        "ts": [t + pd.Timedelta(minutes=i) for i in range(60)]})
    report = evaluate_retrieval(log, cfg=RetrievalEvalConfig(baselines=("popularity", "ease"), num_negatives=5, k=3),
                                pins=np.arange(1, EASE_MAX_ITEMS + 2))  # a catalogue one item too large for EASE
    assert [r.model for r in report.rows] == ["popularity"]
    assert report.notes["ease.skipped"].startswith(f"EASE: {EASE_MAX_ITEMS + 1:,} items exceed max_items")
