"""One view of a feature snapshot, indexed by its key: :class:`ViewSnapshot`.

:meth:`ViewSnapshot.lookup` (what :meth:`pinrec.export.serving.feature_snapshot.FeatureSnapshot.lookup`
calls per view) serves the view's features for a batch of B keys at time ``now`` (>= the cut-off)
as a ``pyarrow.Table`` of exactly the training set's columns: the features, ``<view>__feature_ts``
and ``<view>__missing``. An entity absent from the snapshot, a null key, or a value no longer fresh
at ``now`` (``feature_ts < now - ttl``) is missing: null values and ``missing = True``, the encoding
the training join uses. Nothing per lookup grows with the snapshot: every key becomes one int64
code (a single integer key is its own code; a composite or string key combines, in mixed radix,
each column's position among its distinct values, found in a sorted array or a dict built once at
open), and ``np.searchsorted`` over the sorted codes finds the rows of a whole batch at once; the
values are one ``take`` from the memory-mapped Arrow columns. Duplicate or null keys refuse to open.

The file it opens is described in :mod:`pinrec.export.serving.snapshot_meta`. Base install only:
numpy and pyarrow.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .snapshot_meta import META_KEY, SnapshotError, SnapshotMeta, to_micros


def _as_array(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    return "null" if pa.types.is_null(t) else str(t)


class _Domain:
    """The distinct values of one key column and their codes 0..n-1: sorted integers found with
    ``np.searchsorted``, other values in a dict (both built once)."""

    def __init__(self, column: pa.Array) -> None:
        self.integer = _kind(column.type) == "int"
        if self.integer:
            self.values = np.unique(column.cast(pa.int64()).to_numpy())
        else:
            self.index = {v: i for i, v in enumerate(pc.unique(column).to_pylist())}

    def __len__(self) -> int:
        return len(self.values) if self.integer else len(self.index)

    def codes(self, column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(code, known) per value; unknown and null values are not known."""
        if self.integer:
            col = column.cast(pa.int64())
            q = col.fill_null(0).to_numpy()
            pos = np.minimum(np.searchsorted(self.values, q), max(len(self.values) - 1, 0))
            known = ~col.is_null().to_numpy(zero_copy_only=False) & (len(self.values) > 0)
            known &= self.values[pos] == q if len(self.values) else known
            return pos.astype(np.int64), known
        code = np.fromiter((self.index.get(v, -1) for v in column.to_pylist()), np.int64, len(column))
        return np.maximum(code, 0), code >= 0


class ViewSnapshot:
    """One view of a snapshot, indexed by its key (see the module docstring)."""

    def __init__(self, table: pa.Table) -> None:
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise SnapshotError("table has no pinrec snapshot metadata: write it with pinrec.jobs.features.feature_snapshot "
                                "or attach it with pinrec.export.serving.feature_store.with_meta")
        meta = self.meta = SnapshotMeta.from_json(raw)
        absent = [c for c in (*meta.entities, *meta.value_columns) if c not in table.column_names]
        if absent:
            raise SnapshotError(f"snapshot of view {meta.view!r} lacks columns {absent} its metadata declares")
        if not pa.types.is_timestamp(table.schema.field(meta.feature_ts_column).type):
            raise SnapshotError(f"{meta.feature_ts_column} must be a timestamp, got "
                                f"{table.schema.field(meta.feature_ts_column).type}")
        keys = [table.column(e).combine_chunks() for e in meta.entities]
        nulls = [e for e, k in zip(meta.entities, keys) if k.null_count]
        if nulls:
            raise SnapshotError(f"snapshot of view {meta.view!r} has null keys in {nulls}")
        self.key_kinds = tuple(_kind(k.type) for k in keys)
        if len(keys) == 1 and self.key_kinds[0] == "int":
            self._domains = None  # the key itself is the int64 code
        else:  # composite or string keys: each column's distinct values, codes combined in mixed radix
            self._domains = [_Domain(k) for k in keys]
            if math.prod(max(len(d), 1) for d in self._domains) >= 2 ** 62:
                raise SnapshotError(f"snapshot of view {meta.view!r}: the key space {meta.entities} is too large "
                                    "to index")
        codes, _ = self._codes(keys)
        if np.all(codes[1:] >= codes[:-1]):  # as the job writes it: the table stays memory-mapped
            self.keys = codes
        else:
            order = np.argsort(codes, kind="stable")
            self.keys, table = codes[order], table.take(pa.array(order))
        dup = np.unique(np.flatnonzero(self.keys[1:] == self.keys[:-1]))[:3]
        self._key_table = table.select(list(meta.entities))
        duplicates = [tuple(c[int(i)].as_py() for c in self._key_table.columns) for i in dup]
        if duplicates:
            raise SnapshotError(f"snapshot of view {meta.view!r} holds duplicate keys "
                                f"{', '.join(map(str, duplicates))}: one row per entity expected")
        # one chunk per column: take() over many chunks concatenates them first, on every call
        # (a Parquet file of one row group, as the job writes it, reads as one chunk: no copy)
        self.values = table.select(list(meta.value_columns)).replace_schema_metadata(None).combine_chunks()
        self.fts_us = to_micros(self.values.column(meta.feature_ts_column)) if table.num_rows else \
            np.zeros(0, np.int64)
        self.cutoff_us = int(to_micros(meta.cutoff)[0])

    @property
    def num_rows(self) -> int:
        return self.values.num_rows

    def key_tuples(self) -> list[tuple]:
        """The key of every row, in row order."""
        return list(zip(*(c.to_pylist() for c in self._key_table.columns)))

    def _codes(self, cols: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
        """(codes, known): one int64 code per row of the key columns — the value of a single
        integer key, else ``sum_i code_i * prod_{j>i} |domain_j|`` with ``code_i`` the position
        of the value among column i's distinct values (a hash lookup) — and whether the key is
        non-null and (for coded keys) made of known values."""
        if self._domains is None:
            col = cols[0].cast(pa.int64())
            return col.fill_null(0).to_numpy(), ~col.is_null().to_numpy(zero_copy_only=False)
        total = np.zeros(len(cols[0]), np.int64)
        known = np.ones(len(cols[0]), bool)
        for col, domain in zip(cols, self._domains):
            code, ok = domain.codes(col)
            known &= ok
            total = total * max(len(domain), 1) + code
        return total, known

    def key_columns(self, keys: Any) -> list[pa.Array]:
        """Normalise ``keys`` (an array-like for a single-entity view, else a mapping entity ->
        array-like) into one pyarrow array per entity, checking their kinds."""
        meta = self.meta
        if isinstance(keys, Mapping):
            absent = [e for e in meta.entities if e not in keys]
            if absent:
                raise SnapshotError(f"view {meta.view!r} is keyed by {meta.entities}; keys lack {absent}")
            cols = [_as_array(keys[e]) for e in meta.entities]
        elif len(meta.entities) == 1:
            cols = [_as_array(keys)]
        else:
            raise SnapshotError(f"view {meta.view!r} is keyed by {meta.entities}: pass keys as a mapping "
                                "entity -> values")
        if len({len(c) for c in cols}) > 1:
            raise SnapshotError(f"view {meta.view!r}: key columns differ in length {[len(c) for c in cols]}")
        for e, c, kind in zip(meta.entities, cols, self.key_kinds):
            if _kind(c.type) not in (kind, "null"):
                raise SnapshotError(f"view {meta.view!r}: keys {e!r} must be {kind}, got {c.type}")
        return cols

    def rows(self, cols: list[pa.Array]) -> np.ndarray:
        """Row of every key in the snapshot, -1 where absent or null: (B,) int64."""
        q, known = self._codes(cols)
        pos = np.searchsorted(self.keys, q)
        hit = known & (pos < len(self.keys))
        hit[hit] = self.keys[pos[hit]] == q[hit]
        return np.where(hit, pos, -1).astype(np.int64)

    def fresh(self, fts_us: np.ndarray, found: np.ndarray, now: Any) -> np.ndarray:
        """(B,) bool: found and still fresh at ``now`` (``feature_ts >= now - ttl``)."""
        meta = self.meta
        now_us = self.cutoff_us if now is None else to_micros(now, len(found))
        if np.any(now_us < self.cutoff_us):
            raise ValueError(f"view {meta.view!r}: the snapshot was taken at {meta.cutoff.isoformat()}; it "
                             "cannot serve an earlier time (values known later would leak)")
        return found & (fts_us >= now_us - meta.ttl_s * 1_000_000)

    def finish(self, values: pa.Table, fts_us: np.ndarray, found: np.ndarray, now: Any) -> pa.Table:
        """Looked-up rows (from elsewhere, e.g. Redis) -> the lookup's answer: values of rows not
        found or expired at ``now`` become null, and ``<view>__missing`` is added."""
        valid = self.fresh(fts_us, found, now)
        if not valid.all():
            values = values.take(pa.array(np.arange(len(valid)), mask=~valid))
        return self._with_missing(values, valid)

    def _with_missing(self, values: pa.Table, valid: np.ndarray) -> pa.Table:
        return values.append_column(pa.field(self.meta.missing_column, pa.bool_()), pa.array(~valid))

    def lookup(self, keys: Any, now: Any = None) -> pa.Table:
        rows = self.rows(self.key_columns(keys))
        found = rows >= 0
        take = np.where(found, rows, 0)
        fts = self.fts_us[take] if self.num_rows else np.zeros(len(rows), np.int64)
        valid = self.fresh(fts, found, now)
        values = self.values.take(pa.array(take, mask=~valid)) if self.num_rows else \
            pa.table({c: pa.nulls(len(rows), self.values.schema.field(c).type) for c in self.values.column_names})
        return self._with_missing(values, valid)
