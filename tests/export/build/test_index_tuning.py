"""Tuning: recall@k, the cheapest nprobe reaching the target, latency measurement."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from pinrec.export.build.index_tuning import (
    exact_knn,
    exact_knn_with_ties,
    exact_search,
    lower_bound,
    measure_latency,
    merged_search,
    per_query_recall,
    recall_at_k,
    tune_nprobe,
)
from pinrec.export.serving.shards import ShardedIndex

faiss.omp_set_num_threads(1)


def clustered(n: int, d: int = 16, seed: int = 0, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((clusters, d))
    return (centers[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def ivf():
    x = clustered(4000)
    index = faiss.index_factory(16, "IVF32,Flat", faiss.METRIC_L2)
    index.train(x)
    ids = np.arange(4000, dtype=np.int64) * 3
    index.add_with_ids(x, ids)
    return ShardedIndex([index], "l2"), x, ids


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
        assert set(truth[0][truth[0] >= 0].tolist()) == copies
        assert (truth[1] >= 0).sum() == 10  # no tie: the top 10 alone
        found = np.array([[999, 998, 997, 996, 995, 994, 993, 992, 991, 990], truth[1][:10]])
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


def test_tune_nprobe_returns_the_cheapest_setting_reaching_the_target(ivf):
    index, x, ids = ivf
    q = clustered(200, seed=1)
    truth = ids[exact_knn(q, x, 10, "l2")]
    tuning = tune_nprobe(index, q, truth, 10, 0.9, nlist=32)
    p = tuning.params["nprobe"]
    assert tuning.target_met and tuning.recall >= 0.9 and 1 < p <= 32
    assert index.params == {"nprobe": p}  # left set on the index
    assert lower_bound(per_query_recall(index.search(q, 10)[1], truth)) >= 0.9
    index.set_search_params(nprobe=p - 1)
    assert lower_bound(per_query_recall(index.search(q, 10)[1], truth)) < 0.9
    assert {t["nprobe"] for t in tuning.trials} >= {1, p}
    # Without the confidence margin the mean alone decides: never a larger nprobe.
    assert tune_nprobe(index, q, truth, 10, 0.9, nlist=32, z=0.0).params["nprobe"] <= p


def test_lower_bound_is_mean_minus_z_standard_errors():
    per_query = np.array([1.0, 0.8, 0.9, 0.7])
    assert lower_bound(per_query) == pytest.approx(0.85 - 1.645 * per_query.std(ddof=1) / 2)
    assert lower_bound(np.array([0.6])) == 0.6


def test_unreachable_target_reports_the_full_scan(ivf):
    index, x, ids = ivf
    q = clustered(50, seed=2)
    truth = ids[exact_knn(q, x, 10, "l2")][:, ::-1].copy()
    truth[:, 0] = -5  # one true neighbour that no search can return
    tuning = tune_nprobe(index, q, truth, 10, 1.0, nlist=32)
    assert not tuning.target_met and tuning.params == {"nprobe": 32} and tuning.recall == pytest.approx(0.9)


def test_measure_latency(ivf):
    index, _, _ = ivf
    q = clustered(300, seed=3)
    lat = measure_latency(index, q, 10, max_single=50)
    assert 0 < lat.p50_ms <= lat.p99_ms and lat.qps_1_thread > 0 and lat.qps_all_threads > 0
