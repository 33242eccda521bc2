"""Feature views: typed, entity-keyed feature tables with a time-to-live (as Feast declares them).

A feature table holds one row per (entity, ``feature_ts``): the value became valid at
``feature_ts`` and the pipeline wrote it at ``created_ts`` (so an online store could first serve
it then). The point-in-time join (:mod:`jobs.pit_join`) attaches to an event at time ``t`` the row
with the greatest ``feature_ts`` such that ``feature_ts <= t``, ``created_ts <= t`` and
``feature_ts >= t - ttl``; otherwise nulls and ``<view>__missing = true``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .tables import DTYPES


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    doc: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name!r}: unknown dtype {self.dtype!r}; use one of {sorted(DTYPES)}")


@dataclass(frozen=True)
class FeatureView:
    """Args:
        name: view name; joined columns are called ``<name>__<feature>``.
        entity: the key column (e.g. ``user_id``), present in the spine and the feature table.
        features: the value columns.
        ttl: how long a value stays valid after its ``feature_ts``; must be positive.
    """

    name: str
    entity: str
    features: tuple[Feature, ...]
    ttl: dt.timedelta
    feature_ts: str = "feature_ts"
    created_ts: str = "created_ts"

    def __post_init__(self) -> None:
        if self.ttl <= dt.timedelta(0):
            raise ValueError(f"feature view {self.name!r}: ttl must be positive, got {self.ttl}")
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"feature view {self.name!r}: features must be non-empty and unique, got {names}")
        reserved = {self.entity, self.feature_ts, self.created_ts}
        if reserved & set(names):
            raise ValueError(f"feature view {self.name!r}: features may not be named {sorted(reserved & set(names))}")

    def column(self, feature: str) -> str:
        """The joined column name of ``feature``."""
        return f"{self.name}__{feature}"

    @property
    def missing_column(self) -> str:
        return f"{self.name}__missing"
