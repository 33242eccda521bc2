"""PinSage embeddings as ranker features, computed by one piece of code in training and serving.

For each (user, pin) row:

* ``pin_embedding`` (B, D): the pin's PinSage embedding (zeros for a pin without one);
* one user embedding (B, D) per kind of engagement in :data:`USER_EMBEDDINGS`, each the
  L2-normalised mean of the embeddings of the pins in one of the user feature view's lists as
  known at impression time (the point-in-time join already kept the future out), zeros when none
  of them has an embedding: ``user_embedding`` from the recent saves (``user__last_saved_pins``),
  ``user_closeup_embedding`` from the recent closeups (``user__last_closeup_pins``: 5,479 closeups
  against 838 saves on the demo world, so a denser profile of the user's interests).
  This is PinSage's way to query with a user (Ying et al., KDD 2018: a user is represented by
  the pins they recently engaged with).

:class:`~pinrec.export.encoding.FeatureEncoder` turns them into dense columns plus the dot product of the
pin's with each user embedding (:func:`pinrec.export.encoding.training_set_spec` with ``embeddings``).
The ranker job and the serving loader call :meth:`EmbeddingTable.columns` with the same table, so
both see identical inputs.

numpy + pyarrow only (the serving loader imports it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PIN_EMBEDDING = "pin_embedding"
USER_EMBEDDING = "user_embedding"
USER_CLOSEUP_EMBEDDING = "user_closeup_embedding"
LAST_SAVED = "user__last_saved_pins"
LAST_CLOSEUPS = "user__last_closeup_pins"
#: user embedding column -> the user-view list of pin ids it averages
USER_EMBEDDINGS: dict[str, str] = {USER_EMBEDDING: LAST_SAVED, USER_CLOSEUP_EMBEDDING: LAST_CLOSEUPS}
#: every embedding column the ranker may read
EMBEDDING_COLUMNS: tuple[str, ...] = (PIN_EMBEDDING, *USER_EMBEDDINGS)


def user_embeddings_of(spec) -> tuple[str, ...]:
    """The user embedding columns an :class:`~pinrec.export.encoding.EncoderSpec` reads, in its order."""
    from pinrec.export.encoding import Embedding

    return tuple(f.name for f in spec.features if isinstance(f, Embedding) and f.name in USER_EMBEDDINGS)


class EmbeddingTable:
    r"""Pin id -> embedding lookups over N pins.

    Args:
        ids (np.ndarray): (N,) int64 pin ids, unique.
        vectors (np.ndarray): (N, D) float32, row i = ``ids[i]`` (may be a read-only memory map).
        version (str, optional): the embedding model version the vectors come from.
    """

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, version: str = "unknown") -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"ids {ids.shape} and vectors {vectors.shape} disagree: expected (N,) and (N, D)")
        order = np.argsort(ids, kind="stable")
        self._sorted = ids[order]
        if np.any(self._sorted[1:] == self._sorted[:-1]):
            raise ValueError("pin ids of the embedding table must be unique")
        self._order = order
        self.vectors = vectors
        self.version = version

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows(self, pin_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """(row of each pin in ``vectors`` (B,), found (B,) bool) for pin ids (B,) (nulls not found)."""
        arr = pa.array(pin_ids) if not isinstance(pin_ids, (pa.Array, pa.ChunkedArray)) else pin_ids
        valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
        ids = np.asarray(pc.fill_null(arr, -1).to_numpy(zero_copy_only=False), np.int64)
        if len(self._sorted) == 0:
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        pos = np.minimum(np.searchsorted(self._sorted, ids), len(self._sorted) - 1)
        found = valid & (self._sorted[pos] == ids)
        return self._order[pos], found

    def pin_vectors(self, pin_ids: Any) -> np.ndarray:
        """(B, D) embeddings of ``pin_ids``; zeros where a pin has none."""
        rows, found = self.rows(pin_ids)
        out = np.zeros((len(rows), self.dim), np.float32)
        out[found] = self.vectors[rows[found]]
        return out

    def user_vectors(self, last_saved: Any) -> np.ndarray:
        """(B, D) L2-normalised mean embedding of each row's saved pins (a list column of B lists
        of pin ids; null or empty -> zeros)."""
        col = last_saved if isinstance(last_saved, (pa.Array, pa.ChunkedArray)) else \
            pa.array(list(last_saved), pa.list_(pa.int64()))
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        n = len(col)
        lengths = np.asarray(pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False), np.int64)
        flat = pc.list_flatten(col)
        owner = np.repeat(np.arange(n), lengths)
        rows, found = self.rows(flat)
        sums = np.zeros((n, self.dim), np.float64)
        np.add.at(sums, owner[found], self.vectors[rows[found]])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0).astype(np.float32)

    def columns(self, pin_ids: Any, lists: Mapping[str, Any], users: Sequence[str]) -> dict[str, np.ndarray]:
        """``{"pin_embedding": (B, D), <user embedding>: (B, D) for each of users}`` for B rows:
        ``pin_ids`` (B,) and ``lists``, a frame (pandas, Arrow or a dict) holding the user-view
        list column of each requested user embedding (:data:`USER_EMBEDDINGS`)."""
        unknown = [u for u in users if u not in USER_EMBEDDINGS]
        if unknown:
            raise ValueError(f"unknown user embeddings {unknown}; known: {sorted(USER_EMBEDDINGS)}")
        return {PIN_EMBEDDING: self.pin_vectors(pin_ids),
                **{u: self.user_vectors(lists[USER_EMBEDDINGS[u]]) for u in users}}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(pins={len(self._sorted)}, dim={self.dim}, version={self.version!r})"
