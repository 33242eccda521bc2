"""Searching S faiss shards together: :class:`ShardedIndex` (search over all shards + merge), the
view the serving loader and the tuner share.

Every shard is a copy of the same *trained, empty* index (IVF coarse centroids and codebooks, or
an exact ``IDMap,Flat``) to which only that shard's pins were added with their int64 ids. A query
therefore visits the same ``nprobe`` lists in every shard, and merging the S per-shard top-k
lists gives exactly the top-k of one unsharded index (tested).

Each shard opens with ``faiss.read_index(path, faiss.IO_FLAG_MMAP)`` (maps IVF lists only) or
``IO_FLAG_MMAP_IFC`` (maps flat codes too; what :meth:`ShardedIndex.open` uses). Not both OR-ed:
faiss 1.15 then refuses IVF files ("mmap only supported for File objects").

Base install only: numpy, faiss.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from pinrec.export.index_choice import METRICS, check_vectors, normalize

from .shard_folder import read_manifest, verify_shards


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
