"""Online features for serving: the bundle's feature snapshot, looked up per entity, and Redis in front.

A snapshot (written by :mod:`pinrec.jobs.features.feature_snapshot`) holds, per feature view, the value of every
entity as the point-in-time join would attach it at the snapshot's ``cutoff``: one Parquet file
``features_<view>.parquet`` with the entity columns, ``<view>__<feature>`` for every feature and
``<view>__feature_ts``, and a :class:`SnapshotMeta` (view, entities, features, TTL, cut-off) in
the Parquet key-value metadata, so the file describes itself.

:meth:`FeatureSnapshot.lookup` serves ``view``'s features for a batch of B keys at time ``now``
(>= the cut-off) as a ``pyarrow.Table`` of exactly the training set's columns: the features,
``<view>__feature_ts`` and ``<view>__missing``. An entity absent from the snapshot, a null key, or
a value no longer fresh at ``now`` (``feature_ts < now - ttl``) is missing: null values and
``missing = True``, the encoding the training join uses. Nothing per lookup grows with the
snapshot: every key becomes one int64 code (a single integer key is its own code; a composite or
string key combines, in mixed radix, each column's position among its distinct values, found in a
sorted array or a dict built once at open), and ``np.searchsorted`` over the sorted codes finds
the rows of a whole batch at once; the values are one ``take`` from the memory-mapped Arrow
columns. Duplicate or null keys refuse to open.

:class:`RedisFeatureStore` reads the same rows from Redis (written by :mod:`pinrec.jobs.features.redis_export`:
keys ``<prefix>:<bundle version>:<view>:<generation>:<json key>``, and a per-view ``_meta`` key,
written last, that names the generation holding the complete export) with one atomic ``MGET`` per
lookup: ``_meta`` together with the keys of the generation it named on the previous lookup. When
``_meta`` names another one (the first lookup of a view, or the version was re-exported since), the
lookup reads again from that generation: one more round trip. So a lookup sees one complete export,
never a mix of two, nor keys an earlier export of the same version left behind. A Redis that is
down, slow (socket timeout), lacks the version's export, or holds one that does not match the
snapshot (the ``_meta`` key's columns, their Arrow types, the cut-off and the row count; any value
that is malformed or of another type than its column's, a null ``feature_ts``) makes it serve from
the snapshot instead: a warning naming the key (and column), ``fallbacks`` += 1, ``last_error``
set, and no new attempt for ``retry_after_s``.

Base install only: numpy and pyarrow (redis-py is imported lazily; it is the ``redis`` extra).
"""
from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinrec.schemas.bounds import bounded, check_bounds

log = logging.getLogger(__name__)

META_KEY = b"pinrec.feature_snapshot"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


class SnapshotError(ValueError):
    """A feature snapshot is malformed (duplicate or null keys, missing columns or features) or
    was asked for something it does not hold."""


def snapshot_file_name(view: str) -> str:
    return f"features_{view}.parquet"


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are UTC (Spark sessions run in UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot file holds: ``view`` keyed by ``entities``, its ``features`` (unprefixed
    names), ``ttl_s`` and the ``cutoff`` it was taken at (UTC)."""

    view: str
    entities: tuple[str, ...]
    features: tuple[str, ...]
    ttl_s: int
    cutoff: dt.datetime

    def __post_init__(self) -> None:
        if not self.view or not self.entities or not self.features:
            raise SnapshotError(f"snapshot meta needs a view, entities and features, got {self}")
        if self.ttl_s <= 0:
            raise SnapshotError(f"snapshot of {self.view!r}: ttl_s must be > 0, got {self.ttl_s}")
        object.__setattr__(self, "cutoff", _utc(self.cutoff))

    @classmethod
    def from_view(cls, view, cutoff: dt.datetime) -> SnapshotMeta:
        """From a :class:`pinrec.schemas.features.FeatureView`."""
        return cls(view.name, tuple(view.entities), tuple(f.name for f in view.features),
                   int(view.ttl.total_seconds()), cutoff)

    @property
    def feature_ts_column(self) -> str:
        return f"{self.view}__feature_ts"

    @property
    def missing_column(self) -> str:
        return f"{self.view}__missing"

    @property
    def value_columns(self) -> tuple[str, ...]:
        """``<view>__<feature>`` for every feature, then ``<view>__feature_ts``."""
        return (*(f"{self.view}__{f}" for f in self.features), self.feature_ts_column)

    def to_json(self) -> str:
        return json.dumps({"view": self.view, "entities": list(self.entities), "features": list(self.features),
                           "ttl_s": self.ttl_s, "cutoff": self.cutoff.isoformat()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SnapshotMeta:
        try:
            d = json.loads(text)
            return cls(d["view"], tuple(d["entities"]), tuple(d["features"]), int(d["ttl_s"]),
                       dt.datetime.fromisoformat(d["cutoff"]))
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError(f"unreadable snapshot metadata ({type(e).__name__}: {e})") from None


def with_meta(table: pa.Table, meta: SnapshotMeta) -> pa.Table:
    """``table`` with ``meta`` in its schema metadata (what :meth:`FeatureSnapshot.open` reads)."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: meta.to_json().encode()})


def to_micros(value: Any, n: int | None = None) -> np.ndarray:
    """Times -> int64 microseconds since the epoch, UTC (naive = UTC). ``value``: a datetime,
    ``np.datetime64``, or an array / list / pyarrow array of them; a scalar with ``n`` is repeated."""
    if isinstance(value, dt.datetime):
        out = np.array([(_utc(value) - _EPOCH) // _US], dtype=np.int64)
    elif isinstance(value, (pa.Array, pa.ChunkedArray)):
        if value.null_count:
            raise ValueError("times must not be null")
        if not pa.types.is_timestamp(value.type):
            raise ValueError(f"times must be timestamps, got {value.type}")
        out = value.cast(pa.timestamp("us", value.type.tz)).cast(pa.int64()).to_numpy()
    else:
        arr = np.asarray(value)
        if arr.dtype.kind == "M":
            if np.isnat(arr).any():
                raise ValueError("times must not be NaT")
            out = np.atleast_1d(arr.astype("datetime64[us]").astype(np.int64))
        elif arr.dtype == object:
            out = np.array([to_micros(v)[0] for v in arr.reshape(-1)], dtype=np.int64)
        else:
            raise ValueError(f"times must be datetimes or datetime64, got dtype {arr.dtype}")
    if n is not None and out.shape[0] == 1 and n != 1:
        out = np.repeat(out, n)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"got {out.shape[0]} times for {n} keys")
    return out


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


class FeatureSnapshot:
    """The bundle's feature snapshot: one :class:`ViewSnapshot` per view.

    >>> snap = FeatureSnapshot.open("bundle/extra")                               # doctest: +SKIP
    >>> snap.lookup("user", [7, 8], now=request_time)["user__saves_7d"]            # doctest: +SKIP
    >>> snap.lookup("user_category", {"user_id": [7], "category": ["art"]})       # doctest: +SKIP
    """

    def __init__(self, views: Mapping[str, ViewSnapshot]) -> None:
        self._views = dict(views)

    @classmethod
    def open(cls, source: str | pa.Table | Iterable[str | pa.Table], expected: Iterable[Any] | None = None
             ) -> FeatureSnapshot:
        """Open a snapshot from a folder of ``features_<view>.parquet`` files, one file, a table
        with snapshot metadata, or several of those. ``expected``: feature views (e.g.
        ``pinrec.schemas.features.FEATURE_VIEWS``) whose every feature, entity and TTL must be there."""
        views: dict[str, ViewSnapshot] = {}
        for table in _tables(source):
            view = ViewSnapshot(table)
            if view.meta.view in views:
                raise SnapshotError(f"view {view.meta.view!r} appears twice in the snapshot sources")
            views[view.meta.view] = view
        snap = cls(views)
        for view in expected or ():
            snap.check(view)
        return snap

    @classmethod
    def from_bundle(cls, bundle, expected: Iterable[Any] | None = None) -> FeatureSnapshot:
        """The snapshot files an opened :class:`pinrec.export.serving.loader.Bundle` carries as extras
        (``extra/features_<view>.parquet``, verified by the loader)."""
        paths = [os.path.join(bundle.root, e.path) for e in bundle.manifest.of_role("extra")
                 if os.path.basename(e.path).startswith("features_") and e.path.endswith(".parquet")]
        if not paths:
            raise SnapshotError(f"bundle {bundle.name}/{bundle.version} carries no feature snapshot "
                                "(extra/features_<view>.parquet)")
        return cls.open(paths, expected)

    def check(self, view) -> None:
        """Raise unless this snapshot serves every feature of ``view`` (a FeatureView) as declared."""
        if view.name not in self._views:
            raise SnapshotError(f"the snapshot has no view {view.name!r} (it has {sorted(self._views)})")
        meta = self._views[view.name].meta
        lacking = [f.name for f in view.features if f.name not in meta.features]
        if lacking:
            raise SnapshotError(f"the snapshot of view {view.name!r} lacks features {lacking}: it was built with "
                                "other feature views than this code's; rebuild it")
        if tuple(view.entities) != meta.entities or int(view.ttl.total_seconds()) != meta.ttl_s:
            raise SnapshotError(f"the snapshot of view {view.name!r} is keyed by {meta.entities} with ttl "
                                f"{meta.ttl_s}s, the view by {tuple(view.entities)} with ttl {view.ttl}")

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(sorted(self._views))

    def view(self, name: str) -> ViewSnapshot:
        try:
            return self._views[name]
        except KeyError:
            raise SnapshotError(f"the snapshot has no view {name!r} (it has {sorted(self._views)})") from None

    def meta(self, name: str) -> SnapshotMeta:
        return self.view(name).meta

    def lookup(self, view: str, keys: Any, now: Any = None) -> pa.Table:
        """``view``'s columns for B keys at ``now`` (scalar or (B,) times; default the cut-off):
        ``<view>__<feature>``..., ``<view>__feature_ts``, ``<view>__missing`` (B rows)."""
        return self.view(view).lookup(keys, now)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={v.num_rows}" for n, v in sorted(self._views.items()))
        cutoffs = sorted({v.meta.cutoff.isoformat() for v in self._views.values()})
        return f"FeatureSnapshot({parts}; cutoff={', '.join(cutoffs)})"


def _tables(source: Any) -> Iterator[pa.Table]:
    if isinstance(source, pa.Table):
        yield source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            files = sorted(glob.glob(os.path.join(path, snapshot_file_name("*"))))
            if not files:
                raise SnapshotError(f"no {snapshot_file_name('<view>')} files in {path}")
            for f in files:
                yield pq.read_table(f, memory_map=True)
        elif os.path.isfile(path):
            yield pq.read_table(path, memory_map=True)
        else:
            raise FileNotFoundError(f"feature snapshot {path} does not exist")
    else:
        for item in source:
            yield from _tables(item)


# --- Redis: the same rows, keyed by bundle version -------------------------------------------------

@dataclass(frozen=True)
class RedisConfig:
    """Redis in front of the snapshot. ``url``: ``redis://host:port/db`` (None: no Redis);
    ``key_prefix``: first component of every key; ``batch_size``: SETs per pipelined round trip
    of the export; ``timeout_s``: connect and read timeout of a serving lookup, after which it
    falls back to the snapshot; ``retry_after_s``: how long to serve from the snapshot after a
    failure before trying Redis again."""

    #: pydantic (not imported here) validates this section strictly when it is a field of the pipeline's config
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid", "allow_inf_nan": False, "coerce_numbers_to_str": True}

    url: str | None = None
    key_prefix: str = "pinrec"
    batch_size: int = bounded(1000, ge=1)
    timeout_s: float = bounded(0.05, gt=0.0)
    retry_after_s: float = bounded(5.0, ge=0.0)

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis.url must start with redis://, rediss:// or unix://, got {self.url!r}")
        if not self.key_prefix or ":" in self.key_prefix:
            raise ValueError(f"redis.key_prefix must be non-empty without ':', got {self.key_prefix!r}")
        check_bounds(self, "redis")


def redis_key(prefix: str, version: str, view: str, generation: str, key: tuple) -> str:
    """``<prefix>:<version>:<view>:<generation>:<key as a JSON list>`` (unambiguous for any key
    values); ``generation``: the export that wrote it (:func:`redis_meta_key` names the current one)."""
    return f"{prefix}:{version}:{view}:{generation}:{json.dumps(list(key), separators=(',', ':'))}"


def redis_generation_pattern(prefix: str, version: str, view: str, generation: str) -> str:
    """The ``SCAN MATCH`` pattern of every key of one export generation (glob characters escaped)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", f"{prefix}:{version}:{view}:{generation}:") + "*"


def redis_meta_key(prefix: str, version: str, view: str) -> str:
    """Written last by the export: its presence says the view's export of ``version`` is complete,
    its ``generation`` which keys hold it."""
    return f"{prefix}:{version}:{view}:_meta"


def _plain(arr: pa.Array) -> list:
    """JSON-able values: timestamps as int64 microseconds, dates as int32 days."""
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("us", arr.type.tz)).cast(pa.int64())
    elif pa.types.is_date32(arr.type):
        arr = arr.cast(pa.int32())
    return arr.to_pylist()


def _typed(values: list, t: pa.DataType) -> pa.Array:
    """JSON values -> an array of ``t`` (timestamps from int64 microseconds, dates from int32 days).
    A value of another type raises (TypeError, ValueError or OverflowError) instead of being
    truncated or coerced: a float or a bool where an integer belongs, a string for a number, a list
    for a scalar, an integer out of range."""
    plain = pa.int64() if pa.types.is_timestamp(t) else pa.int32() if pa.types.is_date32(t) else t
    got = pa.array(values)
    if not _fits(got.type, plain):
        raise TypeError(f"{got.type} values where {plain} belongs")
    out = got.cast(plain)  # safe: an integer out of range raises
    if pa.types.is_timestamp(t):
        return out.cast(pa.timestamp("us", t.tz)).cast(t)
    return out.cast(t) if pa.types.is_date32(t) else out


def _fits(got: pa.DataType, want: pa.DataType) -> bool:
    """Whether values pyarrow inferred as ``got`` are values of ``want`` (integers for a float too)."""
    if pa.types.is_null(got) or got.equals(want):
        return True
    if pa.types.is_integer(want):
        return pa.types.is_integer(got)
    if pa.types.is_floating(want):
        return pa.types.is_integer(got) or pa.types.is_floating(got)
    if pa.types.is_string(want) or pa.types.is_large_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if pa.types.is_list(want) or pa.types.is_large_list(want):
        return (pa.types.is_list(got) or pa.types.is_large_list(got)) and _fits(got.value_type, want.value_type)
    return False


_BAD_VALUE = (TypeError, ValueError, OverflowError, pa.ArrowException)


def _typed_column(field: pa.Field, values: list, where: list[str | None]) -> pa.Array:
    """:func:`_typed`, a value of another type an :class:`_Unusable` naming the column and the key
    (``where``: the Redis key of every row, None where nothing was found)."""
    try:
        return _typed(values, field.type)
    except _BAD_VALUE as err:
        for value, key in zip(values, where):
            try:
                _typed([value], field.type)
            except _BAD_VALUE:
                raise _Unusable(f"column {field.name!r} under {key} holds {value!r:.80}, not a {field.type} "
                                "value") from None
        raise _Unusable(f"column {field.name!r} holds values of another type than {field.type} "
                        f"({type(err).__name__}: {err})") from None


def _header(view: ViewSnapshot) -> dict:
    """What an export's ``_meta`` must say for ``view``: its value columns, their Arrow types, the
    cut-off and the row count."""
    return {"columns": list(view.meta.value_columns), "types": [str(f.type) for f in view.values.schema],
            "cutoff": view.meta.cutoff.isoformat(), "rows": view.num_rows}


def encode_rows(view: ViewSnapshot) -> Iterator[tuple[tuple, str]]:
    """(key tuple, JSON value) for every row of ``view``: the value is the list of its
    :attr:`SnapshotMeta.value_columns` values (``feature_ts`` in microseconds)."""
    columns = [_plain(view.values.column(c).combine_chunks()) for c in view.meta.value_columns]
    for i, key in enumerate(view.key_tuples()):
        yield key, json.dumps([c[i] for c in columns], separators=(",", ":"))


def redis_meta(view: ViewSnapshot, generation: str) -> str:
    """The ``_meta`` value of ``view``'s export: :func:`_header` and the ``generation`` holding it."""
    return json.dumps({**_header(view), "generation": generation}, sort_keys=True)


class _Unusable(Exception):
    """Redis answered, but not with this version's export."""


class RedisFeatureStore:
    """Features from Redis with the bundle snapshot as fallback (see the module docstring).

    ``fallbacks`` counts lookups served from the snapshot because of Redis, ``redis_lookups``
    those Redis served; ``last_source`` is ``"redis"`` or ``"snapshot"``; ``last_error`` the most
    recent failure; ``generations`` the export each view was last read from. ``client`` replaces the
    redis-py client built from ``cfg.url`` (tests).
    """

    def __init__(self, snapshot: FeatureSnapshot, version: str, cfg: RedisConfig, *, client: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if client is None:
            if cfg.url is None:
                raise ValueError("RedisFeatureStore needs cfg.url or a client")
            try:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
            except ImportError as e:
                raise ImportError("RedisFeatureStore needs redis-py: pip install 'pinrec[redis]'") from e
            client = redis.Redis.from_url(cfg.url, socket_timeout=cfg.timeout_s,
                                          socket_connect_timeout=cfg.timeout_s, retry=Retry(NoBackoff(), 0))
        self.snapshot, self.version, self.cfg = snapshot, version, cfg
        self._client, self._clock = client, clock
        self._retry_at = float("-inf")
        self._generations: dict[str, str] = {}  # view -> the export generation its _meta named last
        self.fallbacks = 0
        self.redis_lookups = 0
        self.last_source: str | None = None
        self.last_error: str | None = None

    @property
    def degraded(self) -> bool:
        """True while serving from the snapshot after a Redis failure."""
        return self._clock() < self._retry_at

    @property
    def generations(self) -> dict[str, str]:
        """View -> the export generation its ``_meta`` key named when Redis last answered a lookup of
        the view (the id the export reported); views not yet read from Redis are absent."""
        return dict(self._generations)

    def lookup(self, view: str, keys: Any, now: Any = None) -> pa.Table:
        """The same columns as :meth:`FeatureSnapshot.lookup`, from Redis when it answers."""
        vs = self.snapshot.view(view)
        cols = vs.key_columns(keys)
        if not self.degraded:
            try:
                values, fts, found = self._fetch(vs, cols)
            except Exception as e:  # redis-py errors, socket errors, an absent or foreign export
                if not _is_redis_failure(e):
                    raise
                self._retry_at = self._clock() + self.cfg.retry_after_s
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("redis %s unusable for %s/%s (%s); serving features from the bundle snapshot for "
                            "the next %.1f s", self.cfg.url or self._client, self.version, view, self.last_error,
                            self.cfg.retry_after_s)
            else:
                self.redis_lookups += 1
                self.last_source = "redis"
                return vs.finish(values, fts, found, now)
        self.fallbacks += 1
        self.last_source = "snapshot"
        return vs.lookup(keys, now)

    def _fetch(self, vs: ViewSnapshot, cols: list[pa.Array]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """(values, feature_ts in microseconds, found) of the B keys ``cols`` from one MGET (two when
        the generation ``_meta`` names changed); an export that is absent or does not match the
        snapshot, or holds a value of another type, is :class:`_Unusable`."""
        meta, prefix = vs.meta, self.cfg.key_prefix
        lists = [c.to_pylist() for c in cols]
        keyed = [i for i, k in enumerate(zip(*lists)) if None not in k]
        meta_key = redis_meta_key(prefix, self.version, meta.view)
        for _ in range(3):  # _meta and the keys of the generation it named last time, in one atomic MGET
            generation = self._generations.get(meta.view)
            names = [meta_key] if generation is None else [meta_key, *(
                redis_key(prefix, self.version, meta.view, generation, tuple(k[i] for k in lists)) for i in keyed)]
            replies = self._client.mget(names)
            current = self._check_header(vs, meta_key, replies[0])
            if current == generation:
                break
            self._generations[meta.view] = current  # first lookup, or re-exported since: read that generation
        else:
            raise _Unusable(f"the export of {meta.view!r} for version {self.version} kept changing generation")
        n, width = len(lists[0]), len(meta.value_columns)
        rows: list[list | None] = [None] * n
        where: list[str | None] = [None] * n
        for i, name, raw in zip(keyed, names[1:], replies[1:]):
            if raw is not None:
                row = json.loads(raw)
                if not isinstance(row, list) or len(row) != width:
                    raise _Unusable(f"malformed value under {name}: not a list of {width} values")
                rows[i], where[i] = row, name
        found = np.array([r is not None for r in rows], dtype=bool)
        schema = vs.values.schema
        arrays = [_typed_column(schema.field(j), [r[j] if r is not None else None for r in rows], where)
                  for j in range(width)]
        no_ts = [w for r, w in zip(rows, where) if r is not None and r[-1] is None]
        if no_ts:
            raise _Unusable(f"column {meta.feature_ts_column!r} under {no_ts[0]} is null")
        fts = np.array([r[-1] if r is not None else 0 for r in rows], dtype=np.int64)
        return pa.Table.from_arrays(arrays, schema=schema), fts, found

    def _check_header(self, vs: ViewSnapshot, name: str, raw: bytes | None) -> str:
        """The generation holding this version's export of the view, from ``raw`` (the ``_meta``
        value under ``name``); :class:`_Unusable` unless it says the export is complete and matches
        the snapshot (columns, types, cut-off, rows)."""
        if raw is None:
            raise _Unusable(f"no complete export of {vs.meta.view!r} for version {self.version} ({name} is absent)")
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise _Unusable(f"{name} is not an export header (a JSON object): {raw!r:.80}")
        differ = [k for k, v in _header(vs).items() if header.get(k) != v]
        if differ:
            raise _Unusable(f"the export of {vs.meta.view!r} for version {self.version} does not match the snapshot "
                            f"({name}: {', '.join(differ)} differ)")
        generation = header.get("generation")
        if not isinstance(generation, str) or not generation:
            raise _Unusable(f"{name} names no export generation: not this code's export format, re-export it")
        return generation

    def __repr__(self) -> str:
        return (f"RedisFeatureStore({self.cfg.url}, version={self.version}, redis_lookups={self.redis_lookups}, "
                f"fallbacks={self.fallbacks}, degraded={self.degraded})")


def _is_redis_failure(error: Exception) -> bool:
    if isinstance(error, (_Unusable, OSError, json.JSONDecodeError, UnicodeDecodeError)):
        return True
    return any(c.__module__.startswith("redis") and c.__name__ == "RedisError" for c in type(error).__mro__)
