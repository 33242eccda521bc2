"""Which shard each pin goes to, which pins train the index, and filling the shards from one trained index.

``shard_of`` is a stable SplitMix64 hash of the int64 pin id (the Spark job applies the same function
to each partition); ``training_sample`` is a seeded sample that depends on the set of ids only.
Every shard is a copy of the same *trained, empty* index to which only that shard's pins are added
with their int64 ids, in increasing id order (the same pins always give the same file); see
:mod:`pinrec.export.serving.sharded_index` for why sharded search then equals unsharded search.

Base install only: numpy, faiss.
"""
from __future__ import annotations

import faiss
import numpy as np


def splitmix64(values: np.ndarray) -> np.ndarray:
    """(n,) uint64 SplitMix64 mix of int64 ``values`` (Steele et al., 2014), vectorised in numpy."""
    z = np.asarray(values, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, num_shards: int) -> np.ndarray:
    """(n,) int64 shard of each int64 id: ``splitmix64(id) mod num_shards``.

    Stable across processes, machines and Python versions (unlike ``hash()``), and the same
    function the Spark job applies to each partition.
    """
    return (splitmix64(ids) % np.uint64(num_shards)).astype(np.int64)


def training_key(ids: np.ndarray, seed: int) -> np.ndarray:
    """(n,) int64 >= 0 sampling key of each id: ``splitmix64(splitmix64(id) ^ seed) >> 1``."""
    mixed = splitmix64(ids) ^ np.uint64(seed % 2**64)
    return (splitmix64(mixed.view(np.int64)) >> np.uint64(1)).astype(np.int64)


def training_sample(ids: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Row positions of the ``size`` ids with the smallest :func:`training_key`, in increasing id
    order: a seeded uniform sample that depends on the set of ids only (not on row order), so the
    Spark job draws exactly the same one (``orderBy(key).limit(size)``)."""
    if size >= len(ids):
        pick = np.arange(len(ids))
    else:
        key = training_key(ids, seed)
        pick = np.argpartition(key, size - 1)[:size]
    return pick[np.argsort(ids[pick], kind="stable")]


_GPU_RESOURCES: list = []  # one faiss.StandardGpuResources per process, created on first use


def _gpu_add(index: faiss.Index, x: np.ndarray, ids: np.ndarray) -> faiss.Index | None:
    """Add on GPU 0 and copy back; ``None`` when this index type has no GPU version here
    (IDMap,Flat, an OPQ pre-transform or an HNSW coarse quantizer): the caller adds on the CPU."""
    if not isinstance(index, faiss.IndexIVF) or not isinstance(faiss.downcast_index(index.quantizer), faiss.IndexFlat):
        return None
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(faiss.StandardGpuResources())  # must outlive every GPU index made from it
    gpu = faiss.index_cpu_to_gpu(_GPU_RESOURCES[0], 0, index)
    gpu.add_with_ids(x, ids)
    return faiss.index_gpu_to_cpu(gpu)


def coarse_assign(trained: faiss.Index, vectors: np.ndarray) -> np.ndarray | None:
    """(n,) int64 inverted list of each vector under ``trained``'s coarse quantizer, as
    ``add_with_ids`` would compute it; ``None`` for indexes without one (Flat, OPQ pre-transform)."""
    index = faiss.downcast_index(trained)
    if not isinstance(index, faiss.IndexIVF):
        return None
    return index.quantizer.assign(vectors, 1).ravel()


#: IVF indexes whose lists ``IndexIVF.add_core`` fills correctly (fast-scan ones pack their codes in
#: blocks in their own ``add_with_ids``: the base ``add_core`` corrupts the heap there)
_PLAIN_IVF = (faiss.IndexIVFFlat, faiss.IndexIVFScalarQuantizer, faiss.IndexIVFPQ)


def fill_shard(trained: faiss.Index, vectors: np.ndarray, ids: np.ndarray, device: str = "cpu",
               assign: np.ndarray | None = None) -> faiss.Index:
    """A copy of the trained empty index holding ``vectors`` (n, d) with ``ids`` (n,), added in
    increasing id order so that the same pins always give the same file.

    ``assign``: (n,) precomputed :func:`coarse_assign` of ``vectors`` (shared by candidates with
    the same coarse quantizer); the vectors are then only encoded (``IndexIVF.add_core``) for the plain
    IVF layouts (:data:`_PLAIN_IVF`); others add with ``add_with_ids``.
    """
    index = faiss.clone_index(trained)
    order = np.argsort(ids, kind="stable")
    x, xid = np.ascontiguousarray(vectors[order]), np.ascontiguousarray(ids[order])
    if not x.shape[0]:
        return index
    added = _gpu_add(faiss.downcast_index(index), x, xid) if device == "gpu" else None
    if added is not None:
        return added
    ivf = faiss.downcast_index(index)
    if assign is not None and type(ivf) in _PLAIN_IVF:  # fast-scan and other packed layouts override add, not add_core
        lists = np.ascontiguousarray(assign[order], dtype=np.int64)
        ivf.add_core(x.shape[0], faiss.swig_ptr(x), faiss.swig_ptr(xid), faiss.swig_ptr(lists))
    else:
        index.add_with_ids(x, xid)
    return index


def build_shards(trained: faiss.Index, vectors: np.ndarray, ids: np.ndarray, num_shards: int,
                 device: str = "cpu", assign: np.ndarray | None = None) -> list[faiss.Index]:
    """S shards: shard s holds the pins with ``shard_of(id) == s``, all sharing ``trained``."""
    which = shard_of(ids, num_shards)
    return [fill_shard(trained, vectors[which == s], ids[which == s], device,
                       None if assign is None else assign[which == s]) for s in range(num_shards)]
