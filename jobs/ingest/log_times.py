"""The time of an interaction log's rows (:mod:`pinrec.jobs.ingest.log_reader`).

Time (``LogSpec.timestamps``):

* ``"column"``: the ``timestamp`` column; numbers are ``timestamp_unit`` (``"s"``, ``"ms"`` or ``"auto"``,
  the default: milliseconds when the largest is at least 1e11, which in seconds would be the year 5138)
  since the Unix epoch, text is parsed as dates (naive -> UTC); a time that cannot be a date (after
  2262, or seconds that are plainly milliseconds) is an error naming the column and ``timestamp_unit``;
* ``"row_order"``: the file has no time but its rows are in time order: row ``i`` (0-based) gets
  ``ORIGIN + i`` seconds;
* ``"none"``: no time at all: every interaction gets ``ORIGIN`` (all ties; the leave-one-out split
  then holds out a seeded choice of item per user).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .log_columns import _column
from .log_spec import LogSpec

#: The time given to the interactions of a log without timestamps (row ``i`` of a row-ordered log: + i s).
ORIGIN = pd.Timestamp("2000-01-01", tz="UTC")
#: with ``timestamp_unit: auto``, numeric times whose largest is at least this are milliseconds
MS_FROM = 1e11


def _times(frame: pd.DataFrame, spec: LogSpec, path: str | Path) -> pd.Series:
    if spec.mode == "none":
        return pd.Series(ORIGIN, index=frame.index)
    if spec.mode == "row_order":
        return pd.Series(ORIGIN + pd.to_timedelta(np.arange(len(frame)), unit="s"), index=frame.index)
    raw = _column(frame, spec.timestamp, "timestamp", path)
    if pd.api.types.is_numeric_dtype(raw):
        largest = float(raw.abs().max())
        # auto: the unit of the typical value, so one sentinel (9999-12-31 in seconds) cannot turn every time into ms
        typical = float(raw.abs().median())
        unit = spec.timestamp_unit if spec.timestamp_unit != "auto" else "ms" if typical >= MS_FROM else "s"
        if unit == "s" and largest >= MS_FROM:
            over = int((raw.abs() >= MS_FROM).sum())
            why = ("set dataset.timestamp_unit: ms (or auto)" if spec.timestamp_unit == "s" else
                   f"{over} of {len(raw)} values are that large while the median, {typical:.0f}, is in seconds: "
                   "a sentinel date or rows in milliseconds; fix those rows (or set dataset.timestamp_unit)")
            raise ValueError(f"{path}: the timestamp column {spec.timestamp!r} holds {largest:.0f}, the year "
                             f"{1970 + int(largest // 31_556_952)} in seconds: {why}")
        try:
            return pd.to_datetime(raw.astype("int64"), unit=unit, utc=True)
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            raise ValueError(f"{path}: the timestamp column {spec.timestamp!r} holds {largest:.0f}, not a time in "
                             f"{'milli' if unit == 'ms' else ''}seconds since 1970 (dataset.timestamp_unit: "
                             f"{spec.timestamp_unit})") from None
    return _parse_dates(raw, f"{path}: the timestamp column {spec.timestamp!r}")


def _parse_dates(raw: pd.Series, what: str) -> pd.Series:
    """Date strings -> UTC times: ISO 8601, else one format pandas infers from the first value for all of
    them, else each value on its own, refused where the day/month order is a guess that decides the date
    (``12/02/2024`` read as 2 December beside ``13/02/2024`` read as 13 February)."""
    for fmt in ("ISO8601", None):
        try:
            return pd.to_datetime(raw, utc=True, format=fmt)
        except (ValueError, TypeError, OverflowError):
            continue
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "parsing dates in DD/MM/YYYY format": checked below
            month_first = pd.to_datetime(raw, utc=True, format="mixed", dayfirst=False)
            day_first = pd.to_datetime(raw, utc=True, format="mixed", dayfirst=True)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{what} is neither numbers nor dates ({e})") from None
    differ = ~((month_first == day_first) | (month_first.isna() & day_first.isna()))
    if differ.any():
        example = raw[differ].iloc[0]
        raise ValueError(f"{what} mixes date formats and {int(differ.sum())} value(s), e.g. {example!r}, read as "
                         f"{month_first[differ].iloc[0]:%Y-%m-%d} month first or {day_first[differ].iloc[0]:%Y-%m-%d} "
                         "day first: write the times as ISO 8601 (YYYY-MM-DD ...) or epoch numbers")
    return month_first
