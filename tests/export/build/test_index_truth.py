"""The exact ground truth (ties with the k-th included, however many) and recall@k against it."""
from __future__ import annotations

import numpy as np
import pytest

from pinrec.export.build.index_truth import (
    exact_knn,
    exact_knn_with_ties,
    exact_search,
    merged_search,
    per_query_recall,
    recall_at_k,
)


def test_recall_at_k_counts_overlap_per_query():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [-1, -1, -1]])
    assert recall_at_k(found, truth) == pytest.approx(2 / 6)
    assert recall_at_k(truth, truth) == 1.0


def test_exact_knn_ip_and_l2():
    corpus = np.array([[1, 0], [0, 1], [3, 0]], np.float32)
    q = np.array([[1, 0.1]], np.float32)
    assert exact_knn(q, corpus, 2, "ip").tolist() == [[2, 0]]
    assert exact_knn(q, corpus, 2, "l2").tolist() == [[0, 1]]


def test_the_truth_holds_every_row_tied_with_the_kth_however_many():
    # 501 copies of row 0 and k = 10: the truth was cut at 4k = 40 of them, so an exact index that
    # returned 10 other copies scored 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit rows: by ip too the copies are the nearest
    x[500:1000] = x[0]
    q = np.vstack([x[0] + 0.01, x[1] + 0.01]).astype(np.float32)  # near the copies; near a unique row
    for metric in ("ip", "l2"):
        truth = exact_knn_with_ties(q, x, 10, metric)
        copies = {0, *range(500, 1000)}
        assert set(truth.ids[0][truth.ids[0] >= 0].tolist()) == copies
        assert (truth.ids[1] >= 0).sum() == 10  # no tie: the top 10 alone
        found = np.array([[999, 998, 997, 996, 995, 994, 993, 992, 991, 990], truth.ids[1][:10]])
        assert per_query_recall(found, truth, 10).tolist() == [1.0, 1.0]


def test_shards_searched_apart_and_merged_keep_every_tied_row():
    x = np.vstack([np.tile([[1.0, 0.0]], (300, 1)), [[0.0, 1.0]]]).astype(np.float32)
    q = np.array([[1.0, 0.0]], np.float32)
    ids = np.arange(301) * 5
    parts = []
    for rows in (np.arange(0, 301, 2), np.arange(1, 301, 2)):  # two shards of 151 and 150 rows
        scores, idx = exact_search(q, x[rows], 10, "ip")
        assert (idx[0] >= 0).sum() >= 150  # widened past 4k = 40 to the shard's last copy
        parts.append((scores, np.where(idx >= 0, ids[rows][idx], -1)))
    scores, merged = merged_search(parts, "ip")
    assert sorted(merged[0].tolist()) == ids.tolist() and merged[0][-1] == ids[300]  # all 300 copies, then the other
    assert np.all(np.diff(scores[0]) <= 0)  # best first


def test_tie_aware_truth_and_recall():
    corpus = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.5, 0.0], [0.0, 0.0]], np.float32)
    truth = exact_knn_with_ties(np.array([[1.0, 0.0]], np.float32), corpus, 2, "ip")
    assert sorted(truth.ids[0][:3].tolist()) == [0, 1, 2] and truth.ids[0][3:].tolist() == [-1] * (truth.ids.shape[1] - 3)
    assert truth.better.tolist() == [0] and truth.k == 2  # all three tie with the 2nd
    found = np.array([[2, 1]])  # two of the three tied rows, whichever two
    assert per_query_recall(found, truth, 2).tolist() == [1.0]
    assert per_query_recall(np.array([[2, 3]]), truth, 2).tolist() == [0.5]  # row 3 scores lower: a miss
    assert per_query_recall(np.array([[0, 0]]), np.array([[0, 1]])).tolist() == [0.5]  # repeats count once


def test_two_rows_tied_with_the_kth_do_not_make_up_for_a_better_one_missed():
    # l2 from the origin: row 0 (1), row 1 (4) better than the 3rd; rows 2 and 3 (9) tie with it
    corpus = np.array([[1, 0], [2, 0], [3, 0], [0, 3]], np.float32)
    truth = exact_knn_with_ties(np.zeros((1, 2), np.float32), corpus, 3, "l2")
    assert truth.better.tolist() == [2] and sorted(truth.ids[0].tolist()) == [0, 1, 2, 3]
    assert per_query_recall(np.array([[0, 2, 3]]), truth).tolist() == [pytest.approx(2 / 3)]  # was 1.0: row 1 missed
    assert per_query_recall(np.array([[0, 1, 3]]), truth).tolist() == [1.0]
    assert per_query_recall(np.array([[3, 1, 0]]), truth).tolist() == [1.0]
    with pytest.raises(ValueError, match="found at k=3, recall asked at k=2"):
        per_query_recall(np.array([[0, 1]]), truth, 2)


def test_a_corpus_row_query_finds_its_kth_without_itself():
    # ip over unnormalised rows: the query's own row (id 10) is not its nearest; the truth was cut at
    # k + 1 = 3 with the own id dropped, so it held id 13, worse than the 2nd, and [12, 13] scored 1.0
    corpus = np.array([[1, 0], [3, 0], [2, 0], [1.5, 0], [0, 1]], np.float32)
    ids = np.array([10, 11, 12, 13, 14])
    truth = exact_knn_with_ties(corpus[:1], corpus, 2, "ip", ids=ids, own=ids[:1])
    assert truth.ids[0][truth.ids[0] >= 0].tolist() == [11, 12] and truth.better.tolist() == [1]
    assert per_query_recall(np.array([[12, 13]]), truth).tolist() == [0.5]
    # l2: the own row is its nearest and is left out; the 2nd without it ties two rows
    truth = exact_knn_with_ties(corpus[2:3], corpus, 2, "l2", ids=ids, own=ids[2:3])
    assert sorted(truth.ids[0][truth.ids[0] >= 0].tolist()) == [10, 11, 13] and truth.better.tolist() == [1]
    assert per_query_recall(np.array([[13, 11]]), truth).tolist() == [1.0]
    assert per_query_recall(np.array([[10, 11]]), truth).tolist() == [0.5]  # 13 (0.25) missed
    with pytest.raises(ValueError, match="no neighbour"):
        exact_knn_with_ties(corpus[:1], corpus[:1], 2, "ip", own=np.array([0]))
