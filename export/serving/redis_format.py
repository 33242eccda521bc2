"""How a feature snapshot lies in Redis: :class:`RedisConfig`, the key names, the rows as JSON and
the ``_meta`` header.

Written by :mod:`pinrec.jobs.features.redis_export`, read by
:class:`~pinrec.export.serving.redis_store.RedisFeatureStore`. Keys
``<prefix>:<bundle version>:<view>:<generation>:<json key>`` hold one JSON list of the view's
``value_columns`` (timestamps such as ``feature_ts`` as int64 microseconds, dates as int32 days);
a per-view ``<prefix>:<bundle version>:<view>:_meta`` key, written last, names the generation that
holds the complete export, with the columns, their Arrow types, the cut-off and the row count.

Base install only: nothing here talks to Redis or imports redis-py.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from pinrec.schemas.bounds import bounded, check_bounds

from .view_snapshot import ViewSnapshot


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
