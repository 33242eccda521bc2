"""Embedding stability against the version the channel serves: what the blessing gate's floor judges.

The PinSage job measures each new embedding version against the one ``pin_embeddings`` held before it
(:func:`pinrec.jobs.pinsage.pinsage_versions.stability`: ``overlap_at_10``, ``procrustes_cosine``, the
held-out recall of both). That is not always the version serving: a rerun of a rejected version on the
same inputs is measured against itself (overlap 1.0), and the day after a rejection the new version is
measured against the rejected one. Publish therefore also measures the candidate's embeddings against
the champion bundle's own (``extra/pin_embeddings.npy``, row i = ``pins/pins.parquet``'s row i; a
zero row is a pin PinSage did not embed, left out) and records

* ``champion_common_pins``: pins both embed;
* ``champion_overlap_at_10``: the share of each pin's 10 nearest neighbours (cosine) the two agree on,
  over the common pins (:func:`~pinrec.models.embedding_stability.neighbour_overlap`); 0.0 when both
  embed more than 10 pins but share at most 10 (re-keyed pins: no neighbourhood survives).

Both are absent while the channel serves nothing or the champion's bundle holds no embeddings.
"""
from __future__ import annotations

import io
import logging

import numpy as np

log = logging.getLogger(__name__)

K = 10  # as the PinSage job's overlap_at_10


def champion_stability(store, name: str, channel: str, ids, vectors) -> dict[str, float]:
    """The candidate's embeddings ``vectors`` (N, D) float32 of pins ``ids`` (N,) int64 against those of
    the bundle ``channel`` of ``name`` serves in ``store`` (module docstring); {} without a champion."""
    import pyarrow.parquet as pq
    import torch

    from pinrec.export.serving.store import read_channel
    from pinrec.models.embedding_stability import align, neighbour_overlap
    from pinrec.schemas.manifest import bundle_prefix

    current = read_channel(store, name, channel)
    if current is None:
        return {}
    prefix = bundle_prefix(name, current.version)
    try:
        old = np.load(io.BytesIO(store.get_bytes(prefix + "extra/pin_embeddings.npy")), allow_pickle=False)
        old_ids = pq.read_table(io.BytesIO(store.get_bytes(prefix + "pins/pins.parquet")),
                                columns=["pin_id"]).column("pin_id").to_numpy().astype(np.int64)
    except FileNotFoundError as e:
        log.warning("champion %s holds no pin embeddings (%s): stability against it not measured", current.version, e)
        return {}
    if old.ndim != 2 or len(old) != len(old_ids):
        raise ValueError(f"champion {current.version}: extra/pin_embeddings.npy has shape {old.shape} for "
                         f"{len(old_ids)} pins in pins/pins.parquet")
    embedded = np.abs(old).sum(axis=1) > 0
    old_ids, old = old_ids[embedded], old[embedded]
    new_ids, new = np.asarray(ids, np.int64), np.asarray(vectors, np.float32)
    old_rows, new_rows = align(torch.from_numpy(old_ids), torch.from_numpy(new_ids))
    out = {"champion_common_pins": float(len(new_rows))}
    if len(new_rows) > K:
        out["champion_overlap_at_10"] = neighbour_overlap(torch.from_numpy(old)[old_rows],
                                                          torch.from_numpy(new)[new_rows], K)
    elif min(len(old_ids), len(new_ids)) > K:
        out["champion_overlap_at_10"] = 0.0
    return out
