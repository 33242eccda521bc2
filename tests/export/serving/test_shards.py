"""Shards: stable hash, sharded == unsharded search, index.json round trip with checksums and
mmap, incremental add with duplicate and drift checks; and the facade: every public name of
``pinrec.export.serving.shards`` as the object its own module defines."""
from __future__ import annotations

import json
import subprocess
import sys

import faiss
import numpy as np
import pytest

from pinrec.export.index_choice import (
    DimensionMismatchError,
    DuplicateIdError,
    NonFiniteVectorError,
)
from pinrec.export.serving import (
    incremental_add,
    shard_fill,
    shard_folder,
    sharded_index,
)
from pinrec.export.serving import shards as shards_module
from pinrec.export.serving.shards import (
    ChecksumError,
    ShardedIndex,
    add_to_index,
    build_shards,
    check_drift,
    coarse_assign,
    imbalance,
    mean_residual,
    read_manifest,
    shard_ids,
    shard_of,
    splitmix64,
    training_sample,
    write_manifest,
    write_shard,
)

faiss.omp_set_num_threads(1)
D = 16


def clustered(n: int, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((20, D))
    return (centers[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, D)) + shift).astype(np.float32)


def trained(factory: str, metric: int, x: np.ndarray) -> faiss.Index:
    index = faiss.index_factory(D, factory, metric)
    index.train(x)
    return index


def test_splitmix64_reference_value_and_stable_shards():
    # SplitMix64 from state 0: first output 0xE220A8397B1DCDAF (Vigna's reference implementation).
    assert int(splitmix64(np.array([0]))[0]) == 0xE220A8397B1DCDAF
    ids = np.arange(10_000, dtype=np.int64) * 7919
    shards = shard_of(ids, 4)
    assert shards.dtype == np.int64 and set(shards.tolist()) == {0, 1, 2, 3}
    assert np.array_equal(shards, shard_of(ids[::-1], 4)[::-1])  # depends on the id only
    assert np.bincount(shards).min() > 2300  # roughly even
    assert shard_of(np.array([-5, 2**62]), 3).tolist() == shard_of(np.array([-5, 2**62]), 3).tolist()


def test_training_sample_depends_on_the_id_set_only():
    ids = np.random.default_rng(0).permutation(1000).astype(np.int64) + 10
    pick = training_sample(ids, 100, seed=3)
    assert len(pick) == 100 and np.all(np.diff(ids[pick]) > 0)
    perm = np.random.default_rng(1).permutation(1000)
    assert np.array_equal(ids[pick], ids[perm][training_sample(ids[perm], 100, seed=3)])
    assert not np.array_equal(ids[pick], ids[training_sample(ids, 100, seed=4)])
    assert len(training_sample(ids, 5000, seed=3)) == 1000


@pytest.mark.parametrize("factory, metric, nprobe", [
    ("IDMap,Flat", faiss.METRIC_INNER_PRODUCT, None),
    ("IVF32,Flat", faiss.METRIC_L2, 4),
    ("IVF32,SQ8", faiss.METRIC_INNER_PRODUCT, 3),
    ("IVF32_HNSW32,Flat", faiss.METRIC_INNER_PRODUCT, 5),
])
def test_sharded_search_equals_unsharded(factory, metric, nprobe):
    x = clustered(3000)
    ids = np.random.default_rng(1).permutation(10**6)[:3000].astype(np.int64)
    empty = trained(factory, metric, x)
    params = {} if nprobe is None else {"nprobe": nprobe}
    name = "l2" if metric == faiss.METRIC_L2 else "ip"
    one = ShardedIndex(build_shards(empty, x, ids, 1), name, params)
    four = ShardedIndex(build_shards(empty, x, ids, 4), name, params)
    assert four.ntotal == one.ntotal == 3000 and four.num_shards == 4
    assert sorted(four.ids().tolist()) == sorted(ids.tolist())
    q = clustered(50, seed=7)
    d1, i1 = one.search(q, 10)
    d4, i4 = four.search(q, 10)
    assert np.array_equal(i1, i4)
    np.testing.assert_allclose(d1, d4, rtol=1e-6)
    assert i4.dtype == np.int64 and set(i4.ravel().tolist()) <= set(ids.tolist())


def test_precomputed_assignment_gives_the_same_shards():
    x = clustered(2000)
    ids = np.arange(2000, dtype=np.int64) * 11
    empty = trained("IVF32,SQ8", faiss.METRIC_INNER_PRODUCT, x)
    plain = build_shards(empty, x, ids, 3)
    shared = build_shards(empty, x, ids, 3, assign=coarse_assign(empty, x))
    assert [faiss.serialize_index(s).tobytes() for s in plain] == [faiss.serialize_index(s).tobytes() for s in shared]
    assert coarse_assign(trained("IDMap,Flat", faiss.METRIC_L2, x), x) is None


def test_a_fast_scan_ivf_is_filled_through_its_own_add():
    # in a child process: the base add_core on IVF-PQ fast-scan lists corrupted the heap (SIGABRT)
    code = """
import faiss, numpy as np
from pinrec.export.serving.shards import build_shards, coarse_assign
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 8)).astype("float32")
ids = np.arange(2000, dtype=np.int64)
empty = faiss.index_factory(8, "IVF16,PQ4x4fs", faiss.METRIC_L2)
empty.train(x)
shards = build_shards(empty, x, ids, 2, assign=coarse_assign(empty, x))
assert sum(s.ntotal for s in shards) == 2000
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_k_larger_than_a_shard_pads_with_minus_one():
    x = clustered(6)
    index = ShardedIndex(build_shards(trained("IDMap,Flat", faiss.METRIC_L2, x), x, np.arange(6), 3), "l2")
    dist, ids = index.search(x[:1], 8)
    assert ids[0, :6].tolist().count(-1) == 0 and ids[0, 6:].tolist() == [-1, -1]
    assert ids[0, 0] == 0 and dist[0, 0] == pytest.approx(0.0, abs=1e-5)


def write_folder(folder, shards, metric="ip", reference=None, **extra):
    entries = [write_shard(s, folder, i, len(shards)) for i, s in enumerate(shards)]
    manifest = {"format": 1, "hash": "splitmix64", "metric": metric, "d": D, "shards": entries,
                "search_params": extra.pop("search_params", {}), "config": {"drift_threshold": 0.2},
                "drift_reference": reference or {}, **extra}
    write_manifest(folder, manifest)
    return manifest


def test_folder_round_trip_mmap_checksums(tmp_path):
    x = clustered(2000)
    ids = np.arange(2000, dtype=np.int64) + 100
    shards = build_shards(trained("IVF16,SQ8", faiss.METRIC_INNER_PRODUCT, x), x, ids, 3)
    manifest = write_folder(tmp_path, shards, search_params={"nprobe": 4})
    assert [e["file"] for e in manifest["shards"]] == [f"shard-0000{i}-of-00003.faiss" for i in range(3)]
    assert sum(e["ntotal"] for e in json.loads((tmp_path / "index.json").read_text())["shards"]) == 2000
    opened = ShardedIndex.open(tmp_path)
    assert opened.params == {"nprobe": 4} and opened.ntotal == 2000
    q = clustered(20, seed=5)
    expected = ShardedIndex(shards, "ip", {"nprobe": 4}).search(q, 5)
    assert np.array_equal(opened.search(q, 5)[1], expected[1])
    for entry in manifest["shards"]:  # each shard alone, as the issue asks
        assert faiss.read_index(str(tmp_path / entry["file"]), faiss.IO_FLAG_MMAP).ntotal == entry["ntotal"]
    with pytest.raises(DimensionMismatchError):
        opened.search(np.ones((2, D + 1), np.float32), 5)
    with pytest.raises(ValueError, match="k must be"):
        opened.search(q, 0)
    path = tmp_path / manifest["shards"][1]["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="sha256"):
        ShardedIndex.open(tmp_path)
    path.unlink()
    with pytest.raises(ChecksumError, match="missing"):
        ShardedIndex.open(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "nowhere")


def test_flat_shards_have_no_search_params():
    x = clustered(10)
    index = ShardedIndex(build_shards(trained("IDMap,Flat", faiss.METRIC_L2, x), x, np.arange(10), 2), "l2")
    with pytest.raises(ValueError, match="no search parameters"):
        index.set_search_params(nprobe=4)


def test_a_metric_that_disagrees_with_the_shards_is_refused():
    # an L2 index labelled "ip" (or anything not "l2") would merge shards keeping the farthest hits
    x = clustered(10)
    shards = build_shards(trained("IDMap,Flat", faiss.METRIC_L2, x), x, np.arange(10), 2)
    for label, message in (("ip", "disagrees with the shards"), ("cosine", "disagrees"),
                           ("euclidean", "metric must be one of"), (None, "metric must be one of")):
        with pytest.raises(ValueError, match=message):
            ShardedIndex(shards, label)
    inner = build_shards(trained("IDMap,Flat", faiss.METRIC_INNER_PRODUCT, x), x, np.arange(10), 2)
    assert ShardedIndex(inner, "cosine").metric == "cosine" and ShardedIndex(shards, "l2").metric == "l2"
    with pytest.raises(ValueError, match="search_params must be an object"):
        ShardedIndex(shards, "l2", ["nprobe", 4])


@pytest.fixture()
def ivf_folder(tmp_path):
    x = clustered(3000)
    ids = np.arange(3000, dtype=np.int64)
    empty = trained("IVF32,Flat", faiss.METRIC_L2, x[:1500])
    shards = build_shards(empty, x, ids, 2)
    reference = {"residual": mean_residual(empty, x[:1500]), "imbalance": imbalance(shards)}
    write_folder(tmp_path, shards, metric="l2", reference=reference, search_params={"nprobe": 32})
    return tmp_path


def test_incremental_add_same_distribution_needs_no_retrain(ivf_folder):
    fresh = clustered(300, seed=11)
    report = add_to_index(ivf_folder, fresh, np.arange(5000, 5300))
    assert not report.retrain and report.reason == "within threshold"
    assert report.residual_new == pytest.approx(report.residual_ref, rel=0.15)
    opened = ShardedIndex.open(ivf_folder)
    assert opened.ntotal == 3300
    _, ids = opened.search(fresh[:5], 1)
    assert ids[:, 0].tolist() == list(range(5000, 5005))  # nprobe = nlist: exact
    manifest = read_manifest(ivf_folder)
    assert manifest["added"] == 300 and manifest["drift"]["retrain"] is False
    assert max(shard_ids(opened.shards[0]).tolist() + shard_ids(opened.shards[1]).tolist()) == 5299


def test_incremental_add_of_shifted_vectors_flags_retraining(ivf_folder):
    report = add_to_index(ivf_folder, clustered(300, seed=12, shift=2.0), np.arange(6000, 6300))
    assert report.retrain and "mean residual" in report.reason
    assert report.residual_new > 1.2 * report.residual_ref


def test_imbalance_check_fires_when_one_list_grows(ivf_folder):
    index = ShardedIndex.open(ivf_folder, mmap=False)
    reference = read_manifest(ivf_folder)["drift_reference"]
    # 2000 copies of one training vector: tiny residual, but one list swells.
    pile = np.repeat(clustered(1), 2000, axis=0)
    grown = [faiss.clone_index(s) for s in index.shards]
    grown[0].add_with_ids(pile, np.arange(10_000, 12_000))
    report = check_drift(index.shards, pile, reference, 0.2, after=grown)
    assert report.retrain and "imbalance" in report.reason and report.imbalance_after > 1.2 * report.imbalance_before


def test_incremental_add_rejects_bad_input(ivf_folder):
    with pytest.raises(DuplicateIdError, match="already in the index"):
        add_to_index(ivf_folder, clustered(2), np.array([7, 99999]))
    with pytest.raises(DuplicateIdError):
        add_to_index(ivf_folder, clustered(2), np.array([99998, 99998]))
    with pytest.raises(DimensionMismatchError):
        add_to_index(ivf_folder, np.ones((2, D + 1)), np.array([99998, 99999]))
    bad = clustered(2)
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteVectorError):
        add_to_index(ivf_folder, bad, np.array([99998, 99999]))
    assert read_manifest(ivf_folder).get("added", 0) == 0  # nothing was written


def test_residual_is_measured_after_the_pre_transform():
    x = clustered(3000)
    plain = trained("IVF16,Flat", faiss.METRIC_L2, x)
    # A full-rank PCA rotation stands in for OPQ (same IndexPreTransform path, trains in ms).
    rotated = trained("PCAR16,IVF16,Flat", faiss.METRIC_L2, x)
    # The rotation is orthogonal: distances to the centroids keep their scale.
    assert mean_residual(rotated, x) == pytest.approx(mean_residual(plain, x), rel=0.25)
    assert mean_residual(rotated, x + 2.0) > 1.5 * mean_residual(rotated, x)


def test_flat_index_has_no_drift(tmp_path):
    x = clustered(100)
    shards = build_shards(trained("IDMap,Flat", faiss.METRIC_L2, x), x, np.arange(100), 2)
    write_folder(tmp_path, shards, metric="l2")
    report = add_to_index(tmp_path, clustered(5, seed=3, shift=5.0), np.arange(200, 205))
    assert not report.retrain and report.residual_new is None and "exact" in report.reason
    assert ShardedIndex.open(tmp_path).ntotal == 105


def test_an_add_killed_before_index_json_leaves_the_old_index_whole(ivf_folder, monkeypatch):
    before = read_manifest(ivf_folder)
    monkeypatch.setattr(incremental_add, "write_manifest", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # the process dies after writing the new shard files
        add_to_index(ivf_folder, clustered(300, seed=11), np.arange(5000, 5300))
    monkeypatch.undo()
    assert read_manifest(ivf_folder) == before and ShardedIndex.open(ivf_folder).ntotal == 3000  # checksums hold
    add_to_index(ivf_folder, clustered(300, seed=11), np.arange(5000, 5300))  # the add, re-run
    first = read_manifest(ivf_folder)
    add_to_index(ivf_folder, clustered(10, seed=13), np.arange(7000, 7010))
    after = read_manifest(ivf_folder)
    assert (first["generation"], after["generation"]) == (1, 2) and ShardedIndex.open(ivf_folder).ntotal == 3310
    # the files the last two index.json name (a reader may have just read the older), no others: the
    # build's own files and the killed add's leftovers are gone
    named = {e["file"] for e in first["shards"]} | {e["file"] for e in after["shards"]}
    assert {p.name for p in ivf_folder.glob("shard-*.faiss")} == named
    assert all(".g" in name for name in named)


#: Every public name shards.py defined before the split, and the module that defines it now.
HOME = {
    "splitmix64": shard_fill, "shard_of": shard_fill, "training_key": shard_fill, "training_sample": shard_fill,
    "coarse_assign": shard_fill, "fill_shard": shard_fill, "build_shards": shard_fill,
    "MANIFEST": shard_folder, "FORMAT_VERSION": shard_folder, "HASH_NAME": shard_folder,
    "ChecksumError": shard_folder, "shard_file": shard_folder, "write_shard": shard_folder,
    "write_manifest": shard_folder, "read_manifest": shard_folder, "sha256_file": shard_folder,
    "verify_shards": shard_folder,
    "ShardedIndex": sharded_index, "shard_ids": sharded_index,
    "DriftReport": incremental_add, "mean_residual": incremental_add, "imbalance": incremental_add,
    "check_drift": incremental_add, "add_to_index": incremental_add,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(shards_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(shards_module, name) is module.__dict__[name], name
        if callable(module.__dict__[name]):
            assert module.__dict__[name].__module__ == module.__name__, name


def test_the_facade_imports_with_the_base_install_only():
    code = ("import sys, pinrec.export.serving.shards\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'onnx', 'boto3', 'botocore'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
