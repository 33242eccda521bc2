"""Ranking metrics on hand-computed values: ranks from scores (ties, exclusions), HR, NDCG, MRR,
overlap@K, and the errors on bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pinrec.models.retrieval_metrics import (
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    overlap_at_k,
    ranks_from_scores,
)


def test_ranks_count_higher_and_tied_candidates_against_the_target():
    scores = np.array([[0.9, 0.1, 0.5, 0.3],    # target first, best -> 0
                       [0.2, 0.9, 0.5, 0.1],    # two above -> 2
                       [0.5, 0.5, 0.5, 0.1],    # two ties count against the target -> 2
                       [0.4, 1.0, -np.inf, 0.3]])  # excluded candidate never outranks -> 1
    np.testing.assert_array_equal(ranks_from_scores(scores), [0, 2, 2, 1])
    np.testing.assert_array_equal(ranks_from_scores(scores, np.array([1, 1, 3, 2])), [3, 0, 3, 3])


def test_constant_scores_get_the_worst_rank():
    assert ranks_from_scores(np.zeros((2, 100))).tolist() == [99, 99]


def test_hand_computed_metrics():
    ranks = np.array([0, 1, 4, 9, 10, 50])
    assert hit_rate_at_k(ranks, 10) == pytest.approx(4 / 6)
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 6)
    # NCF getNDCG: log(2) / log(i + 2) for 0-based position i inside the top K
    expected = (1 + math.log(2) / math.log(3) + math.log(2) / math.log(6) + math.log(2) / math.log(11)) / 6
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected)
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 11 + 1 / 51) / 6)
    assert mrr(ranks, k=5) == pytest.approx((1 + 1 / 2 + 1 / 5) / 6)


def test_perfect_ranking_scores_one():
    ranks = np.zeros(7, dtype=np.int64)
    assert hit_rate_at_k(ranks, 10) == ndcg_at_k(ranks, 10) == mrr(ranks) == 1.0


def test_overlap_at_k():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[3, 2, 9], [7, 8, 9]])
    assert overlap_at_k(a, b) == pytest.approx((2 / 3 + 0) / 2)
    assert overlap_at_k(a, a[:, ::-1]) == 1.0


@pytest.mark.parametrize("call", [
    lambda: ranks_from_scores(np.array([[np.nan, 1.0]])),
    lambda: ranks_from_scores(np.zeros(3)),
    lambda: ranks_from_scores(np.zeros((2, 3)), np.array([0, 3])),
    lambda: hit_rate_at_k(np.array([0, -1]), 10),
    lambda: hit_rate_at_k(np.array([0.5]), 10),
    lambda: hit_rate_at_k(np.array([], dtype=np.int64), 10),
    lambda: ndcg_at_k(np.array([0]), 0),
    lambda: overlap_at_k(np.zeros((2, 3)), np.zeros((2, 4))),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
