"""Candidate generation of :mod:`pinrec.export.serving.recommend`: the channels, their fusion, merge and filter.

* ``ann``: per-query nearest-neighbour lists fused by weighted reciprocal rank (Cormack et al.,
  SIGIR 2009), ``sum_q w_q / (rrf_k + rank_q)`` with recency weights
  ``w_q = 0.5 ** (q / recency_half_life)`` (:func:`fuse_ranked`);
* ``two_tower``: the two-tower model's user embedding searched in its own index
  (:mod:`pinrec.export.serving.two_tower`);
* ``cf``: the pins of the largest ``user . pin`` in the bundle's ALS factors
  (:mod:`pinrec.export.serving.cf_channel`);
* ``category`` / ``trending``: the most saved pins of a category / overall, and ``fresh``: the
  newest pins, none created after ``now`` — all computed once per bundle (:class:`ColdStart`);
* :func:`merge`: channels in priority order into one deduplicated list (a pin keeps its first
  channel and a bit mask of all), flagged pins and dropped ids filtered out, each channel within
  its quota when one is set.

Everything is numpy over pin *rows* (positions in the bundle's pins, sorted by pin id), so ties
break by pin id. Base install only (numpy, pyarrow).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHANNELS = ("ann", "two_tower", "cf", "category", "trending", "fresh")
#: the channel names of every bit mask over :data:`CHANNELS`
MASKS = tuple(tuple(c for b, c in enumerate(CHANNELS) if m >> b & 1) for m in range(1 << len(CHANNELS)))
_EMPTY = np.zeros(0, np.int64)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Merged, filtered candidates of one request, in channel order: ``pin_ids`` (B,) int64,
    ``rows`` (B,) int64 into the bundle's pins, ``channel`` (B,) int64 index into
    :data:`CHANNELS` of the first channel, ``mask`` (B,) int64 bit ``1 << c`` per channel."""

    pin_ids: np.ndarray
    rows: np.ndarray
    channel: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.pin_ids)

    def of(self, channel: str) -> np.ndarray:
        """Pin ids that ``channel`` proposed (in candidate order)."""
        return self.pin_ids[(self.mask >> CHANNELS.index(channel)) & 1 == 1]

    def channel_names(self) -> list[str]:
        return [CHANNELS[c] for c in self.channel]


class PinCatalog:
    """The bundle's pins (a table sorted by unique ``pin_id`` with ``category``, ``created_at``,
    ``nsfw``, ``blocked``) as arrays over pin rows: ``ids`` (N,) int64, ``cat`` (N,) int64 codes
    into ``categories`` (K + 1,) (the last null: no category), ``created_us`` (N,) int64 (int64
    min: unknown), ``eligible`` (N,) bool (neither flag set; null counts as set)."""

    def __init__(self, pins: pa.Table, name: str = "bundle") -> None:
        if nulls := pins.column("pin_id").null_count:  # to_numpy would make them NaN in a float array
            raise ValueError(f"{name}: pins has {nulls} null pin_id(s)")
        if not pa.types.is_integer(pins.column("pin_id").type):
            raise ValueError(f"{name}: pin_id must be an integer column, got {pins.column('pin_id').type}")
        self.ids = pins.column("pin_id").to_numpy().astype(np.int64)
        if np.any(np.diff(self.ids) <= 0):
            raise ValueError(f"{name}: pins must be sorted by unique pin_id")
        if len(self.ids) and self.ids[0] < 0:  # faiss marks a missing neighbour with -1
            raise ValueError(f"{name}: pin_id must be >= 0, got {self.ids[0]}")
        enc = pc.dictionary_encode(pins.column("category").combine_chunks())
        self.categories = pa.concat_arrays([enc.dictionary.cast(pa.string()), pa.nulls(1, pa.string())])
        self.category_names = self.categories.to_pylist()
        self.category_code = {c: i for i, c in enumerate(self.category_names[:-1])}
        self.cat = enc.indices.fill_null(len(enc.dictionary)).to_numpy().astype(np.int64)
        created = pins.column("created_at")
        self.created_us = created.cast(pa.timestamp("us", created.type.tz)).cast(pa.int64()) \
            .fill_null(np.iinfo(np.int64).min).to_numpy()
        self.eligible = ~pc.or_(pins.column("nsfw").fill_null(True), pins.column("blocked").fill_null(True)).to_numpy()

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, pin_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found) of (n,) pin ids."""
        pin_ids = np.asarray(pin_ids, np.int64)
        if not len(self.ids):
            return np.zeros(len(pin_ids), np.int64), np.zeros(len(pin_ids), bool)
        pos = np.minimum(np.searchsorted(self.ids, pin_ids), len(self.ids) - 1)
        return pos, self.ids[pos] == pin_ids


def top(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest ``values``, largest first, ties by position: the first ``n``
    of a stable descending sort, in O(len) + O(n log n)."""
    if n <= 0 or not len(values):
        return np.zeros(0, np.int64)
    if n < len(values):
        cut = np.partition(values, len(values) - n)[len(values) - n]  # the n-th largest
        pos = np.flatnonzero(values >= cut)
    else:
        pos = np.arange(len(values))
    return pos[np.argsort(-values[pos], kind="stable")][:n]


def fuse_ranked(ids: np.ndarray, recency_half_life: float, rrf_k: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted reciprocal-rank fusion of (Q, K) ranked id lists (-1: no hit), query q weighted
    ``0.5 ** (q / recency_half_life)``: (distinct ids sorted ascending (U,), fused score (U,))."""
    q, k = ids.shape
    weights = 0.5 ** (np.arange(q) / recency_half_life)
    fused = weights[:, None] / (rrf_k + 1.0 + np.arange(k))[None, :]
    valid = ids >= 0
    uniq, inverse = np.unique(ids[valid], return_inverse=True)
    return uniq, np.bincount(inverse, weights=fused[valid], minlength=len(uniq))


def ann_search(index, queries: np.ndarray, pins: PinCatalog, n: int, recency_half_life: float,
               rrf_k: float) -> np.ndarray:
    """Rows of the best ``n`` pins for (Q, D) ``queries`` (most recent first) in ``index`` (a
    :class:`~pinrec.export.serving.shards.ShardedIndex`): top-``n`` per query, fused by :func:`fuse_ranked`; hits
    without pin metadata dropped; ties: smaller pin id first."""
    k = min(n, index.ntotal)
    if k < 1 or not len(queries):
        return _EMPTY
    _, ids = index.search(queries, k)
    uniq, total = fuse_ranked(ids, recency_half_life, rrf_k)  # sorted: the row lookup stays local
    rows, found = pins.rows(uniq)
    rows, total = rows[found], total[found]
    return rows[np.argsort(-total, kind="stable")][:n]


class ColdStart:
    r"""The channels that do not depend on the user's saves, computed once per bundle.

    Args:
        eligible (np.ndarray): (N,) bool, pins that may be served.
        created_us (np.ndarray): (N,) int64 creation times (µs; int64 min when unknown).
        cutoff_us (int): the earliest ``now`` served (the snapshot's cut-off).
        fresh (int): pins of the fresh channel. trending (int): pins of each trending channel.
        cat (np.ndarray, optional): (N,) int64 category code of each pin. (default: ``None``)
        pin_rows (np.ndarray, optional): (P,) rows of the pins with a ``score`` (P,) (float, NaN:
            none) ranking the trending channels; ``None``: no trending channels.
    """

    def __init__(self, eligible: np.ndarray, created_us: np.ndarray, cutoff_us: int, fresh: int, trending: int,
                 cat: np.ndarray | None = None, pin_rows: np.ndarray | None = None,
                 score: np.ndarray | None = None) -> None:
        self.fresh_n = fresh
        ok = np.flatnonzero(eligible)  # increasing rows = increasing pin ids: stable sorts break ties by id
        # a request's ``now`` is never before the cut-off: the pins created after it and the
        # ``fresh`` newest before it are all the fresh channel can return
        after = int((created_us[ok] > cutoff_us).sum())
        newest = ok[top(created_us[ok], fresh + after)][::-1]
        self._fresh, self._fresh_us = newest, created_us[newest]  # oldest first
        self.trending = _EMPTY
        self.by_category: dict[int, np.ndarray] = {}
        if pin_rows is None or score is None or cat is None:
            return
        live = ~np.isnan(score) & eligible[pin_rows]
        rows, score = pin_rows[live], score[live]
        self.trending = rows[top(score, trending)]
        cats = cat[rows]
        by_cat = np.argsort(cats.astype(np.int16) if cats.max(initial=0) < 2 ** 15 else cats, kind="stable")
        bounds = np.flatnonzero(np.diff(cats[by_cat])) + 1
        for group in np.split(by_cat, bounds) if len(by_cat) else ():
            self.by_category[int(cats[group[0]])] = rows[group[top(score[group], trending)]]

    def fresh(self, now_us: int) -> np.ndarray:
        """The newest ``fresh`` eligible pins created at or before ``now_us``, newest first."""
        hi = int(np.searchsorted(self._fresh_us, now_us, side="right"))
        return self._fresh[max(0, hi - self.fresh_n): hi][::-1]

    def category(self, code: int | None, n: int) -> np.ndarray:
        return self.by_category.get(code, _EMPTY)[:n] if code is not None else _EMPTY


def merge(parts: Mapping[str, np.ndarray], order: Sequence[str], eligible: np.ndarray, pin_ids: np.ndarray,
          drop: np.ndarray, quotas: Mapping[str, int] | None = None) -> Candidates:
    """Channels ``order`` (names of :data:`CHANNELS` -> pin rows, best first) merged in priority
    order: each pin once, at its first position; flagged pins and pin ids in ``drop`` removed.

    ``quotas`` (channel -> n): such a channel adds at most n pins that no earlier channel added (its
    best ones); a pin its quota cuts can still come in through a later channel that proposed it,
    and counts against that channel's quota. ``mask`` keeps every channel that proposed a pin."""
    if quotas:
        return _merge_with_quotas(parts, order, eligible, pin_ids, drop, quotas)
    rows = np.concatenate([parts[c] for c in order]).astype(np.int64)
    chan = np.concatenate([np.full(len(parts[c]), CHANNELS.index(c), np.int64) for c in order])
    uniq, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    mask = np.zeros(len(uniq), np.int64)
    np.bitwise_or.at(mask, inverse, np.left_shift(1, chan))
    by_first = np.argsort(first, kind="stable")
    rows, first, mask = uniq[by_first], first[by_first], mask[by_first]
    keep = eligible[rows]
    if len(drop):
        keep &= ~np.isin(pin_ids[rows], drop)
    rows, first, mask = rows[keep], first[keep], mask[keep]
    return Candidates(pin_ids[rows], rows, chan[first], mask)


def _merge_with_quotas(parts: Mapping[str, np.ndarray], order: Sequence[str], eligible: np.ndarray,
                       pin_ids: np.ndarray, drop: np.ndarray, quotas: Mapping[str, int]) -> Candidates:
    """:func:`merge` with per-channel quotas: channel by channel (at most :data:`CHANNELS` of them),
    numpy set operations on a few thousand rows."""
    taken, kept, first = _EMPTY, [], []
    for c in order:
        rows = np.asarray(parts[c], np.int64)
        _, at = np.unique(rows, return_index=True)
        rows = rows[np.sort(at)]  # once each, best first
        ok = eligible[rows] & ~np.isin(rows, taken)
        if len(drop):
            ok &= ~np.isin(pin_ids[rows], drop)
        rows = rows[ok][:quotas[c]] if c in quotas else rows[ok]
        kept.append(rows)
        first.append(np.full(len(rows), CHANNELS.index(c), np.int64))
        taken = np.concatenate([taken, rows])
    mask = np.zeros(len(taken), np.int64)
    for c in order:
        mask |= np.isin(taken, parts[c]).astype(np.int64) << CHANNELS.index(c)
    return Candidates(pin_ids[taken], taken, np.concatenate(first), mask)
