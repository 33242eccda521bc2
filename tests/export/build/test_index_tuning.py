"""Tuning: recall@k, the cheapest nprobe reaching the target, latency measurement."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from pinrec.export.build.index_truth import exact_knn, per_query_recall
from pinrec.export.build.index_tuning import lower_bound, measure_latency, tune_nprobe
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
