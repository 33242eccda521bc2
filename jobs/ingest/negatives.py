"""Sampled negative impressions for an interaction log that has none.

A log of interactions (an implicit log above all: plays, clicks, purchases) records only what users
engaged with, so every landed impression would carry a closeup and, without ratings, a save: the
ranker's tasks would have one label value and the feature views' rates would all be 1. A feed shows
more than users engage with; :func:`sample_negative_impressions` stands in for the impressions
nobody logged, the usual remedy for implicit feedback (sampled negatives, as in He et al., WWW 2017,
"Neural Collaborative Filtering"): for every interaction, ``per_interaction`` other pins shown in the
same slate at the same time, which the user never interacted with.

Which pins: drawn with probability proportional to their interactions so far + 1 (a feed shows popular
pins more often, so popularity alone does not tell the ranker's labels apart; counted up to the
interaction's day, never later), among the pins
available at that time (landed on or before the interaction's day and created by its time: every
foreign key then points into the same or an earlier partition). A pin is shown to a user at most once,
never one the user interacted with at any time. Seeded: the same log and seed give the same draws.
A user who has interacted with nearly every available pin may get fewer than ``per_interaction``;
:class:`NegativeDraw` counts them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: rounds of drawing before an interaction keeps fewer negatives than asked for
ROUNDS = 8
#: at most this many periods (whole days) over which the popularity weights are counted again
PERIODS = 64
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class NegativeDraw:
    """``negatives``: ``user_id``, ``item_id``, ``ts``, ``slate`` (the row of the interaction they were
    shown with, in the interactions' order); ``short``: interactions that got fewer than asked for."""

    negatives: pd.DataFrame
    short: int


def _ns(values) -> np.ndarray:
    """UTC timestamps (a Series or array) as int64 nanoseconds."""
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)


def _periods(times: np.ndarray) -> np.ndarray:
    """(I,) period of each interaction time: its UTC day, days merged into at most :data:`PERIODS`
    runs of about equal interactions (a new period starts only on a new day)."""
    days = times // _DAY_NS
    unique = np.unique(days)
    if len(unique) <= PERIODS:
        return np.searchsorted(unique, days)
    order = np.sort(days)
    cuts = np.unique(order[(np.arange(1, PERIODS) * len(order)) // PERIODS])  # day where each run starts
    return np.searchsorted(cuts, days, side="right")


class _Taken:
    """The (user, pin) keys drawn or engaged so far: a sorted array and the keys of the period in hand."""

    def __init__(self, keys: np.ndarray) -> None:
        self.sorted, self.recent = np.unique(keys), np.zeros(0, np.int64)

    def fresh(self, keys: np.ndarray) -> np.ndarray:
        out = np.ones(len(keys), dtype=bool)
        for known in (self.sorted, self.recent):
            if len(known):
                at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
                out &= known[at] != keys
        return out

    def add(self, keys: np.ndarray) -> None:  # ``keys``: distinct and fresh, so a sorted insert keeps them unique
        keys = np.sort(keys)
        self.recent = np.insert(self.recent, np.searchsorted(self.recent, keys), keys)

    def settle(self) -> None:  # one merge per period, not per round (a linear insert, not a sort of both)
        self.sorted = np.insert(self.sorted, np.searchsorted(self.sorted, self.recent), self.recent)
        self.recent = np.zeros(0, np.int64)


def sample_negative_impressions(inter: pd.DataFrame, pins: pd.DataFrame, per_interaction: int,
                                seed: int = 0) -> NegativeDraw:
    """Draw up to ``per_interaction`` negative impressions per interaction (module docstring).

    A pin's weight is 1 + its interactions before the interaction's period (its day; days are merged
    into at most :data:`PERIODS` periods of about equal interactions): what a feed knows at the time,
    never later popularity.

    Args:
        inter: ``user_id``, ``item_id``, ``ts`` (UTC) of I interactions, one per (user, item).
        pins: ``pin_id``, ``available`` (UTC: the first time the pin may be shown) of every pin.
        per_interaction: negatives per interaction, >= 0.
        seed: the draws' seed.
    Returns:
        :class:`NegativeDraw` with at most ``I * per_interaction`` rows, sorted by slate.
    """
    if per_interaction < 0:
        raise ValueError(f"per_interaction must be >= 0, got {per_interaction}")
    empty = pd.DataFrame({"user_id": pd.Series(dtype="int64"), "item_id": pd.Series(dtype="int64"),
                          "ts": pd.Series(dtype="datetime64[ns, UTC]"), "slate": pd.Series(dtype="int64")})
    if per_interaction == 0 or inter.empty:
        return NegativeDraw(empty, 0)
    available = _ns(pins["available"])
    order = np.argsort(available, kind="stable")
    pin_ids, available = pins["pin_id"].to_numpy(dtype=np.int64)[order], available[order]
    times = _ns(inter["ts"])
    reach = np.searchsorted(available, times, side="right")  # pins shown by then: a prefix of `order`

    n_pins = len(pin_ids)
    item_pos = pd.Series(np.arange(n_pins), index=pin_ids).reindex(inter["item_id"]).to_numpy()
    user_codes, user_index = np.unique(inter["user_id"].to_numpy(dtype=np.int64), return_inverse=True)
    user_key = user_index.astype(np.int64) * n_pins
    taken = _Taken(user_key + item_pos)
    need = np.where(reach > 0, per_interaction, 0).astype(np.int64)
    period = _periods(times)
    seen = np.zeros(n_pins, dtype=np.float64)  # interactions per pin before the period in hand
    rng = np.random.default_rng(seed)
    chosen_slate, chosen_key = [], []
    for p in range(int(period.max()) + 1):
        members = np.flatnonzero(period == p)
        cumulative = np.cumsum(seen + 1.0)
        for _ in range(ROUNDS):
            rows = members[need[members] > 0]
            if not len(rows):
                break
            slate = np.repeat(rows, 2 * need[rows])  # draw twice what is missing: collisions are dropped
            draws = rng.random(len(slate)) * cumulative[reach[slate] - 1]
            picked = np.minimum(np.searchsorted(cumulative, draws, side="right"), reach[slate] - 1)
            key = user_key[slate] + picked
            _, first = np.unique(key, return_index=True)  # one draw per (user, pin) in this round
            keep = np.zeros(len(key), dtype=bool)
            keep[first] = True
            keep &= taken.fresh(key)
            slate, key = slate[keep], key[keep]
            rank = pd.Series(slate).groupby(slate).cumcount().to_numpy()  # the first `need` of each slate
            fits = rank < need[slate]
            slate, key = slate[fits], key[fits]
            np.subtract.at(need, slate, 1)
            taken.add(key)
            chosen_slate.append(slate)
            chosen_key.append(key)
        taken.settle()
        seen += np.bincount(item_pos[members], minlength=n_pins)
    slate = np.concatenate(chosen_slate) if chosen_slate else np.zeros(0, dtype=np.int64)
    key = np.concatenate(chosen_key) if chosen_key else np.zeros(0, dtype=np.int64)
    by_slate = np.argsort(slate, kind="stable")
    slate, key = slate[by_slate], key[by_slate]
    negatives = pd.DataFrame({"user_id": user_codes[key // n_pins], "item_id": pin_ids[key % n_pins],
                              "ts": pd.to_datetime(times[slate], unit="ns", utc=True), "slate": slate.astype(np.int64)})
    short = int(np.count_nonzero(np.bincount(slate, minlength=len(inter)) < per_interaction))
    return NegativeDraw(negatives, short)


__all__ = ["PERIODS", "ROUNDS", "NegativeDraw", "sample_negative_impressions"]
