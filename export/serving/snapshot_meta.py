"""What a feature snapshot file is: its name, the metadata that describes it, and its times.

A snapshot (written by :mod:`pinrec.jobs.features.feature_snapshot`) holds, per feature view, the value of every
entity as the point-in-time join would attach it at the snapshot's ``cutoff``: one Parquet file
``features_<view>.parquet`` with the entity columns, ``<view>__<feature>`` for every feature and
``<view>__feature_ts``, and a :class:`SnapshotMeta` (view, entities, features, TTL, cut-off) in
the Parquet key-value metadata, so the file describes itself. Times are UTC (naive = UTC, as the
Spark sessions write them) and compared as int64 microseconds since the epoch (:func:`to_micros`).

Opened by :mod:`pinrec.export.serving.view_snapshot`. Base install only: numpy and pyarrow.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

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
