"""Adding fresh pins to an index folder without retraining, and the drift measures that say when the
trained quantizer no longer fits (the build records them as the reference: residual, imbalance).

Base install only: numpy, faiss.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from pinrec.export.index_choice import (
    DuplicateIdError,
    EmptyCorpusError,
    check_ids,
    check_vectors,
    normalize,
)

from .shard_fill import shard_of
from .shard_folder import read_manifest, verify_shards, write_manifest, write_shard
from .sharded_index import shard_ids


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
