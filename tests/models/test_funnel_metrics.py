"""The funnel replay's metrics on hand-computed lists."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pinrec.models.funnel_metrics import (
    category_entropy,
    channel_shares,
    hit_at,
    mean_of,
    mean_pairwise_cosine,
    ndcg_at,
    recall_at,
)


def test_recall_counts_relevant_items_in_the_first_n_and_a_short_list_whole():
    ranked = [5, 3, 9, 1, 7]
    assert recall_at(ranked, {3, 7, 8}, 2) == pytest.approx(1 / 3)
    assert recall_at(ranked, {3, 7, 8}, 5) == pytest.approx(2 / 3)
    assert recall_at(ranked, {3, 7, 8}, 1000) == pytest.approx(2 / 3)  # shorter than n: taken whole
    assert recall_at([], {1}, 50) == 0.0


def test_hit_rate_is_any_relevant_item_in_the_top_k():
    assert hit_at([4, 2, 6], {6}, 3) == 1.0
    assert hit_at([4, 2, 6], {6}, 2) == 0.0


def test_ndcg_with_several_relevant_items_against_the_ideal_list():
    # hits at 0-based positions 1 and 3; two relevant items, ideal: positions 0 and 1
    got = ndcg_at([10, 11, 12, 13], {11, 13}, 4)
    assert got == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    # more relevant items than k: the ideal list is k hits long
    assert ndcg_at([1, 2], {1, 2, 3}, 2) == pytest.approx(1.0)
    assert ndcg_at([9, 9, 1], {9}, 3) == pytest.approx(1.0)  # a repeat gains nothing more
    assert ndcg_at([5, 6], {7}, 2) == 0.0


def test_cut_offs_and_empty_relevant_sets_are_refused():
    with pytest.raises(ValueError, match="relevant is empty"):
        recall_at([1], set(), 5)
    with pytest.raises(ValueError, match="positive integer"):
        hit_at([1], {1}, 0)
    with pytest.raises(ValueError, match="positive integer"):
        ndcg_at([1], {1}, True)


def test_channel_shares_pool_served_pins_and_name_every_channel():
    assert channel_shares(["ann", "ann", "fresh", "ann"], ("ann", "category", "fresh")) == \
        {"ann": 0.75, "category": 0.0, "fresh": 0.25}
    assert channel_shares([], ("ann",)) == {"ann": 0.0}
    with pytest.raises(ValueError, match=r"\['cf'\] are not among"):
        channel_shares(["cf"], ("ann",))


def test_mean_pairwise_cosine_leaves_out_zero_rows_and_needs_a_pair():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    # pairs: (a, b) 0, (a, c) 1/sqrt2, (b, c) 1/sqrt2
    assert mean_pairwise_cosine(v) == pytest.approx(2 / math.sqrt(2) / 3)
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 0.0]])) is None
    assert mean_pairwise_cosine(np.zeros((3, 0))) is None


def test_category_entropy_in_bits_with_none_as_a_category():
    assert category_entropy(["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert category_entropy(["a", "b", None, None]) == pytest.approx(1.5)
    assert category_entropy(["a", "a"]) == 0.0
    assert category_entropy([]) == 0.0


def test_mean_of_skips_what_was_never_measured():
    assert mean_of({"x": [1.0, 0.0], "y": []}) == {"x": 0.5}
