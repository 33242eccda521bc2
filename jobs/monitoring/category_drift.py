"""Drift of categorical features: the mix of categories on the newest day against the training window.

Per column (pure numpy / pandas; which columns: :func:`~pinrec.jobs.monitoring.columns.categorical_feature_columns`):

* the PSI over category frequencies, ``sum_b (a_b - e_b) * ln(a_b / e_b)`` with the convention of
  :func:`~pinrec.jobs.monitoring.drift.psi` (``e_b``: reference share, ``a_b``: current share, both
  floored at ``floor``). The buckets are the reference's ``max_categories`` most frequent values
  (ties by value), one :data:`OTHER` bucket for every other value (rare reference values, and
  values the reference never had) and one :data:`NULL` bucket (null or NaN), so a feature going
  null shows here too. A bucket empty in both windows adds 0: an identical mix has PSI 0.
* the unseen share: of the newest day's non-null rows, the share whose value never occurs in the
  reference window (not only outside its top ``max_categories``): a new vocabulary, or a broken
  upstream mapping that turns every value into one the model never saw (its encoder's OOV bucket).
  ``None`` when the newest day has no non-null value.

Both are row shares: where a day's rows come from few users, a user-level category (the user's top
category) moves with who was active, and its PSI with them.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

#: bucket labels of the values outside the reference's top categories, and of nulls
OTHER, NULL = "(other)", "(null)"


@dataclass(frozen=True)
class CategoryShift:
    """One categorical column in both windows. ``buckets``: (K + 2,) labels, the reference's top K
    values (as text) then :data:`OTHER` and :data:`NULL`; ``share_reference`` / ``share_current``:
    (K + 2,) row shares summing to 1; ``psi``: over those shares (module docstring);
    ``unseen_share``: of the current non-null rows, those with a value the reference never had
    (None: no non-null row); ``unseen``: up to five of those values, most frequent first."""

    buckets: tuple[str, ...]
    share_reference: tuple[float, ...]
    share_current: tuple[float, ...]
    psi: float
    unseen_share: float | None
    unseen: tuple[str, ...] = ()


def _counts(values, column: str, window: str) -> tuple[dict[Hashable, int], int, int]:
    """(value -> rows, null rows, rows) of one window's ``column`` (a pandas Series)."""
    if len(values) == 0:
        raise ValueError(f"category_shift: column {column!r} has no rows in the {window} window")
    null = values.isna().to_numpy()
    try:
        counts = values[~null].value_counts(sort=False)
        by_value = dict(zip(counts.index, counts.to_numpy().tolist(), strict=True))
    except TypeError as err:  # lists or arrays: not a label
        raise ValueError(f"category_shift: column {column!r} holds unhashable values in the {window} window "
                         f"({err}): a categorical feature holds labels (strings or integer codes)") from None
    return by_value, int(null.sum()), len(values)


def compare_categories(reference, current, max_categories: int = 50, floor: float = 1e-4,
                       column: str = "values") -> CategoryShift:
    """:class:`CategoryShift` of two pandas Series of labels (``column`` names them in errors)."""
    if max_categories < 1 or not 0 < floor < 1:
        raise ValueError(f"category_shift: max_categories must be >= 1 and floor in (0, 1), got "
                         f"{max_categories}, {floor}")
    ref, ref_null, ref_rows = _counts(reference, column, "reference")
    cur, cur_null, cur_rows = _counts(current, column, "current")
    top = sorted(ref, key=lambda v: (-ref[v], str(v)))[:max_categories]
    e = np.array([ref[v] for v in top] + [ref_rows - ref_null - sum(ref[v] for v in top), ref_null]) / ref_rows
    matched = [cur.get(v, 0) for v in top]
    a = np.array(matched + [cur_rows - cur_null - sum(matched), cur_null]) / cur_rows
    ef, af = np.maximum(e, floor), np.maximum(a, floor)
    unseen = sorted((v for v in cur if v not in ref), key=lambda v: (-cur[v], str(v)))
    non_null = cur_rows - cur_null
    return CategoryShift(buckets=(*map(str, top), OTHER, NULL), share_reference=tuple(e.tolist()),
                         share_current=tuple(a.tolist()), psi=float(np.sum((af - ef) * np.log(af / ef))),
                         unseen_share=sum(cur[v] for v in unseen) / non_null if non_null else None,
                         unseen=tuple(map(str, unseen[:5])))


def category_shift(reference, current, columns, max_categories: int = 50,
                   floor: float = 1e-4) -> dict[str, CategoryShift]:
    """:func:`compare_categories` of each of ``columns`` between two pandas frames."""
    out = {}
    for column in columns:
        missing = [n for n, f in (("reference", reference), ("current", current)) if column not in f.columns]
        if missing:
            raise ValueError(f"category_shift: column {column!r} is not in the {' and '.join(missing)} frame")
        out[column] = compare_categories(reference[column], current[column], max_categories, floor, column)
    return out
