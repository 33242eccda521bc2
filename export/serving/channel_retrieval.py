"""Candidate retrieval of one request: every channel the recommender serves, merged and filtered.

:class:`Retrieval` holds what the channels of one bundle read (opened once, :mod:`pinrec.export.serving.channel_setup`)
and answers :meth:`Retrieval.candidates` per request: the ANN channel queries the request's recent
saves (or an explicit query) in the sharded index, the two-tower channel runs the user tower, ``cf``
searches the user's ALS factor, and the cold-start orders give ``category``, ``trending`` and
``fresh``; :func:`~pinrec.export.serving.candidates.merge` then fuses them in channel order under
the source quotas and drops the user's own saves, the session's pins and ``exclude``. Base install only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .candidates import Candidates, ColdStart, PinCatalog, ann_search, merge
from .cf_channel import CfChannel
from .recommend_config import RecommendConfig
from .serving_request import Frames, Request, UserTable
from .shards import ShardedIndex
from .two_tower import TwoTowerChannel

__all__ = ["Retrieval"]


@dataclass(frozen=True, eq=False)
class Retrieval:
    """The candidate channels of one bundle: ``channels`` in priority order, ``embeddings`` (P, D) or
    None, ``two_tower`` / ``cf`` None when the bundle cannot serve them, ``users`` None when a store
    in front of the snapshot serves the user rows. Rows below index the bundle's pins (``pins``)."""

    config: RecommendConfig
    channels: tuple[str, ...]
    index: ShardedIndex
    pins: PinCatalog
    embeddings: np.ndarray | None
    cold: ColdStart
    two_tower: TwoTowerChannel | None
    cf: CfChannel | None
    frames: Frames
    users: UserTable | None

    def candidates(self, req: Request, query: np.ndarray | None, exclude: np.ndarray,
                   timings: dict | None) -> Candidates:
        """The merged, filtered candidates of ``req``; ``query``: None or (Q, D) float32, searched by
        the ANN channel instead of the saves; ``exclude``: (E,) int64 pin ids; ``timings``: None or
        filled with the seconds of its ``ann`` and ``candidates`` stages."""
        t0 = time.perf_counter()
        cfg = self.config
        channels = self.channels
        ann = self._ann(req, query) if "ann" in channels or query is not None else np.zeros(0, np.int64)
        t1 = time.perf_counter()
        code = self.pins.category_code.get(req.top_category) if req.top_category is not None else None
        if req.top_category is None and len(req.session):  # a session pin is all we know of this user's taste
            rows, found = self.pins.rows(req.session)
            code = int(self.pins.cat[rows[found][0]]) if found.any() else None
        two_tower = self._two_tower_rows(req) if "two_tower" in channels else np.zeros(0, np.int64)
        parts = {"ann": ann, "two_tower": two_tower, "category": self.cold.category(code, cfg.trending_candidates),
                 "trending": self.cold.trending, "fresh": self.cold.fresh(req.now_us)}
        parts["cf"] = self._cf_rows(req) if "cf" in channels else np.zeros(0, np.int64)
        order = list(channels) if query is None or "ann" in channels else ["ann", *channels]
        own = req.saves if req.own_saves is None else req.own_saves  # the merged list is capped: all the user's saves
        drop = np.concatenate([own, req.session, exclude]) if len(exclude) or len(req.session) else own
        cand = merge(parts, order, self.pins.eligible, self.pins.ids, drop, cfg.quotas)
        if timings is not None:
            timings["ann"] = timings.get("ann", 0.0) + t1 - t0
            timings["candidates"] = timings.get("candidates", 0.0) + time.perf_counter() - t1
        return cand

    def _ann(self, req: Request, query: np.ndarray | None) -> np.ndarray:
        """Rows (into the pins) of the ANN channel, best first; hits without pin metadata dropped.
        ``query``: None or (Q, D) float32, validated (:func:`~pinrec.export.serving.serving_request.check_query`)."""
        cfg = self.config
        if query is not None:
            q = query
        else:
            rows, found = self.pins.rows(req.saves[: cfg.ann_queries])
            if self.embeddings is None or not found.any():
                return np.zeros(0, np.int64)
            q = np.asarray(self.embeddings[rows[found]], np.float32)
            q = q[np.abs(q).sum(1) > 0]  # a pin PinSage did not embed has zeros
        return ann_search(self.index, q, self.pins, cfg.ann_candidates, cfg.recency_half_life, cfg.rrf_k)

    def _cf_rows(self, req: Request) -> np.ndarray:
        """Rows of the ``cf`` channel, best first (pins without metadata dropped)."""
        rows, found = self.pins.rows(self.cf.search(req.user, self.config.cf_candidates))
        return rows[found]

    def _two_tower_rows(self, req: Request) -> np.ndarray:
        """Rows of the two-tower channel: the user tower on the request's context, the user view's row
        and the Request's recent saves and closeups (the session's actions merged in). A user the
        snapshot does not know and who has no recent pins (not even the session's) gets nothing from
        it: the tower would see inputs it never trained on, and the cold-start channels serve them."""
        if not len(req.saves) and not len(req.closeups) and not self._known(req):
            return np.zeros(0, np.int64)
        row = self.frames.user_row(req)
        frame = {c: row.column(c) if c in row.column_names else pa.array([req.context.get(c)])
                 for c in self.two_tower.user.columns}
        return self.two_tower.search(frame, req.saves, req.closeups, self.config.two_tower_candidates)

    def _known(self, req: Request) -> bool:
        """Whether the features serve a row for the request's user (unexpired)."""
        if req.user is None:
            return False
        if self.users is not None:  # the bundle's snapshot serves: its row index says
            return req.user_pos >= 0
        row = self.frames.user_row(req)
        return any(row.column(c).null_count < row.num_rows for c in row.column_names if c.startswith("user__"))
