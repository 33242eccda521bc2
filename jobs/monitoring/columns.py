"""Which training-set columns drift monitoring compares, read from the schemas (no list of names).

* Numeric features (:func:`numeric_feature_columns`): the views' ``int32``/``int64``/``float32``/
  ``float64`` features, all but the all-time counts and ages (``Feature.cumulative``, e.g.
  ``pin__board_count``, ``pin__age_days``): they grow with history by construction.
* Categorical features (:func:`categorical_feature_columns`): the views' ``string`` features
  (:attr:`~pinrec.schemas.features.Feature.categorical`: ``user__top_category``, ``pin__category``)
  and the raw tables' categorical columns (:attr:`~pinrec.schemas.tables.Column.is_categorical`: a
  closed vocabulary such as the impression's ``surface`` and ``device``, or a declared label such
  as ``country`` and the pin's ``category``) that the training set carries. Ids (user, pin, event
  and session ids, keys) are never categorical: no schema declares them so, and a table refuses
  a categorical key. ``hour`` and ``day_of_week``, which the training set derives from the
  impression's time, are in no schema and not compared: the newest day is one weekday by
  construction, and its last hours are missing until their labels mature, so both would always
  read as a shift.

:func:`feature_windows` gives each column's warm-up (:mod:`pinrec.jobs.monitoring.warm_up`).
"""
from __future__ import annotations

from pinrec.schemas.catalog import RAW_TABLES
from pinrec.schemas.features import FEATURE_VIEWS, FeatureView
from pinrec.schemas.tables import TableSpec

NUMERIC = ("int32", "int64", "float32", "float64")


def numeric_feature_columns(columns, views: tuple[FeatureView, ...] = FEATURE_VIEWS) -> list[str]:
    """The numeric ``<view>__<feature>`` columns among ``columns`` that drift is measured on, in
    view order: all but the cumulative (all-time) counts."""
    present = set(columns)
    return [v.column(f.name) for v in views for f in v.features
            if f.dtype in NUMERIC and not f.cumulative and v.column(f.name) in present]


def categorical_feature_columns(columns, views: tuple[FeatureView, ...] = FEATURE_VIEWS,
                                tables: tuple[TableSpec, ...] = RAW_TABLES) -> list[str]:
    """The categorical columns among ``columns``: the views' string features (view order), then the
    raw tables' categorical columns (table order), each once."""
    present = set(columns)
    found = [v.column(f.name) for v in views for f in v.features if f.categorical and not f.cumulative]
    found += [c for t in tables for c in t.categorical_columns]
    return [c for c in dict.fromkeys(found) if c in present]


def feature_windows(views: tuple[FeatureView, ...] = FEATURE_VIEWS,
                    tables: tuple[TableSpec, ...] = RAW_TABLES) -> dict[str, int | None]:
    """``<view>__<feature>`` -> the feature's ``window_days``; a raw table's categorical column ->
    None: the event or dimension row carries it from the first day, so it has no warm-up."""
    return {**{c: None for t in tables for c in t.categorical_columns},
            **{v.column(f.name): f.window_days for v in views for f in v.features}}
