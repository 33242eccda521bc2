"""Which FAISS index to build for N vectors of dimension d: the configuration, the input checks
and the choice rules (pure functions, no I/O, no measurement).

The rules follow autofaiss's shape (exact search for small N; an inverted file with about
``4 * sqrt(N)`` lists otherwise, with an HNSW coarse quantizer once the lists are many; product
quantisation when nothing finer fits the memory budget) but only *propose* candidates: the
builder (:mod:`pinrec.export.build.ann_build`) measures recall@k and latency of each on held-out queries and
keeps the fastest one that reaches the target.

Every candidate shares a trained structure across shards (issue #5): exact ``IDMap,Flat`` (no
training) or an IVF whose coarse centroids and codebooks are trained once. A top-level HNSW graph
cannot be shared — each shard would need its own graph, and searching S graphs is S times the
work — so pinrec never builds one; HNSW appears only as the coarse quantizer of an IVF
(``IVF{nlist}_HNSW32,...``), which every shard carries identically.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np

from pinrec.schemas.bounds import bounded, check_bounds

Metric = Literal["ip", "l2", "cosine"]
Device = Literal["auto", "cpu", "gpu"]
METRICS: tuple[str, ...] = get_args(Metric)
DEVICES: tuple[str, ...] = get_args(Device)

#: Vector codes of the inverted lists, most accurate first: (name, bytes per vector as a function of d).
_CODES = (("Flat", lambda d: 4 * d), ("SQfp16", lambda d: 2 * d), ("SQ8", lambda d: d))
_ID_BYTES = 8  # one int64 id per stored vector (IVF lists or IDMap)
_LIST_OVERHEAD = 48  # two std::vector headers per inverted list
_MIN_POINTS_PER_LIST = 39  # below this faiss's k-means warns that it cannot train well
_MIN_LISTS = 16


class IndexInputError(ValueError):
    """Vectors, ids or queries handed to an index build or search are unusable."""


class NonFiniteVectorError(IndexInputError):
    """A vector holds NaN or +-inf."""


class DimensionMismatchError(IndexInputError):
    """Vectors are not (n, d) with the expected d."""


class DuplicateIdError(IndexInputError):
    """The same pin id appears twice (in the input, or in the input and the index)."""


class EmptyCorpusError(IndexInputError):
    """There is nothing to index."""


class MemoryBudgetError(ValueError):
    """No index fits ``memory_budget_mb``."""


@dataclass(frozen=True)
class IndexConfig:
    """How to build the ANN index over pin embeddings.

    metric: ``ip`` (inner product), ``l2``, or ``cosine`` (vectors and queries are L2-normalised,
      then inner product). k: neighbours per query for recall@k. target_recall: the tuning stops at
      the cheapest search setting whose recall@k on held-out queries reaches this.
    memory_budget_mb: upper bound on the index size (all shards); candidates that do not fit are
      never built. latency_budget_ms: p99 single-query latency (1 thread) a choice must meet.
    shards: S, shard files (pin -> shard by a stable hash of the id). device: ``auto`` (GPU when
      faiss sees one), ``cpu`` or ``gpu`` for training and adding.
    drift_threshold: after an incremental add, retraining is advised when the new vectors' mean
      squared distance to their centroid, or the inverted lists' imbalance factor, grows by more
      than this fraction over the values at training time.
    train_sample: vectors used to train (0: ``40 * nlist``; at least ``nlist``); capped at N. exact_below: corpora
      smaller than this are always indexed exactly. candidates: how many IVF codes that fit the
      budget are built and measured. opq: rotate with OPQ before product quantisation.
    hnsw_quantizer_from: nlist from which the coarse quantizer is an HNSW graph.
    factory: a faiss factory string that bypasses the choice (``IDMap,Flat`` or ``IVF...``).
    seed: k-means / sampling seed. embedding_version: recorded in index.json.
    """

    #: pydantic (not imported here) validates this section strictly when it is a field of the pipeline's config
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid", "allow_inf_nan": False, "coerce_numbers_to_str": True}

    metric: Metric = "ip"
    k: int = bounded(10, ge=1)
    target_recall: float = bounded(0.95, gt=0.0, le=1.0)
    memory_budget_mb: float = bounded(200.0, gt=0.0)
    latency_budget_ms: float = bounded(10.0, gt=0.0)
    shards: int = bounded(1, ge=1)
    device: Device = "auto"
    drift_threshold: float = bounded(0.2, gt=0.0)
    train_sample: int = bounded(0, ge=0)
    exact_below: int = bounded(10_000, ge=0)
    candidates: int = bounded(2, ge=1)
    opq: bool = True
    hnsw_quantizer_from: int = bounded(1 << 14, ge=1)
    factory: str | None = None
    seed: int = bounded(7, ge=0)
    embedding_version: str = "unknown"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"index.metric must be one of {METRICS}, got {self.metric!r}")
        if self.device not in DEVICES:
            raise ValueError(f"index.device must be one of {DEVICES}, got {self.device!r}")
        check_bounds(self, "index")
        if self.factory is not None:
            parse_factory(self.factory)

    @property
    def faiss_metric(self) -> str:
        """The metric faiss computes: cosine is inner product over normalised vectors."""
        return "l2" if self.metric == "l2" else "ip"


@dataclass(frozen=True)
class IndexPlan:
    """One index to build: a faiss factory string and what the builder needs to know about it.

    kind: ``flat`` (exact) or ``ivf``; nlist: inverted lists (0 for flat); code: the list code
    (``Flat``, ``SQ8``, ``PQ16``...); estimated_bytes: size of all shards together; reason: why.
    """

    factory: str
    kind: str
    d: int
    nlist: int
    code: str
    estimated_bytes: int
    reason: str

    @property
    def tunable(self) -> bool:
        return self.kind == "ivf"


_IVF = re.compile(r"^(?:OPQ(\d+)(?:_(\d+))?,)?IVF(\d+)(?:_HNSW(\d+))?,(.+)$")


def parse_factory(factory: str) -> tuple[str, int, str]:
    """(kind, nlist, code) of a factory string pinrec can shard; ``ValueError`` for any other."""
    if factory == "IDMap,Flat":
        return "flat", 0, "Flat"
    m = _IVF.match(factory)
    if not m:
        raise ValueError(
            f"index.factory {factory!r} cannot be sharded: use 'IDMap,Flat' or an IVF factory "
            "('IVF1024,SQ8', 'OPQ16,IVF4096,PQ16', 'IVF65536_HNSW32,SQ8'); a top-level HNSW graph "
            "cannot share one trained structure across shards")
    return "ivf", int(m.group(3)), m.group(5)


def check_vectors(x, d: int | None = None, name: str = "vectors") -> np.ndarray:
    """``x`` as a C-contiguous (n, d) float32 array; raises on a wrong shape or non-finite values."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DimensionMismatchError(f"{name} must be a 2-D (n, d) array, got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise DimensionMismatchError(f"{name} have dimension {arr.shape[1]}, the index has d={d}")
    if arr.shape[1] < 1:
        raise DimensionMismatchError(f"{name} have dimension 0")
    if not np.issubdtype(arr.dtype, np.number):
        raise IndexInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise NonFiniteVectorError(f"{name}: {bad.size} row(s) hold NaN or inf (first rows: {bad[:5].tolist()})")
    return arr


def check_ids(ids, n: int) -> np.ndarray:
    """``ids`` as (n,) int64, unique and non-negative (faiss reports -1 for 'no result')."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise IndexInputError(f"ids must be a 1-D array of {n} ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise IndexInputError(f"ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise IndexInputError(f"ids must be >= 0 (faiss uses -1 for a missing result), got {int(arr.min())}")
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        dup = uniq[counts > 1]
        raise DuplicateIdError(f"{dup.size} id(s) appear more than once (e.g. {dup[:5].tolist()})")
    return np.ascontiguousarray(arr)


def normalize(x: np.ndarray) -> np.ndarray:
    """(n, d) rows scaled to unit L2 norm (zero rows stay zero); a new (n, d) float32 array."""
    # squares summed in float64: in float32 a norm above ~1.8e19 overflowed (rows became 0) and one
    # below ~1e-19 underflowed (rows came out longer than 1); the quotient is cast back chunk by chunk
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]
    out = np.zeros(x.shape, np.float32)
    np.divide(x, norms, out=out, where=norms > 0, casting="same_kind")
    return out


def default_nlist(n: int) -> int:
    """``4 * sqrt(n)`` rounded to a power of two, with at least 39 training points per list;
    0 when even 16 lists would be under-trained (the corpus is then indexed exactly)."""
    if n < _MIN_POINTS_PER_LIST * _MIN_LISTS:
        return 0
    nlist = 1 << round(math.log2(4 * math.sqrt(n)))
    while nlist > _MIN_LISTS and n < _MIN_POINTS_PER_LIST * nlist:
        nlist //= 2
    return nlist


def ivf_bytes(n: int, d: int, nlist: int, code_bytes: int, hnsw: bool = False, opq: bool = False,
              shards: int = 1, code: str = "", metric: str = "ip") -> int:
    """Estimated memory of an IVF index over ``shards`` shards: codes + ids, and per shard (each holds
    its own copy of the trained parts) the centroids and lists (+ HNSW links, OPQ matrix, PQ
    codebooks, and with ``l2`` the PQ lookup table faiss precomputes when it opens a shard:
    nlist x M x 256 floats)."""
    trained = nlist * (4 * d + _LIST_OVERHEAD)
    if hnsw:
        trained += nlist * 2 * 32 * 4  # level-0 links of an HNSW32 graph
    if opq:
        trained += 4 * d * d
    if pq := re.match(r"^PQ(\d+)(?:x(\d+))?", code):
        centroids = 2 ** int(pq.group(2) or 8)
        trained += centroids * d * 4  # M codebooks of 2^bits centroids of d / M floats
        if metric == "l2":
            trained += nlist * int(pq.group(1)) * centroids * 4
    return n * (code_bytes + _ID_BYTES) + shards * trained


def code_bytes(code: str, d: int) -> int:
    """Bytes per vector of a list code (``Flat``, ``SQfp16``, ``SQ8``, ``PQ{m}`` / ``PQ{m}x{bits}``)."""
    sizes = {name: size(d) for name, size in _CODES}
    if code in sizes:
        return sizes[code]
    m = re.match(r"^PQ(\d+)(?:x(\d+))?", code)
    if m:
        return -(-int(m.group(1)) * int(m.group(2) or 8) // 8)
    return 4 * d  # unknown code: assume the largest


def _codes(d: int, opq: bool) -> list[tuple[str, int, bool]]:
    """(code, bytes per vector, uses OPQ) from most to least accurate: Flat, SQfp16, SQ8, then PQ
    with d/2, d/4, ... sub-quantisers of 8 bits (at least 4 bytes)."""
    out = [(name, size(d), False) for name, size in _CODES]
    m = d // 2
    while m >= 4:
        if d % m == 0:
            out.append((f"PQ{m}", m, opq))
        m //= 2
    return out


_PQ = re.compile(r"^PQ(\d+)(?:x(\d+))?(fs|np)?$")
_OPQ = re.compile(r"^OPQ(\d+)")


def _check_factory(cfg: IndexConfig, n: int, d: int, nlist: int, code: str) -> None:
    """Raise :class:`IndexInputError` naming ``index.factory`` / ``index.train_sample`` for what faiss
    would only refuse deep in training (after the exact search): too few vectors or training vectors
    for the lists or the PQ codebooks, a dimension the sub-quantisers do not divide."""
    where = f"index.factory {cfg.factory!r}"
    if n < nlist:
        raise IndexInputError(f"{where} needs at least nlist={nlist} vectors, got {n}")
    if cfg.train_sample and cfg.train_sample < nlist:
        raise IndexInputError(f"index.train_sample={cfg.train_sample} is below the {nlist} lists of {where} "
                              "(k-means needs a vector per list; 0: 40 per list)")
    pq = _PQ.match(code)
    for m in [int(pq.group(1))] if pq else []:
        if d % m:
            raise IndexInputError(f"{where}: PQ{m} needs a dimension divisible by {m}, got d={d}")
        centroids = 2 ** int(pq.group(2) or 8)
        if min(n, cfg.train_sample or n) < centroids:
            raise IndexInputError(f"{where}: PQ with {centroids} centroids per sub-quantiser needs at least "
                                  f"{centroids} training vectors, got {min(n, cfg.train_sample or n)}")
    opq = _OPQ.match(cfg.factory or "")
    if opq and d % int(opq.group(1)):
        raise IndexInputError(f"{where}: OPQ{opq.group(1)} needs a dimension divisible by {opq.group(1)}, got d={d}")


def choose_index(n: int, d: int, cfg: IndexConfig) -> list[IndexPlan]:
    """Candidate plans for N vectors of dimension d, in the order the builder should try them.

    * exact ``IDMap,Flat`` when N < ``exact_below`` or no IVF can be trained (fewer than 39 * 16
      vectors) — the only candidate then;
    * otherwise the ``candidates`` most accurate IVF codes that fit the memory budget (Flat,
      SQfp16, SQ8, then (O)PQ with shrinking codes), all with ``default_nlist(N)`` lists, plus
      exact Flat when it fits: the builder measures them all.

    Raises :class:`EmptyCorpusError` for N = 0 and :class:`MemoryBudgetError` when nothing fits.
    """
    if n <= 0:
        raise EmptyCorpusError("the corpus is empty: nothing to index")
    budget = int(cfg.memory_budget_mb * 2**20)
    flat = IndexPlan("IDMap,Flat", "flat", d, 0, "Flat", n * (4 * d + _ID_BYTES), "exact search")
    if cfg.factory is not None:
        kind, nlist, code = parse_factory(cfg.factory)
        if kind == "flat":
            return [flat]
        _check_factory(cfg, n, d, nlist, code)
        size = ivf_bytes(n, d, nlist, code_bytes(code, d), "_HNSW" in cfg.factory, cfg.factory.startswith("OPQ"),
                         cfg.shards, code, cfg.faiss_metric)
        return [IndexPlan(cfg.factory, kind, d, nlist, code, size, "index.factory")]
    nlist = default_nlist(n)
    if n < cfg.exact_below or nlist == 0:
        if flat.estimated_bytes > budget:
            raise MemoryBudgetError(f"{n} x {d} exact index needs {flat.estimated_bytes / 2**20:.1f} MB, "
                                    f"over memory_budget_mb={cfg.memory_budget_mb}")
        why = f"N={n} < exact_below={cfg.exact_below}" if nlist else f"N={n} is too small to train 16 lists"
        return [IndexPlan(flat.factory, "flat", d, 0, "Flat", flat.estimated_bytes, why)]
    hnsw = nlist >= cfg.hnsw_quantizer_from
    coarse = f"IVF{nlist}_HNSW32" if hnsw else f"IVF{nlist}"
    plans = []
    for code, nbytes, opq in _codes(d, cfg.opq):
        size = ivf_bytes(n, d, nlist, code_bytes(code, d), hnsw, opq, cfg.shards, code, cfg.faiss_metric)
        if size > budget:
            continue
        factory = f"OPQ{nbytes},{coarse},{code}" if opq else f"{coarse},{code}"
        plans.append(IndexPlan(factory, "ivf", d, nlist, code, size,
                               f"nlist=4*sqrt(N) rounded to 2^k; {code} is the most accurate code that fits"
                               if not plans else f"next code that fits ({code})"))
        if len(plans) == cfg.candidates:
            break
    if flat.estimated_bytes <= budget:
        plans.append(IndexPlan(flat.factory, "flat", d, 0, "Flat", flat.estimated_bytes, "exact search fits the budget"))
    if not plans:
        raise MemoryBudgetError(f"no index over {n} x {d} fits memory_budget_mb={cfg.memory_budget_mb}")
    return plans
