"""Sharded FAISS indexes: stable pin -> shard hash, filling shards from one trained index, the
``index.json`` folder format, and :class:`ShardedIndex` (search over all shards + merge).

Every shard is a copy of the same *trained, empty* index (IVF coarse centroids and codebooks, or
an exact ``IDMap,Flat``) to which only that shard's pins were added with their int64 ids. A query
therefore visits the same ``nprobe`` lists in every shard, and merging the S per-shard top-k
lists gives exactly the top-k of one unsharded index (tested).

Folder layout::

    index.json                       factory, metric, d, search params, shards (file, ntotal,
                                     sha256), measured recall / latency / memory, drift reference
    shard-00000-of-00004.faiss ...   one faiss index per shard, holding faiss's default search
                                     parameters (the tuned ones are in index.json)

Each shard opens with ``faiss.read_index(path, faiss.IO_FLAG_MMAP)`` (maps IVF lists only) or
``IO_FLAG_MMAP_IFC`` (maps flat codes too; what :meth:`ShardedIndex.open` uses). Not both OR-ed:
faiss 1.15 then refuses IVF files ("mmap only supported for File objects").
Paths are local (or a mounted shared file system): mmap needs a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from pinrec.export.index_choice import (
    METRICS,
    DuplicateIdError,
    EmptyCorpusError,
    check_ids,
    check_vectors,
    normalize,
)

MANIFEST = "index.json"
FORMAT_VERSION = 1
HASH_NAME = "splitmix64"


class ChecksumError(ValueError):
    """A shard file does not match the sha256 recorded in index.json."""


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


def shard_file(shard: int, num_shards: int) -> str:
    return f"shard-{shard:05d}-of-{num_shards:05d}.faiss"


def write_shard(index: faiss.Index, folder: str | Path, shard: int, num_shards: int, generation: int = 0) -> dict:
    """Write one shard atomically; returns its index.json entry (file, ntotal, bytes, sha256). Written
    by faiss straight to a temporary file (no in-memory copy of a shard that may be gigabytes), then
    hashed from disk and renamed into place."""
    name = shard_file(shard, num_shards)
    if generation:  # an incremental add writes new names: index.json switches to them in one rename
        name = name.removesuffix(".faiss") + f".g{generation}.faiss"
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    entry = {"shard": shard, "file": name, "ntotal": int(index.ntotal), "bytes": tmp.stat().st_size,
             "sha256": sha256_file(tmp)}
    os.replace(tmp, path)
    return entry


def write_manifest(folder: str | Path, manifest: dict) -> None:
    """Write index.json atomically (after the shards it describes)."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not an index folder")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION or manifest.get("hash") != HASH_NAME:
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} / hash {manifest.get('hash')!r}")
    return manifest


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_shards(folder: str | Path, manifest: dict) -> None:
    """Raise :class:`ChecksumError` unless every shard file matches index.json."""
    for entry in manifest["shards"]:
        path = Path(folder) / entry["file"]
        if not path.is_file():
            raise ChecksumError(f"{path} is listed in index.json but missing")
        if (digest := sha256_file(path)) != entry["sha256"]:
            raise ChecksumError(f"{path}: sha256 {digest} != {entry['sha256']} recorded in index.json")


def shard_ids(index: faiss.Index) -> np.ndarray:
    """All ids stored in one shard (IDMap or IVF)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = faiss.extract_index_ivf(index).invlists
    out = []
    for lst in range(lists.nlist):
        size = lists.list_size(lst)
        if size:
            ptr = lists.get_ids(lst)
            out.append(faiss.rev_swig_ptr(ptr, size).copy())
            lists.release_ids(lst, ptr)
    return np.concatenate(out).astype(np.int64) if out else np.empty(0, np.int64)


class ShardedIndex:
    r"""S faiss shards searched together; the view the serving loader and the tuner share.

    Args:
        shards (list[faiss.Index]): indexes with the same trained structure, disjoint ids.
        metric (str): ``ip``, ``l2`` or ``cosine`` (queries are L2-normalised before search).
        params (dict[str, int], optional): search parameters to apply (``nprobe``,
            ``quantizer_efSearch``). (default: :obj:`None`)

    Shapes: ``search(queries (B, d) float32, k) -> (scores (B, k) float32, ids (B, k) int64)``,
    best first (highest inner product / smallest squared L2); ids are -1 past ``ntotal``.
    """

    def __init__(self, shards: list[faiss.Index], metric: str, params: dict[str, int] | None = None) -> None:
        if not shards:
            raise ValueError("a ShardedIndex needs at least one shard")
        if len({s.d for s in shards}) != 1:
            raise ValueError(f"shards disagree on d: {sorted({s.d for s in shards})}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        # the merge keeps the highest scores unless l2: a label that disagrees with the shards serves the farthest
        want = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if any(s.metric_type != want for s in shards):
            raise ValueError(f"metric {metric!r} disagrees with the shards' faiss metric types "
                             f"{sorted({int(s.metric_type) for s in shards})} (METRIC_INNER_PRODUCT=0, METRIC_L2=1)")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"search_params must be an object of name -> int, got {type(params).__name__}")
        self.shards, self.metric, self.d = shards, metric, shards[0].d
        self.params: dict[str, int] = {}
        self.manifest: dict | None = None
        if params:
            self.set_search_params(**params)

    @classmethod
    def open(cls, folder: str | Path, mmap: bool = True, verify: bool = True) -> ShardedIndex:
        """Open an index folder: check index.json and every shard's sha256 (``verify``), read
        the shards memory-mapped (``mmap``) and apply the tuned search parameters."""
        manifest = read_manifest(folder)
        if verify:
            verify_shards(folder, manifest)
        flag = faiss.IO_FLAG_MMAP_IFC if mmap else 0  # not | IO_FLAG_MMAP: IVF shards then fail to open
        shards = [faiss.read_index(str(Path(folder) / e["file"]), flag) for e in manifest["shards"]]
        for shard, entry in zip(shards, manifest["shards"]):
            if shard.ntotal != entry["ntotal"] or shard.d != manifest["d"]:
                raise ValueError(f"{entry['file']}: ntotal={shard.ntotal}, d={shard.d} disagree with index.json")
        out = cls(shards, manifest["metric"], manifest.get("search_params"))
        out.manifest = manifest
        return out

    @property
    def ntotal(self) -> int:
        return int(sum(s.ntotal for s in self.shards))

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    def set_search_params(self, **params: int) -> None:
        """Set ``nprobe`` / ``quantizer_efSearch`` (faiss ParameterSpace names) on every shard."""
        if params and not isinstance(faiss.downcast_index(self.shards[0]), (faiss.IndexIVF, faiss.IndexPreTransform)):
            raise ValueError(f"an exact index has no search parameters, got {sorted(params)}")
        space = faiss.ParameterSpace()
        for name, value in params.items():
            for shard in self.shards:
                space.set_index_parameter(shard, name, int(value))
        self.params.update({k: int(v) for k, v in params.items()})

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.d, "queries")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if self.metric == "cosine":
            q = normalize(q)
        if len(self.shards) == 1:
            return self.shards[0].search(q, k)
        parts = [s.search(q, k) for s in self.shards]
        dist = np.stack([p[0] for p in parts])
        ids = np.stack([p[1] for p in parts])
        return faiss.merge_knn_results(dist, ids, keep_max=self.metric != "l2")

    def ids(self) -> np.ndarray:
        """Every id in the index (shard by shard)."""
        return np.concatenate([shard_ids(s) for s in self.shards])

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(shards={self.num_shards}, ntotal={self.ntotal}, d={self.d}, "
                f"metric={self.metric!r}, params={self.params})")



# --- incremental add and drift -------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    """Whether the trained quantizer still fits the data (``None`` values: exact index).

    residual_*: mean squared distance of vectors to their nearest coarse centroid (in the space
    the quantizer sees, after OPQ), for the training sample (``ref``) and the new vectors;
    imbalance_*: the inverted lists' imbalance factor ``nlist * sum(size^2) / N^2`` (1 = even)
    at build time and after the add. ``retrain`` when either grew by more than ``threshold``.
    """

    residual_ref: float | None
    residual_new: float | None
    imbalance_before: float | None
    imbalance_after: float | None
    threshold: float
    retrain: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def mean_residual(index: faiss.Index, x: np.ndarray) -> float | None:
    """Mean squared L2 distance of ``x`` (n, d) to its assigned coarse centroid; ``None`` for Flat."""
    ivf = _ivf(index)
    if ivf is None or x.shape[0] == 0:
        return None
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        x = _apply_chain(index, x)
    _, assign = ivf.quantizer.search(x, 1)
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    return float(((x - centroids[assign[:, 0]]) ** 2).sum(axis=1).mean())


def _apply_chain(index: faiss.IndexPreTransform, x: np.ndarray) -> np.ndarray:
    for i in range(index.chain.size()):
        x = index.chain.at(i).apply(x)
    return x


def imbalance(shards: list[faiss.Index]) -> float | None:
    """Imbalance factor of the inverted lists of all shards together (``None`` for Flat)."""
    ivfs = [_ivf(s) for s in shards]
    if ivfs[0] is None:
        return None
    sizes = np.zeros(ivfs[0].nlist, dtype=np.float64)
    for ivf in ivfs:
        sizes += [ivf.invlists.list_size(i) for i in range(ivf.nlist)]
    total = sizes.sum()
    return float(ivfs[0].nlist * (sizes**2).sum() / total**2) if total else None


def check_drift(shards: list[faiss.Index], new: np.ndarray, reference: dict, threshold: float,
                after: list[faiss.Index] | None = None) -> DriftReport:
    """Compare ``new`` vectors with the training-time ``reference`` (``residual``, ``imbalance``
    from index.json); ``after``: the shards once ``new`` is added (imbalance after the add)."""
    res_new = mean_residual(shards[0], new)
    if res_new is None:
        return DriftReport(None, None, None, None, threshold, False, "exact index: no quantizer to retrain")
    res_ref, imb_ref = reference["residual"], reference["imbalance"]
    imb_after = imbalance(after if after is not None else shards)
    reasons = []
    if res_new > res_ref * (1 + threshold):
        reasons.append(f"mean residual {res_new:.4g} > {1 + threshold:g} x training {res_ref:.4g}")
    if imb_after is not None and imb_after > imb_ref * (1 + threshold):
        reasons.append(f"list imbalance {imb_after:.3f} > {1 + threshold:g} x build-time {imb_ref:.3f}")
    return DriftReport(res_ref, res_new, imb_ref, imb_after, threshold, bool(reasons),
                       "; ".join(reasons) or "within threshold")


def add_to_index(folder: str | Path, vectors: np.ndarray, ids: np.ndarray,
                 drift_threshold: float | None = None) -> DriftReport:
    """Add fresh pins to an index folder without retraining; rewrite the shards they hash to
    and index.json (ntotal, checksums, ``added`` count, last drift report). The rewritten shards get
    new file names (``.g<generation>``) and index.json switches to them in one atomic rename, so a
    crash at any point leaves a whole index (old or new) and a reader never mixes the two; files
    neither the new nor the previous index.json names are removed.

    Raises :class:`DuplicateIdError` for an id already indexed, and the input errors of
    :func:`pinrec.export.index_choice.check_vectors`. ``drift_threshold`` defaults to the build's.
    """
    manifest = read_manifest(folder)
    verify_shards(folder, manifest)
    x = check_vectors(vectors, manifest["d"])
    if x.shape[0] == 0:
        raise EmptyCorpusError("no vectors to add")
    xid = check_ids(ids, x.shape[0])
    if manifest["metric"] == "cosine":
        x = normalize(x)
    shards = [faiss.read_index(str(Path(folder) / e["file"])) for e in manifest["shards"]]
    clash = np.intersect1d(np.concatenate([shard_ids(s) for s in shards]), xid)
    if clash.size:
        raise DuplicateIdError(f"{clash.size} id(s) are already in the index (e.g. {clash[:5].tolist()})")
    which = shard_of(xid, len(shards))
    touched = sorted(set(which.tolist()))
    for s in touched:
        order = np.argsort(xid[which == s], kind="stable")
        shards[s].add_with_ids(np.ascontiguousarray(x[which == s][order]), np.ascontiguousarray(xid[which == s][order]))
    threshold = drift_threshold if drift_threshold is not None else manifest["config"]["drift_threshold"]
    report = check_drift(shards, x, manifest["drift_reference"], threshold)
    before = {e["file"] for e in manifest["shards"]}
    generation = int(manifest.get("generation", 0)) + 1
    entries = list(manifest["shards"])
    for s in touched:  # new files beside the old ones: a crash here leaves the old index.json and files whole
        entries[s] = write_shard(shards[s], folder, s, len(shards), generation)
    manifest.update(shards=entries, ntotal=int(sum(e["ntotal"] for e in entries)), generation=generation,
                    added=int(manifest.get("added", 0)) + int(x.shape[0]), drift=report.to_dict())
    write_manifest(folder, manifest)  # the switch: one atomic rename
    keep = before | {e["file"] for e in entries}  # the previous files too: a reader may have just read the old index.json
    for stale in Path(folder).glob("shard-*.faiss"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return report
