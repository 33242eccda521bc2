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
category) moves with who was active, and its PSI with them. So the PSI comes with its **sampling
noise** (``noise_psi``, :func:`sampling_psi`): the PSI that days simulated from the reference window
itself reach, with as many users as the current day (a day's rows are clustered by user: a draw of
rows would understate the noise wherever users come and go, and a draw of users that ignores who is
active every day would overstate it wherever heavy users are), at the ``quantile`` of ``resamples``
seeded days. The window's own sampling error is not added: with a short window of few users the
level is low, and the limit then rests on ``blessing.max_category_psi``. A shift is one the sample can show only where its PSI lies well above that level
(:mod:`pinrec.export.build.blessing` judges the ratio).
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
    noise_psi: float | None = None


@dataclass(frozen=True)
class SamplingNoise:
    """How :func:`sampling_psi` measures the PSI of sampling alone: ``resamples`` seeded draws
    (``seed``), the ``quantile`` of their PSIs."""

    resamples: int = 200
    quantile: float = 0.99
    seed: int = 7

    def __post_init__(self):
        if self.resamples < 1 or not 0 < self.quantile < 1:
            raise ValueError(f"sampling noise: resamples must be >= 1 and quantile in (0, 1), got "
                             f"{self.resamples}, {self.quantile}")


def sampling_psi(buckets, users, days, draws: int, bucket_count: int, floor: float, noise: SamplingNoise) -> float:
    """The ``noise.quantile`` of the PSI between the reference's bucket shares and ``noise.resamples``
    days simulated from it. ``buckets``: (N,) bucket index in [0, ``bucket_count``) of every reference
    row; ``users`` / ``days``: (N,) labels of its user and day (None: every row a user of its own).

    A simulated day holds ``draws`` users, each with the rows of one of its days at random: the users
    active on every day of a window of two days or more (they are on the next real day too), then
    users drawn with replacement from the others, in proportion to the share of days they were active
    on (a bootstrap; with fewer draws than everyday users, a random subset of those)."""
    buckets = np.asarray(buckets, dtype=np.int64)
    if buckets.size == 0 or draws < 1:
        raise ValueError(f"sampling_psi: needs reference rows and draws >= 1, got {buckets.size} rows, {draws} draws")
    if users is None:
        users, days = np.arange(buckets.size), np.zeros(buckets.size, dtype=np.int64)
    day_codes = np.unique(np.asarray(days), return_inverse=True)[1].ravel()
    user_codes = np.unique(np.asarray(users), return_inverse=True)[1].ravel()
    # one cluster per (user, day), ordered by user: a user's clusters are contiguous
    clusters, cluster_of_row = np.unique(np.stack([user_codes, day_codes], axis=1), axis=0, return_inverse=True)
    per_cluster = np.zeros((len(clusters), bucket_count))
    np.add.at(per_cluster, (cluster_of_row.ravel(), buckets), 1.0)
    first = np.searchsorted(clusters[:, 0], np.arange(user_codes.max() + 1))
    active_days = np.diff(np.append(first, len(clusters)))
    window_days = int(day_codes.max()) + 1
    everyday = np.flatnonzero(active_days == window_days) if window_days >= 2 else np.array([], dtype=np.int64)
    others = np.setdiff1d(np.arange(len(first)), everyday)
    weight = active_days[others] / active_days[others].sum() if len(others) else None
    e = np.maximum(per_cluster.sum(axis=0) / buckets.size, floor)
    rng = np.random.default_rng(noise.seed)
    out = np.empty(noise.resamples)
    for i in range(noise.resamples):
        if draws <= len(everyday) or not len(others):
            chosen = rng.choice(everyday, size=min(draws, len(everyday)), replace=False)
        else:
            chosen = np.concatenate([everyday, rng.choice(others, size=draws - len(everyday), p=weight)])
        day = first[chosen] + (rng.random(len(chosen)) * active_days[chosen]).astype(np.int64)
        counts = per_cluster[day].sum(axis=0)
        a = np.maximum(counts / counts.sum(), floor) if counts.sum() else np.full(bucket_count, floor)
        out[i] = np.sum((a - e) * np.log(a / e))
    return float(np.quantile(out, noise.quantile))


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
                       column: str = "values", *, noise: SamplingNoise | None = None, reference_users=None,
                       reference_days=None, current_users: int | None = None) -> CategoryShift:
    """:class:`CategoryShift` of two pandas Series of labels (``column`` names them in errors). With
    ``noise``, also its ``noise_psi`` (:func:`sampling_psi`): days of ``current_users`` users (default:
    the current rows) simulated from ``reference_users`` / ``reference_days`` ((N,) labels aligned
    with ``reference``; None: rows)."""
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
    noise_psi = None
    if noise is not None:
        buckets = reference.map({v: i for i, v in enumerate(top)}).fillna(len(top)).to_numpy()
        buckets[reference.isna().to_numpy()] = len(top) + 1
        noise_psi = sampling_psi(buckets, reference_users, reference_days, current_users or cur_rows, len(top) + 2,
                                 floor, noise)
    return CategoryShift(buckets=(*map(str, top), OTHER, NULL), share_reference=tuple(e.tolist()),
                         share_current=tuple(a.tolist()), psi=float(np.sum((af - ef) * np.log(af / ef))),
                         unseen_share=sum(cur[v] for v in unseen) / non_null if non_null else None,
                         unseen=tuple(map(str, unseen[:5])), noise_psi=noise_psi)


def category_shift(reference, current, columns, max_categories: int = 50, floor: float = 1e-4,
                   noise: SamplingNoise | None = None, group: str | None = None) -> dict[str, CategoryShift]:
    """:func:`compare_categories` of each of ``columns`` between two pandas frames; with ``noise``,
    the sampling noise of days of ``group`` values (users) where the frames have that column and ``dt``
    (the simulated days then hold as many of them as the current frame), else of rows."""
    users = days = groups = None
    if noise is not None and group and {group, "dt"} <= set(reference.columns) and group in current.columns:
        users, days = reference[group].astype(str).to_numpy(), reference["dt"].astype(str).to_numpy()
        groups = int(current[group].nunique(dropna=False))
    out = {}
    for column in columns:
        missing = [n for n, f in (("reference", reference), ("current", current)) if column not in f.columns]
        if missing:
            raise ValueError(f"category_shift: column {column!r} is not in the {' and '.join(missing)} frame")
        out[column] = compare_categories(reference[column], current[column], max_categories, floor, column,
                                         noise=noise, reference_users=users, reference_days=days,
                                         current_users=groups)
    return out
