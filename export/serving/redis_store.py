"""Features from Redis with the bundle snapshot as fallback: :class:`RedisFeatureStore`.

It reads the rows :mod:`pinrec.jobs.features.redis_export` wrote (the layout is
:mod:`pinrec.export.serving.redis_format`: keys ``<prefix>:<bundle version>:<view>:<generation>:<json key>``,
and a per-view ``_meta`` key, written last, that names the generation holding the complete export)
with one atomic ``MGET`` per lookup: ``_meta`` together with the keys of the generation it named on
the previous lookup. When ``_meta`` names another one (the first lookup of a view, or the version
was re-exported since), the lookup reads again from that generation: one more round trip. So a
lookup sees one complete export, never a mix of two, nor keys an earlier export of the same version
left behind. A Redis that is down, slow (socket timeout), lacks the version's export, or holds one
that does not match the snapshot (the ``_meta`` key's columns, their Arrow types, the cut-off and
the row count; any value that is malformed or of another type than its column's, a null
``feature_ts``) makes it serve from the snapshot instead: a warning naming the key (and column),
``fallbacks`` += 1, ``last_error`` set, and no new attempt for ``retry_after_s``.

Base install only: numpy and pyarrow (redis-py is imported lazily; it is the ``redis`` extra).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from .feature_snapshot import FeatureSnapshot
from .redis_format import RedisConfig, _header, _typed, redis_key, redis_meta_key
from .view_snapshot import ViewSnapshot

# the name it logged under before feature_store.py was split: the CLI prints it, filters may match it
log = logging.getLogger("pinrec.export.serving.feature_store")


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
