"""Sampled negative impressions for an interaction log that has none.

A log of interactions (an implicit log above all: plays, clicks, purchases) records only what users
engaged with, so every landed impression would carry a closeup and, without ratings, a save: the
ranker's tasks would have one label value and the feature views' rates would all be 1. A feed shows
more than users engage with; :func:`sample_negative_impressions` stands in for the impressions
nobody logged, the usual remedy for implicit feedback (sampled negatives, as in He et al., WWW 2017,
"Neural Collaborative Filtering"): for every interaction, ``per_interaction`` other pins shown in the
same slate at the same time, which the user never interacted with.

Which pins: drawn with probability proportional to their interaction count + 1 (a feed shows popular
pins more often, so popularity alone does not tell the ranker's labels apart), among the pins
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


@dataclass(frozen=True)
class NegativeDraw:
    """``negatives``: ``user_id``, ``item_id``, ``ts``, ``slate`` (the row of the interaction they were
    shown with, in the interactions' order); ``short``: interactions that got fewer than asked for."""

    negatives: pd.DataFrame
    short: int


def sample_negative_impressions(inter: pd.DataFrame, pins: pd.DataFrame, per_interaction: int,
                                seed: int = 0) -> NegativeDraw:
    """Draw up to ``per_interaction`` negative impressions per interaction (module docstring).

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
    order = np.argsort(pins["available"].to_numpy(), kind="stable")
    pin_ids = pins["pin_id"].to_numpy(dtype=np.int64)[order]
    available = pins["available"].to_numpy()[order]
    counts = inter["item_id"].value_counts()
    weights = counts.reindex(pin_ids, fill_value=0).to_numpy(dtype=np.float64) + 1.0
    cumulative = np.cumsum(weights)
    # pins available at each interaction: a prefix of the pins sorted by availability
    reach = np.searchsorted(available, inter["ts"].to_numpy(), side="right")

    n_pins = len(pin_ids)
    position = pd.Series(np.arange(n_pins), index=pin_ids)
    users = inter["user_id"].to_numpy(dtype=np.int64)
    user_codes, user_index = np.unique(users, return_inverse=True)
    taken = np.unique(user_index.astype(np.int64) * n_pins + position.reindex(inter["item_id"]).to_numpy())
    need = np.where(reach > 0, per_interaction, 0).astype(np.int64)
    rng = np.random.default_rng(seed)
    chosen_slate, chosen_key = [], []
    for _ in range(ROUNDS):
        rows = np.flatnonzero(need > 0)
        if not len(rows):
            break
        slate = np.repeat(rows, 2 * need[rows])  # draw twice what is missing: collisions are dropped
        draws = rng.random(len(slate)) * cumulative[reach[slate] - 1]
        picked = np.minimum(np.searchsorted(cumulative, draws, side="right"), reach[slate] - 1)
        key = user_index[slate].astype(np.int64) * n_pins + picked
        fresh = ~np.isin(key, taken)
        _, first = np.unique(key, return_index=True)  # one draw per (user, pin) in this round
        keep = np.zeros(len(key), dtype=bool)
        keep[first] = True
        keep &= fresh
        slate, key = slate[keep], key[keep]
        rank = pd.Series(slate).groupby(slate).cumcount().to_numpy()  # the first `need` of each slate
        fits = rank < need[slate]
        slate, key = slate[fits], key[fits]
        np.subtract.at(need, slate, 1)
        taken = np.union1d(taken, key)
        chosen_slate.append(slate)
        chosen_key.append(key)
    slate = np.concatenate(chosen_slate) if chosen_slate else np.zeros(0, dtype=np.int64)
    key = np.concatenate(chosen_key) if chosen_key else np.zeros(0, dtype=np.int64)
    by_slate = np.argsort(slate, kind="stable")
    slate, key = slate[by_slate], key[by_slate]
    negatives = pd.DataFrame({"user_id": user_codes[key // n_pins], "item_id": pin_ids[key % n_pins],
                              "ts": inter["ts"].to_numpy()[slate], "slate": slate.astype(np.int64)})
    negatives["ts"] = pd.to_datetime(negatives["ts"], utc=True)
    short = int(np.count_nonzero(np.bincount(slate, minlength=len(inter)) < per_interaction))
    return NegativeDraw(negatives, short)


__all__ = ["ROUNDS", "NegativeDraw", "sample_negative_impressions"]
