"""The columns of an interaction log (:mod:`pinrec.jobs.ingest.log_reader`): checked access, numbers and ids.

Ids: plain non-negative integers (no leading zero, below :data:`MAX_KEPT_ID`) are kept as
they are; any other id (strings, floats, zero-padded numbers such as ``007``, which must not merge
with ``7``, and huge ones such as 64-bit snowflake ids, whose board ids would overflow) is replaced by
its 1-based rank among the sorted distinct values, and the mapping is returned
(:attr:`~pinrec.jobs.ingest.log_spec.ReadLog.user_ids` / :attr:`~pinrec.jobs.ingest.log_spec.ReadLog.item_ids`)
so that it can be stored with the landing.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

#: integer ids at least this large (in absolute value) are renumbered: board ids are user_id x 100+ and
#: must stay within int64 (64-bit snowflake ids would overflow them)
MAX_KEPT_ID = 10 ** 12
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T]|$)")


def _column(frame: pd.DataFrame, name: str, role: str, path: str | Path, required: bool = True) -> pd.Series:
    if name not in frame.columns:
        columns = [str(c) for c in frame.columns]
        if len(columns) == 1:
            hint = ("the file was read as one column: its separator is not tab, '::', comma, ';' or '|' "
                    "(set dataset.sep)")
        elif any(_looks_like_a_value(c) for c in columns):
            hint = "the first row looks like data, not a header (name the columns with dataset.names)"
        else:
            hint = "map it with the dataset.*_column settings or the load-dataset flags"
        raise ValueError(f"{path}: the {role} column {name!r} is missing; columns: {columns[:20]} ({hint})")
    values = frame[name]
    if required and values.isna().any():
        raise ValueError(f"{path}: the {role} column {name!r} has {int(values.isna().sum())} empty value(s)")
    return values


def _numbers(frame: pd.DataFrame, name: str, role: str, path: str | Path) -> pd.Series:
    values = _column(frame, name, role, path)
    parsed = pd.to_numeric(values, errors="coerce").astype(float)
    bad = parsed.isna() | ~np.isfinite(parsed)
    if bad.any():
        raise ValueError(f"{path}: the {role} column {name!r} has {int(bad.sum())} value(s) that are not finite "
                         f"numbers, e.g. {values[bad].iloc[0]!r} (row {int(np.flatnonzero(bad)[0]) + 1})")
    return parsed


def _looks_like_a_value(column: str) -> bool:
    """A column name that is a number or an ISO date: a header-less file's first row (``A1B2,B00X,4.0,1400317293``
    or ``user_000001,2009-05-04T23:08:57Z,...``): a header rarely names a column so."""
    if _ISO_DATE.match(column):
        return True
    try:
        float(column)
        return True
    except ValueError:
        return False


def _int_ids(values: pd.Series) -> np.ndarray | None:
    """(N,) int64 when every value is a plain non-negative integer (an integer column, or text like
    ``42`` without a leading zero) below :data:`MAX_KEPT_ID`; else None (a negative id is renumbered:
    faiss marks a missing neighbour with -1)."""
    if pd.api.types.is_integer_dtype(values):
        if len(values) and (values.max() >= MAX_KEPT_ID or values.min() < 0):
            return None
        return values.to_numpy(np.int64)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return None  # floats: renumbered, as before
    text = values.astype(str)
    if not text.str.fullmatch(_INT_TEXT).all():
        return None
    return _int_ids(text.astype(np.int64)) if text.str.len().max() <= len(str(MAX_KEPT_ID)) else None


def _ids(values: pd.Series) -> tuple[np.ndarray, pd.DataFrame | None]:
    kept = _int_ids(values)
    if kept is not None:
        return kept, None
    vocabulary = np.sort(values.astype(str).unique())
    codes = np.searchsorted(vocabulary, values.astype(str).to_numpy()) + 1
    return codes.astype(np.int64), pd.DataFrame({"value": vocabulary, "id": np.arange(1, len(vocabulary) + 1)})
