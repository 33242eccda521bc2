"""What one request of :mod:`export.recommend` carries, and the users' rows it reads.

:func:`parse` validates ``(user, context)`` (context keys :data:`~export.serving_encoding.CONTEXT`
and ``now``, a datetime: ``hour`` and ``day_of_week`` default to its UTC hour and Spark's day of
week). :class:`UserTable` serves, when the bundle's snapshot serves the features, every user of the
user view without Arrow per request: the row (missing when absent or expired at ``now``, exactly as
:meth:`FeatureSnapshot.lookup` says), the recent saves, the top category and the PinSage user
embedding of :mod:`export.embedding_features`. Base install only: numpy, pyarrow.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .embedding_features import LAST_SAVED, USER_EMBEDDINGS
from .feature_store import to_micros
from .serving_encoding import CONTEXT


@dataclass(eq=False)
class Request:
    """One request as the funnel sees it: the validated context, ``now`` (None: the cut-off) in µs,
    the user's recent saves and top category, and where the user's features are."""

    user: int | None
    now: Any
    now_us: int
    context: dict[str, Any]
    saves: np.ndarray
    top_category: str | None
    user_pos: int = -1  # row in the UserTable (-1: missing or expired); only with the snapshot serving
    user_row: pa.Table | None = None  # the user view's lookup, made when the generic path needs it


def parse(user: int | None, context: Mapping[str, Any] | None) -> tuple[int | None, dt.datetime | None, dict]:
    """(user, now, context without ``now``) of a request; ValueError / TypeError when malformed."""
    context = dict(context or {})
    unknown = sorted(set(context) - {*CONTEXT, "now"})
    if unknown:
        raise ValueError(f"unknown context keys {unknown}; allowed: {[*CONTEXT, 'now']}")
    now = context.pop("now", None)
    if now is not None:
        if not isinstance(now, dt.datetime):
            raise ValueError(f"context['now'] must be a datetime, got {type(now).__name__}")
        utc = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)
        context.setdefault("hour", utc.hour)
        context.setdefault("day_of_week", utc.isoweekday() % 7 + 1)  # Spark's dayofweek: 1 = Sunday
    for key in ("surface", "device", "country"):
        if not isinstance(context.get(key, ""), str | None):
            raise TypeError(f"context[{key!r}] must be a string, got {context[key]!r}")
    for key, low, high in (("hour", 0, 23), ("day_of_week", 1, 7)):
        value = context.get(key)
        if value is not None and (not isinstance(value, int | np.integer) or not low <= value <= high):
            raise ValueError(f"context[{key!r}] must be an int in [{low}, {high}], got {value!r}")
    if user is not None and not isinstance(user, int | np.integer):
        raise ValueError(f"user must be an int user_id or None, got {user!r}")
    return None if user is None else int(user), now, context


class UserTable:
    r"""Every user of the snapshot's user view, looked up without Arrow per request.

    Args:
        view (ViewSnapshot): the ``user`` view (keyed by ``user_id``).
        category_code (dict): category name -> pin category code.
        embeddings (np.ndarray, optional): (N, D) pin embeddings, row i = pin row i, and ``rows``:
            pin ids (S,) -> (rows (S,), found (S,)); then :meth:`vector` gives a user embedding
            of :mod:`export.embedding_features`. (default: ``None``)
    """

    def __init__(self, view, category_code: dict[str, int], embeddings: np.ndarray | None = None,
                 rows: Callable | None = None) -> None:
        self.view = view
        cols = view.values.column_names
        # every list of pin ids a user embedding averages (recent saves, closeups): flat values + offsets
        self._lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in dict.fromkeys([LAST_SAVED, *USER_EMBEDDINGS.values()]):
            if name in cols:
                values = view.values.column(name).combine_chunks()
                lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False)
                self._lists[name] = (np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                                     pc.fill_null(pc.list_flatten(values), -1).to_numpy(zero_copy_only=False)
                                     .astype(np.int64))
        self._top = None
        if "user__top_category" in cols:
            top = view.values.column("user__top_category").to_pylist()
            self._top = np.array([category_code.get(t, -1) if t is not None else -1 for t in top], np.int64)
        self._embeddings, self._rows = embeddings, rows

    def find(self, user: int | None, now: Any) -> int:
        """Row of ``user`` in the view, -1 when absent or expired at ``now`` (default: cut-off)."""
        rows = self.view.rows([pa.array([user], pa.int64())])
        found = rows >= 0
        fts = self.view.fts_us[np.maximum(rows, 0)] if self.view.num_rows else np.zeros(1, np.int64)
        return int(rows[0]) if self.view.fresh(fts, found, now)[0] else -1

    def pins(self, pos: int, column: str = LAST_SAVED) -> np.ndarray:
        """The pin ids of the user's list ``column`` (default: the recent saves), newest first."""
        if pos < 0 or column not in self._lists:
            return np.zeros(0, np.int64)
        offsets, values = self._lists[column]
        return values[offsets[pos]: offsets[pos + 1]]

    def saves(self, pos: int) -> np.ndarray:
        return self.pins(pos, LAST_SAVED)

    @property
    def has_top(self) -> bool:
        return self._top is not None

    def top_code(self, pos: int) -> int:
        """Pin category code of the user's top category, -1: none or not a pin category."""
        return -1 if pos < 0 or self._top is None else int(self._top[pos])

    def vector(self, pos: int, column: str = LAST_SAVED) -> np.ndarray:
        """(D,) user embedding: :meth:`EmbeddingTable.user_vectors` of the user's list ``column``
        (default: the recent saves), bit for bit (the same float64 additions in the same order),
        zeros without fresh embedded pins in it."""
        rows, found = self._rows(self.pins(pos, column))
        total = np.add.reduce(self._embeddings[rows[found]].astype(np.float64), axis=0, initial=0.0)[None]
        norm = np.linalg.norm(total, axis=1, keepdims=True)
        return np.divide(total, norm, out=np.zeros_like(total), where=norm > 0).astype(np.float32)[0]


class Frames:
    r"""Requests, and the ranker's input frames built from lookups (the generic path).

    Args:
        features: what serves the features (``lookup(view, keys, now)``).
        pins (PinCatalog): the bundle's pins. columns (list[str]): every column the ranker reads.
        cutoff (datetime): the snapshot's cut-off (``now`` when a request gives none).
        users (UserTable, optional): the snapshot's users, precomputed. (default: ``None``)
        embeddings (np.ndarray, optional): (N, D) pin embeddings; ``embedding_table``: their
            :class:`~export.embedding_features.EmbeddingTable`. (default: ``None``)
    """

    def __init__(self, features, pins, columns: list[str], cutoff: dt.datetime, users: UserTable | None = None,
                 embeddings: np.ndarray | None = None, embedding_table=None) -> None:
        self.features, self.pins, self._columns, self._cutoff = features, pins, columns, cutoff
        self._users, self.embeddings, self._embedding_table = users, embeddings, embedding_table

    def request(self, user: int | None, context: Mapping[str, Any] | None) -> Request:
        user, now, context = parse(user, context)
        now_us = int(to_micros(now)[0]) if now is not None else int(to_micros(self._cutoff)[0])
        user = None if user is None else int(user)
        if self._users is not None:  # the snapshot serves: precomputed rows
            pos = self._users.find(user, now)
            top = self._users.top_code(pos)
            return Request(user, now, now_us, context, self._users.saves(pos),
                            self.pins.category_names[top] if top >= 0 else None, pos)
        req = Request(user, now, now_us, context, np.zeros(0, np.int64), None)
        row = self.user_row(req)
        saves = row.column(LAST_SAVED)[0].values if LAST_SAVED in row.column_names else None
        if saves is not None:
            req.saves = saves.to_numpy(zero_copy_only=False).astype(np.int64)
        if "user__top_category" in row.column_names:
            req.top_category = row.column("user__top_category")[0].as_py()
        return req

    def user_row(self, req: Request) -> pa.Table:
        """The user view's (1-row) lookup of the request, looked up once."""
        if req.user_row is None:
            req.user_row = self.features.lookup("user", pa.array([req.user], pa.int64()), req.now)
        return req.user_row

    def frame(self, req: Request, rows: np.ndarray, columns: list[str] | None = None) -> dict:
        """The frame of ``columns`` (default: every column the ranker reads) for pins ``rows``."""
        b, columns = len(rows), self._columns if columns is None else columns
        frame: dict[str, Any] = {}
        by_view: dict[str, list[str]] = {}
        for c in columns:
            if "__" in c:
                by_view.setdefault(c.split("__", 1)[0], []).append(c)
        for c in by_view.get("user", ()):  # one row, repeated
            frame[c] = pa.repeat(self.user_row(req).column(c)[0], b)
        if "pin" in by_view:
            pin = self.features.lookup("pin", pa.array(self.pins.ids[rows]), req.now)
            frame.update((c, pin.column(c)) for c in by_view["pin"])
        if "user_category" in by_view:  # looked up once per distinct category of the candidates
            codes, inverse = np.unique(self.pins.cat[rows], return_inverse=True)
            uc = self.features.lookup("user_category", {"user_id": pa.repeat(pa.scalar(req.user, pa.int64()),
                                                                             len(codes)),
                                                        "category": self.pins.categories.take(pa.array(codes))}, req.now)
            frame.update(zip(by_view["user_category"], uc.select(by_view["user_category"])
                             .take(pa.array(inverse.ravel())).columns))
        for c in columns:
            if c in frame:
                continue
            if c == "pin_embedding":  # row i of the bundle's embeddings is pin row i (zeros: no embedding)
                frame[c] = np.asarray(self.embeddings[rows], np.float32)
            elif c in USER_EMBEDDINGS:  # the mean of the saves' (closeups') embeddings, as in training
                user = self._users.vector(req.user_pos, USER_EMBEDDINGS[c])[None] if self._users is not None else \
                    self._embedding_table.user_vectors(self.user_row(req).column(USER_EMBEDDINGS[c]))
                frame[c] = np.broadcast_to(user, (b, user.shape[1]))
            elif c == "category":
                frame[c] = self.pins.categories.take(pa.array(self.pins.cat[rows]))
            elif c == "pin_id":
                frame[c] = pa.array(self.pins.ids[rows])
            elif c == "user_id":
                frame[c] = pa.repeat(pa.scalar(req.user, pa.int64()), b)
            elif c in ("hour", "day_of_week"):
                frame[c] = pa.repeat(pa.scalar(req.context.get(c), pa.int64()), b)
            else:
                frame[c] = pa.repeat(pa.scalar(req.context.get(c), pa.string()), b)
        return frame
