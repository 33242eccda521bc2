"""The warm-up rule of drift monitoring: which reference rows a feature is compared on.

On the first ingested day no feature has a value yet (every view's row is built from a day's
events and serves from that day's end), and a feature aggregated over a ``W``-day window
(``Feature.window_days``) is truncated on the first ``W`` days of history (a 30-day count on day 5
covers 4 days); so a feature is compared only on reference days at least ``max(W, 1)`` days after
the first ingested day. While the newest day itself, or every reference day, is inside that
warm-up, the feature is listed as warming up and left out of the drift metrics (a growing count,
or the first day's all-null rows, is not drift). A column whose window is ``None`` (a raw table's
column, such as the impression's ``surface`` or the pin's ``category``: the row carries it from
the first day) has no warm-up and is compared on every reference row.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping


def warmed_up(reference, current, columns, compare: Callable, *, day: dt.date, history_start: dt.date | None,
              windows: Mapping[str, int | None]) -> tuple[dict, tuple[str, ...]]:
    """``compare(reference_rows, current, group) -> {column: result}`` under the warm-up rule:
    a column with a ``W``-day window (``windows``; default 0, None: no warm-up) is compared on the
    reference rows whose ``dt`` is at least ``history_start + max(W, 1)`` days; returns the results
    (in ``columns`` order) and the columns still warming up. No ``history_start``: every column is
    compared on every reference row."""
    if history_start is None:
        return compare(reference, current, list(columns)), ()
    results: dict = {}
    warming: list[str] = []
    ref_days = reference["dt"].map(as_date)
    for window, group in _by_window(columns, windows).items():
        start = complete(history_start, window)
        eligible = reference if start is None else reference[(ref_days >= start).to_numpy()]
        if (start is not None and day < start) or not len(eligible):
            warming += group
        else:
            results |= compare(eligible, current, group)
    return {c: results[c] for c in columns if c in results}, tuple(c for c in columns if c in warming)


def complete(history_start: dt.date, window: int | None) -> dt.date | None:
    """The first day whose features are neither absent (the first day) nor truncated (``window``);
    None for a column without warm-up (``window`` None)."""
    return None if window is None else history_start + dt.timedelta(days=max(window, 1))


def as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):  # pandas Timestamps too
        return value.date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _by_window(columns, windows: Mapping[str, int | None]) -> dict[int | None, list[str]]:
    out: dict[int | None, list[str]] = {}
    for c in columns:
        window = windows.get(c, 0)
        out.setdefault(None if window is None else int(window), []).append(c)
    return out
