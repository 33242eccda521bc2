"""Index choice: config validation, the rules per (N, d, budget), input checks."""
from __future__ import annotations

import numpy as np
import pytest

from pinrec.export.index_choice import (
    DimensionMismatchError,
    DuplicateIdError,
    EmptyCorpusError,
    IndexConfig,
    IndexInputError,
    MemoryBudgetError,
    NonFiniteVectorError,
    check_ids,
    check_vectors,
    choose_index,
    default_nlist,
    normalize,
    parse_factory,
)


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "dot"}, "metric"), ({"device": "tpu"}, "device"), ({"k": 0}, "k"),
    ({"target_recall": 1.5}, "target_recall"), ({"shards": 0}, "shards"), ({"memory_budget_mb": 0}, "budget"),
    ({"drift_threshold": 0}, "drift"), ({"factory": "HNSW32"}, "cannot be sharded"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IndexConfig(**kwargs)


def test_parse_factory():
    assert parse_factory("IDMap,Flat") == ("flat", 0, "Flat")
    assert parse_factory("IVF1024,SQ8") == ("ivf", 1024, "SQ8")
    assert parse_factory("OPQ16,IVF4096,PQ16") == ("ivf", 4096, "PQ16")
    assert parse_factory("IVF65536_HNSW32,SQ8") == ("ivf", 65536, "SQ8")


def test_default_nlist_is_4_sqrt_n_with_39_points_per_list():
    assert default_nlist(1_000_000) == 4096
    assert default_nlist(200_000) == 2048
    assert default_nlist(10_000) == 256  # 512 lists would have < 39 points each
    assert default_nlist(600) == 0  # not even 16 lists


def test_small_corpus_is_exact():
    (plan,) = choose_index(5_000, 64, IndexConfig())
    assert (plan.factory, plan.kind) == ("IDMap,Flat", "flat")


def test_one_million_by_64_at_200mb_gets_scalar_quantisers_and_no_flat():
    plans = choose_index(1_000_000, 64, IndexConfig(memory_budget_mb=200))
    # IVF-Flat (1M x (256 + 8) bytes) and exact Flat do not fit 200 MB.
    assert [p.factory for p in plans] == ["IVF4096,SQfp16", "IVF4096,SQ8"]
    assert all(p.estimated_bytes <= 200 * 2**20 for p in plans)


def test_mid_corpus_offers_ivf_flat_and_exact():
    plans = choose_index(200_000, 128, IndexConfig(memory_budget_mb=200, candidates=1))
    assert [p.factory for p in plans] == ["IVF2048,Flat", "IDMap,Flat"]


def test_tight_budget_falls_to_opq_pq_and_huge_n_gets_hnsw_quantizer():
    plans = choose_index(1_000_000, 64, IndexConfig(memory_budget_mb=50, candidates=1))
    assert [p.factory for p in plans] == ["OPQ32,IVF4096,PQ32"]
    plans = choose_index(100_000_000, 32, IndexConfig(memory_budget_mb=3000, candidates=1, opq=False))
    assert plans[0].factory == "IVF32768_HNSW32,PQ16"


def test_nothing_fits_and_empty_corpus():
    with pytest.raises(MemoryBudgetError):
        choose_index(1_000_000, 64, IndexConfig(memory_budget_mb=1))
    with pytest.raises(EmptyCorpusError):
        choose_index(0, 64, IndexConfig())


def test_factory_override_and_corpus_smaller_than_nlist():
    (plan,) = choose_index(5_000, 16, IndexConfig(factory="IVF64,SQ8"))
    assert (plan.kind, plan.nlist, plan.code) == ("ivf", 64, "SQ8")
    with pytest.raises(IndexInputError, match="nlist=64"):
        choose_index(50, 16, IndexConfig(factory="IVF64,SQ8"))


def test_check_vectors_and_ids():
    x = np.ones((3, 4))
    assert check_vectors(x, 4).dtype == np.float32
    with pytest.raises(DimensionMismatchError):
        check_vectors(x, 5)
    with pytest.raises(DimensionMismatchError):
        check_vectors(np.ones(4))
    x[1, 2] = np.nan
    with pytest.raises(NonFiniteVectorError, match=r"\[1\]"):
        check_vectors(x)
    x[1, 2] = np.inf
    with pytest.raises(NonFiniteVectorError):
        check_vectors(x)
    assert check_ids([5, 3, 9], 3).dtype == np.int64
    with pytest.raises(DuplicateIdError, match=r"\[3\]"):
        check_ids([3, 5, 3], 3)
    with pytest.raises(IndexInputError):
        check_ids([1, 2], 3)
    with pytest.raises(IndexInputError):
        check_ids([1, -1, 2], 3)
    assert issubclass(DuplicateIdError, ValueError)


def test_normalize_is_exact_for_finite_float32_at_any_scale():
    # the norm was computed in float32: 3e19 squared overflowed (the row became [0, 0]) and 3e-23 squared
    # underflowed (the row came out as [0.567, 0.756], longer than 1)
    x = np.array([[3e19, 4e19], [3e-23, 4e-23], [3.0, 4.0], [0.0, 0.0], [3e38, -3e38]], np.float32)
    out = normalize(x)
    assert out.dtype == np.float32 and out.shape == (5, 2)
    np.testing.assert_allclose(out[:4], [[0.6, 0.8], [0.6, 0.8], [0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(out[4], [2 ** -0.5, -(2 ** -0.5)], rtol=1e-6)


def test_the_size_estimate_counts_each_shards_trained_parts_and_the_l2_pq_tables():
    from pinrec.export.index_choice import ivf_bytes

    one = ivf_bytes(10_000, 16, 64, 8, code="PQ8")
    four = ivf_bytes(10_000, 16, 64, 8, code="PQ8", shards=4)
    assert four - one == 3 * (one - 10_000 * (8 + 8))  # codes + ids once, the trained parts per shard
    # with l2, faiss precomputes nlist x M x 256 floats per shard when it opens it (2 MiB here for 4 shards)
    assert ivf_bytes(10_000, 16, 64, 8, code="PQ8", shards=4, metric="l2") - four == 4 * 64 * 8 * 256 * 4


def test_a_build_where_no_measured_index_fits_the_budget_is_refused(tmp_path):
    from pinrec.export.build.ann_build import build_index
    from pinrec.export.index_choice import MemoryBudgetError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 8)).astype(np.float32)
    # 8 shards of 1000 vectors under 20 KB: an IVF16,SQ8 measured 23 KB had been shipped as fitting
    with pytest.raises(MemoryBudgetError, match="memory_budget_mb"):
        build_index(x, np.arange(1000), x[:50] + 0.01, IndexConfig(shards=8, exact_below=0, device="cpu",
                                                                   memory_budget_mb=20_971 / 2**20), tmp_path)


def test_the_measured_size_includes_the_l2_pq_lookup_tables(tmp_path):
    from pinrec.export.build.ann_build import build_index

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    report = build_index(x, np.arange(1000), x[:20] + 0.01, IndexConfig(
        factory="IVF16,PQ4x4", metric="l2", shards=2, device="cpu", latency_budget_ms=1000), tmp_path)
    tables = 2 * 16 * 4 * 16 * 4  # nlist x M x 2^bits floats per shard, recomputed when a shard is opened
    files = sum(e["bytes"] for e in report.manifest["shards"])
    assert report.manifest["measured"]["memory_bytes"] == files + tables
