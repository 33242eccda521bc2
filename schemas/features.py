"""Feature views: typed, entity-keyed feature tables with a time-to-live (as Feast declares them).

A feature table holds one row per (entity, ``feature_ts``): the value became valid at
``feature_ts`` and the pipeline wrote it at ``created_ts`` (so an online store could first serve
it then). The point-in-time join (:mod:`pinrec.jobs.features.pit_join`) attaches to an event at time ``t`` the row
with the greatest ``feature_ts`` such that ``feature_ts <= t``, ``created_ts <= t`` and
``feature_ts >= t - ttl``; otherwise nulls and ``<view>__missing = true``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .tables import DTYPES

#: The longest TTL a view may declare. Every join path computes ``t - ttl`` in int64 microseconds
#: (``timedelta.max`` is ~8.6e19 us, past int64); a century is far inside that and longer than any
#: history, so it is as good as "never expires".
MAX_TTL = dt.timedelta(days=36_525)


@dataclass(frozen=True)
class Feature:
    """``window_days``: the trailing window the value aggregates (0: a point value or an all-time
    count). Drift monitoring uses it: a ``W``-day aggregate is truncated on the first ``W`` days of
    history, so those days are no reference for it (:mod:`pinrec.jobs.monitoring.warm_up`). ``cumulative``: an
    all-time count or an age, which grows with every day of history by construction; drift monitoring
    leaves it out, since its mean rises against any earlier reference without anything having
    changed (on MovieLens-100K the pins' board count alone failed the blessing gate, on a 3-year
    ratings log the pins' age: 2.1 standard deviations older on the newest day than over the years before). A ``string``
    feature is :attr:`categorical`: a label such as a category (ids are the view's entities, never
    its features), whose mix of values drift monitoring compares."""

    name: str
    dtype: str
    doc: str = ""
    window_days: int = 0
    cumulative: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name!r}: unknown dtype {self.dtype!r}; use one of {sorted(DTYPES)}")
        if isinstance(self.window_days, bool) or not isinstance(self.window_days, int) or self.window_days < 0:
            raise ValueError(f"feature {self.name!r}: window_days must be an int >= 0, got {self.window_days!r}")
        if not isinstance(self.cumulative, bool) or (self.cumulative and self.window_days):
            raise ValueError(f"feature {self.name!r}: cumulative must be a bool, and an all-time count has "
                             f"window_days 0; got cumulative={self.cumulative!r}, window_days={self.window_days}")

    @property
    def categorical(self) -> bool:
        """A label from a vocabulary (dtype ``string``), not a number."""
        return self.dtype == "string"


@dataclass(frozen=True)
class FeatureView:
    """Args:
        name: view name; joined columns are called ``<name>__<feature>``.
        entities: the key column(s) (e.g. ``("user_id",)`` or ``("user_id", "category")``),
            present in the spine and the feature table.
        features: the value columns.
        ttl: how long a value stays valid after its ``feature_ts``: a ``datetime.timedelta`` of a
            positive whole number of seconds, at most :data:`MAX_TTL` (100 years).
        feature_ts: the column holding when a value became valid.
        created_ts: the column holding when it was written; may be ``feature_ts`` itself (a value
            known as soon as it is valid). Neither may be an entity column.
    """

    name: str
    entities: tuple[str, ...]
    features: tuple[Feature, ...]
    ttl: dt.timedelta
    feature_ts: str = "feature_ts"
    created_ts: str = "created_ts"

    def __post_init__(self) -> None:
        if not isinstance(self.ttl, dt.timedelta):
            raise TypeError(f"feature view {self.name!r}: ttl must be a datetime.timedelta (e.g. "
                            f"timedelta(seconds=3600)), got {type(self.ttl).__name__} {self.ttl!r}")
        if self.ttl <= dt.timedelta(0) or self.ttl % dt.timedelta(seconds=1) or self.ttl > MAX_TTL:
            # whole seconds: the serving snapshot records the TTL in seconds, and every join path applies it exactly
            raise ValueError(f"feature view {self.name!r}: ttl must be a positive whole number of seconds, "
                             f"at most {MAX_TTL.days} days, got {self.ttl}")
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"feature view {self.name!r}: features must be non-empty and unique, got {names}")
        if isinstance(self.entities, str) or not self.entities:
            raise ValueError(f"feature view {self.name!r}: entities must be a non-empty tuple of columns")
        repeated = sorted({e for e in self.entities if list(self.entities).count(e) > 1})
        if repeated:
            raise ValueError(f"feature view {self.name!r}: entities must be distinct columns, got {repeated} "
                             f"more than once in {list(self.entities)}")
        times = sorted({self.feature_ts, self.created_ts} & set(self.entities))
        if times:
            raise ValueError(f"feature view {self.name!r}: entity {times} is also its feature_ts/created_ts column; "
                             f"a key cannot be a time")
        reserved = {*self.entities, self.feature_ts, self.created_ts}
        if reserved & set(names):
            raise ValueError(f"feature view {self.name!r}: features may not be named {sorted(reserved & set(names))}")

    def column(self, feature: str) -> str:
        """The joined column name of ``feature``."""
        return f"{self.name}__{feature}"

    @property
    def missing_column(self) -> str:
        return f"{self.name}__missing"


def _counts(prefix: str, windows: tuple[int, ...]) -> tuple[Feature, ...]:
    return tuple(Feature(f"{prefix}_{w}d", "int64", window_days=w) for w in windows)


#: Daily user engagement, valid for two days after the day it summarises.
USER_FEATURES = FeatureView(
    name="user",
    entities=("user_id",),
    features=(
        *_counts("impressions", (1, 7, 30)), *_counts("closeups", (1, 7, 30)), *_counts("saves", (1, 7, 30)),
        Feature("closeup_rate_30d", "float64", "closeups / impressions, smoothed toward the global rate", window_days=30),
        Feature("save_rate_30d", "float64", "saves / impressions, smoothed toward the global rate", window_days=30),
        Feature("top_category", "string", "category with most closeups in 30 days", window_days=30),
        Feature("top_category_share", "float64", "its share of the user's 30-day closeups", window_days=30),
        Feature("days_since_last_save", "float64", "at feature_ts; null when no save in 30 days", window_days=30),
        Feature("last_saved_pins", "array<int64>", "most recent saves in 30 days, newest first", window_days=30),
        Feature("last_closeup_pins", "array<int64>", "most recent closeups in 30 days, newest first", window_days=30),
    ),
    ttl=dt.timedelta(days=2),
)

#: Daily pin statistics; every pin created by the day's end has a row.
PIN_FEATURES = FeatureView(
    name="pin",
    entities=("pin_id",),
    features=(
        Feature("category", "string"),
        Feature("age_days", "float64", "days since created_at, at feature_ts", cumulative=True),
        *_counts("impressions", (30,)), *_counts("closeups", (30,)), *_counts("saves", (30,)),
        Feature("closeup_rate_30d", "float64", "Bayesian-smoothed toward the global rate", window_days=30),
        Feature("save_rate_30d", "float64", "Bayesian-smoothed toward the global rate", window_days=30),
        Feature("board_count", "int64", "boards holding the pin (Pin-Board graph degree), all time", cumulative=True),
    ),
    ttl=dt.timedelta(days=2),
)

#: The user's engagement with one category (the cross feature of a user and a pin's category).
USER_CATEGORY_FEATURES = FeatureView(
    name="user_category",
    entities=("user_id", "category"),
    features=(
        Feature("impressions_30d", "int64", window_days=30),
        Feature("closeups_30d", "int64", window_days=30),
        Feature("closeup_rate_30d", "float64", "smoothed toward the user's overall 30-day closeup rate", window_days=30),
    ),
    ttl=dt.timedelta(days=2),
)

FEATURE_VIEWS: tuple[FeatureView, ...] = (USER_FEATURES, PIN_FEATURES, USER_CATEGORY_FEATURES)
