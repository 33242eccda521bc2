"""ALS on an engagement log: the choice of settings on a held-out slice, then the fit on all of it.

Pure (a pandas log of ``(user_id, pin_id, ts)`` in, numpy factors out); the matrix factorisation is
the retrieval baseline's :class:`~pinrec.jobs.retrieval.baselines.ImplicitScorer` (``implicit``'s
ALS on the binary user x pin matrix, confidence ``1 + alpha``), fitted over the pins the log
engaged with (a pin nobody engaged with would get a zero factor: nothing to retrieve it by).

:func:`holdout_split` cuts the log at ``cutoff - validation_days``; :func:`holdout_recall` scores
every training pin for each held-out user, drops the user's training pins (serving drops the
user's own saves too) and counts the held-out pins in the top ``k``: recall@k = hits / held-out
pins of the user that the training log knows (a pin first engaged with in the slice cannot be
retrieved by any factorisation), averaged over users. :func:`fit_cf` runs the grid
(:meth:`~pinrec.jobs.cf.config.CfConfig.grid`), keeps the best, and refits on the whole log.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pinrec.jobs.retrieval.baselines import ImplicitScorer, check_log

from .config import CfConfig

_BATCH = 1024  # users scored at once: (B, N) float32


@dataclass(frozen=True)
class CfFactors:
    """``user_ids`` (U,) int64 sorted, ``user_factors`` (U, F) float32, ``pin_ids`` (N,) int64
    sorted, ``item_factors`` (N, F) float32; score of (user, pin) = ``user . item``."""

    user_ids: np.ndarray
    user_factors: np.ndarray
    pin_ids: np.ndarray
    item_factors: np.ndarray


@dataclass(frozen=True)
class CfFit:
    """The fitted factors, the settings chosen, and the held-out table: one row per setting tried
    (``factors``, ``regularization``, ``alpha``, ``recall``) plus ``popularity_recall`` (the most
    engaged pins, the same protocol) and ``validation_users``; both None / 0 when nothing was searched."""

    factors: CfFactors
    params: dict[str, float]
    validation: tuple[dict[str, float], ...]
    popularity_recall: float | None
    validation_users: int
    interactions: int
    validation_days: int = 0


def holdout_days(log: pd.DataFrame, cutoff: dt.datetime, fraction: float) -> int:
    """The fewest last days before ``cutoff`` (24-hour steps back from it) whose engagement holds at least
    ``fraction`` of ``log``'s rows: at least one, and fewer than the days the log spans while it spans two."""
    age = ((_utc(cutoff) - check_log(log)["ts"]) // pd.Timedelta(days=1)).to_numpy(np.int64)
    if not age.size:
        return 1
    counts = np.bincount(age)
    taken = int(np.searchsorted(np.cumsum(counts), fraction * age.size)) + 1
    return max(1, min(taken, int(age.max())))


def holdout_split(log: pd.DataFrame, cutoff: dt.datetime, validation_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(engagement before ``cutoff - validation_days``, engagement from then until ``cutoff``)."""
    log = check_log(log)
    split = _utc(cutoff) - pd.Timedelta(days=validation_days)
    early = log["ts"] < split
    return log[early].reset_index(drop=True), log[~early].reset_index(drop=True)


def fit_als(train: pd.DataFrame, params: dict[str, float], cfg: CfConfig) -> ImplicitScorer:
    """ALS with ``params`` (factors, regularization, alpha) and ``cfg``'s iterations, seed and threads
    over the pins ``train`` engaged with."""
    if not len(train):
        raise ValueError("no engagement to fit collaborative filtering on")
    return ImplicitScorer("als", train, np.unique(train["pin_id"].to_numpy()), factors=int(params["factors"]),
                          regularization=float(params["regularization"]), alpha=float(params["alpha"]),
                          iterations=cfg.iterations, random_state=cfg.seed, num_threads=cfg.num_threads)


def holdout_recall(scores: Callable[[np.ndarray], np.ndarray], users: np.ndarray, items: np.ndarray,
                   train: pd.DataFrame, held: pd.DataFrame, k: int) -> tuple[float, int]:
    """(mean recall@k, users measured) of ``held`` (module docstring). ``scores``: (B,) positions in
    ``users`` -> (B, N) scores of ``items`` (both sorted unique ids)."""
    held = held[held["user_id"].isin(users) & held["pin_id"].isin(items)]
    seen = train[["user_id", "pin_id"]].drop_duplicates()
    held = held[["user_id", "pin_id"]].drop_duplicates().merge(seen, how="left", indicator=True)
    held = held[held["_merge"] == "left_only"]
    if not len(held):
        return float("nan"), 0
    query = np.unique(held["user_id"].to_numpy())
    q_pos = np.searchsorted(users, query)
    n, k = len(items), min(k, len(items))
    seen = seen[seen["user_id"].isin(query)]
    seen_row, seen_col = np.searchsorted(query, seen["user_id"].to_numpy()), np.searchsorted(items, seen["pin_id"].to_numpy())
    held_row, held_col = np.searchsorted(query, held["user_id"].to_numpy()), np.searchsorted(items, held["pin_id"].to_numpy())
    hits = np.zeros(len(query))
    for lo in range(0, len(query), _BATCH):
        hi = min(lo + _BATCH, len(query))
        s = np.array(scores(q_pos[lo:hi]), np.float64, copy=True)
        mine = (seen_row >= lo) & (seen_row < hi)
        s[seen_row[mine] - lo, seen_col[mine]] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), s.shape)
        in_top = np.zeros(s.shape, bool)
        np.put_along_axis(in_top, top, True, axis=1)
        mine = (held_row >= lo) & (held_row < hi)
        np.add.at(hits, held_row[mine], in_top[held_row[mine] - lo, held_col[mine]])
    per_user = hits / np.bincount(held_row, minlength=len(query))
    return float(per_user.mean()), len(query)


def _factors(model: ImplicitScorer) -> CfFactors:
    return CfFactors(model.users.astype(np.int64), np.asarray(model.model.user_factors, np.float32),
                     model.items.astype(np.int64), np.asarray(model.model.item_factors, np.float32))


def fit_cf(log: pd.DataFrame, cutoff: dt.datetime, cfg: CfConfig) -> CfFit:
    """Choose ALS's settings on the held-out slice before ``cutoff`` and fit them on all of ``log``
    (engagement before ``cutoff``; module docstring). ValueError when ``log`` is empty or holds
    engagement from ``cutoff`` on."""
    log = check_log(log)
    if not len(log):
        raise ValueError(f"no engagement before the cut-off {cutoff}: nothing to fit collaborative filtering on")
    after = int((log["ts"] >= _utc(cutoff)).sum())
    if after:
        raise ValueError(f"the engagement log holds {after} row(s) at or after the cut-off {cutoff}")
    table, pop, users_measured = [], None, 0
    days = cfg.validation_days if cfg.validation_days is not None else holdout_days(log, cutoff, cfg.holdout_fraction)
    train, held = holdout_split(log, cutoff, days) if days else (log, log.iloc[:0])
    if len(train) and len(held):
        for params in cfg.grid():
            f = _factors(fit_als(train, params, cfg))
            recall, users_measured = holdout_recall(lambda pos, f=f: f.user_factors[pos] @ f.item_factors.T,
                                                    f.user_ids, f.pin_ids, train, held, cfg.validation_k)
            if users_measured == 0:  # no held-out user has earlier engagement: nothing to measure
                break
            table.append({**params, "recall": recall})
    if table:
        counts = train.drop_duplicates(["user_id", "pin_id"])["pin_id"].value_counts()
        items, users = np.sort(counts.index.to_numpy()), np.unique(train["user_id"].to_numpy())
        popularity = counts.reindex(items).to_numpy(np.float64)
        pop, _ = holdout_recall(lambda pos: np.broadcast_to(popularity, (len(pos), len(items))),
                                users, items, train, held, cfg.validation_k)
    best = max(table, key=lambda row: row["recall"]) if table else cfg.params()  # max keeps the first of a tie
    chosen = {k: best[k] for k in ("factors", "regularization", "alpha")}
    final = _factors(fit_als(log, chosen, cfg))
    return CfFit(final, chosen, tuple(table), pop, users_measured if table else 0, len(log), days)


def _utc(when: dt.datetime) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
