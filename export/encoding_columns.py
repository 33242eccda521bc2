"""The columns of a frame as the feature encoder reads them (a ``pyarrow.Table``, a pandas ``DataFrame``
or a ``dict`` of numpy arrays, an embedding column possibly a (B, D) array), and :func:`stable_hash`, the
FNV-1a hash of hashed ids. numpy + pyarrow only; :mod:`pinrec.export.encoding` re-exports ``stable_hash``."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["stable_hash"]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def stable_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit FNV-1a of the UTF-8 text of each value (ints hash as their decimal text), (B,) uint64.
    Nulls hash as the empty string; callers mask them. Integral floats (ids that pandas turned
    into floats because of a null) hash as the integer."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_floating(values.type):
        try:
            values = pc.cast(values, pa.int64())
        except pa.ArrowInvalid:
            pass
    arr = _strings(values)
    arr = pa.concat_arrays([arr]) if arr.offset else arr  # realign a sliced array
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[: len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(1, np.uint8)
    lengths = np.diff(offsets)
    h = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for j in range(int(lengths.max(initial=0))):
        live = lengths > j
        byte = data[np.minimum(offsets[:-1] + j, max(len(data) - 1, 0))].astype(np.uint64)
        h = np.where(live, (h ^ byte) * _FNV_PRIME, h)
    return h


def _num_rows(frame) -> int:
    if isinstance(frame, pa.Table):
        return frame.num_rows
    if isinstance(frame, Mapping):
        return len(next(iter(frame.values()))) if frame else 0
    return len(frame)


def _column(frame, name: str):
    """The column as a pyarrow (Chunked)Array (NaN -> null for numpy/pandas input), or a (B, D) ndarray."""
    try:
        col = frame.column(name) if isinstance(frame, pa.Table) else frame[name]
    except KeyError:
        raise ValueError(f"the frame has no column {name!r}") from None
    if isinstance(col, (pa.Array, pa.ChunkedArray)) or (isinstance(col, np.ndarray) and col.ndim == 2):
        return col
    return pa.array(col, from_pandas=True)  # numpy, pandas Series or list; NaN -> null


def _floats(arr, name: str = "") -> np.ndarray:
    """float64 values of a numeric or boolean (Chunked)Array, NaN where null."""
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise ValueError(f"column {name!r} must be numeric or boolean, got {t}")
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        arr = pc.cast(arr, pa.float64())
    values = arr.to_numpy() if isinstance(arr, pa.ChunkedArray) else arr.to_numpy(zero_copy_only=False)
    return values.astype(np.float64, copy=False)


def _indices(arr) -> np.ndarray:
    """int64 of an int32 (Chunked)Array of indices, -1 where null."""
    values = arr.to_numpy() if isinstance(arr, pa.ChunkedArray) else arr.to_numpy(zero_copy_only=False)
    return np.nan_to_num(values, nan=-1).astype(np.int64)


def _strings(arr):
    """As ``string`` (int32 offsets): numbers as their text, large/view strings re-typed."""
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _embedding(col, dim: int, name: str) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, np.ndarray):
        out = np.nan_to_num(col.astype(np.float32))
    elif not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise ValueError(f"{name}: an embedding column must hold float arrays, got {col.type}")
    else:
        valid = ~col.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if np.any(lengths[valid] != dim):
            raise ValueError(f"{name}: every non-null embedding must have length {dim}")
        out = np.zeros((len(col), dim), dtype=np.float32)
        flat = pc.cast(col.flatten(), pa.float32()).to_numpy(zero_copy_only=False)
        out[valid] = np.nan_to_num(flat.reshape(-1, dim))
    if out.shape[1:] != (dim,):
        raise ValueError(f"{name}: expected (B, {dim}) embeddings, got {out.shape}")
    return out
