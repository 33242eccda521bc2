"""What one request of :mod:`pinrec.export.serving.recommend` carries, and the users' rows it reads.

Every argument of a request is validated here, at the boundary, and a malformed one is refused
with a :class:`RequestError` naming the field and what it allows: :func:`parse` checks ``user``
(an int64 id or None) and ``context`` (a mapping of the keys :data:`~pinrec.export.serving.serving_encoding.CONTEXT`
and ``now``, a datetime: ``hour`` and ``day_of_week`` default to its UTC hour and Spark's day of
week), :func:`check_k` ``k``, :func:`check_ids` ``exclude`` (int64 pin ids) and
:func:`check_query` a query embedding ((D,) or (Q, D) finite reals); session actions (``recent``) are
checked by :func:`pinrec.export.serving.session.check_recent`. Negative ids are valid int64
ids (simply unknown); a bool is refused wherever an int is asked for.

:class:`UserTable` serves, when the bundle's snapshot serves the features, every user of the
user view without Arrow per request: the row (missing when absent or expired at ``now``, exactly as
:meth:`FeatureSnapshot.lookup` says), the recent saves, the top category and the PinSage user
embedding of :mod:`pinrec.export.serving.embedding_features`. Base install only: numpy, pyarrow.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .embedding_features import LAST_CLOSEUPS, LAST_SAVED, USER_EMBEDDINGS
from .serving_encoding import CONTEXT
from .snapshot_meta import to_micros


@dataclass(eq=False)
class Request:
    """One request as the funnel sees it: the validated context, ``now`` (None: the cut-off) in µs,
    the user's recent saves (``saves``) and closeups (``closeups``), (L,) int64 pin ids newest first,
    the top category, and where the user's features are. With session actions
    (:mod:`pinrec.export.serving.session`) the two lists are the snapshot's merged with them, and
    ``session`` (S,) holds every session pin (the results exclude them): every channel reading the
    user's recent pins reads these lists; the ranker's features stay the snapshot's."""

    user: int | None
    now: Any
    now_us: int
    context: dict[str, Any]
    saves: np.ndarray
    top_category: str | None
    user_pos: int = -1  # row in the UserTable (-1: missing or expired); only with the snapshot serving
    user_row: pa.Table | None = None  # the user view's lookup, made when the generic path needs it
    closeups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    session: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: the snapshot's saves before the merge: the results exclude all of them, also those the merged
    #: (capped) ``saves`` no longer holds; None: ``saves`` is the snapshot's list
    own_saves: np.ndarray | None = None


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class RequestError(ValueError, TypeError):
    """A malformed request; the message names the field and what it allows. Both a ValueError
    and a TypeError, so callers catching either (as before this class) still do."""


def _int64(value: Any, field: str, what: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) \
            or not INT64_MIN <= int(value) <= INT64_MAX:
        raise RequestError(f"{field} must be {what}: an int (not a bool) in [-2**63, 2**63 - 1], got {value!r:.80}")
    return int(value)


def parse(user: Any, context: Any) -> tuple[int | None, dt.datetime | None, dict]:
    """(user, now, context without ``now``) of a request; :class:`RequestError` when malformed."""
    if context is not None and not isinstance(context, Mapping):
        raise RequestError(f"context must be a mapping of {[*CONTEXT, 'now']} to values (or None), "
                           f"got {type(context).__name__} {context!r:.80}")
    context = dict(context or {})
    unknown = sorted((k for k in context if k not in (*CONTEXT, "now")), key=repr)
    if unknown:
        raise RequestError(f"unknown context keys {unknown}; allowed: {[*CONTEXT, 'now']}")
    now = context.pop("now", None)
    if now is not None:
        if not isinstance(now, dt.datetime) or not isinstance(now.year, int):  # pandas' NaT: a datetime, year NaN
            raise RequestError(f"context['now'] must be a datetime, got {now!r:.80}")
        try:
            utc = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)
        except OverflowError:
            raise RequestError(f"context['now'] = {now!r:.80} is outside the datetime range in UTC") from None
        context.setdefault("hour", utc.hour)
        context.setdefault("day_of_week", utc.isoweekday() % 7 + 1)  # Spark's dayofweek: 1 = Sunday
    for key in ("surface", "device", "country"):
        if not isinstance(context.get(key, ""), str | None):
            raise RequestError(f"context[{key!r}] must be a string or None, got {context[key]!r}")
    for key, low, high in (("hour", 0, 23), ("day_of_week", 1, 7)):
        value = context.get(key)
        if value is not None:
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or not low <= value <= high:
                raise RequestError(f"context[{key!r}] must be an int in [{low}, {high}] (not a bool), got {value!r}")
            context[key] = int(value)
    return None if user is None else _int64(user, "user", "an int user_id or None"), now, context


def check_k(k: Any) -> int:
    """``k`` of a request: an int >= 1 (not a bool)."""
    if isinstance(k, bool | np.bool_) or not isinstance(k, int | np.integer) or k < 1:
        raise RequestError(f"k must be an int >= 1 (not a bool), got {k!r}")
    return int(k)


def check_ids(values: Any, field: str = "exclude") -> np.ndarray:
    """(E,) int64 pin ids of ``values`` (a list, tuple, set or 1-d int array; None: none)."""
    if values is None:
        return np.zeros(0, np.int64)
    what = "a sequence of int64 pin ids (list, tuple, set or 1-d int array)"
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise RequestError(f"{field} must be {what}, got {type(values).__name__} {values!r:.80}")
    if isinstance(values, np.ndarray) and (values.ndim != 1 or values.dtype.kind not in "iuO"):
        raise RequestError(f"{field} must be {what}, got a {values.ndim}-d {values.dtype} array")
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.dtype.kind == "u" and len(values) and values.max() > INT64_MAX:
            raise RequestError(f"{field} must be {what} in int64 range, got {int(values.max())}")
        return values.astype(np.int64)
    return np.array([_int64(v, f"{field}[{i}]", "a pin id") for i, v in enumerate(values)], np.int64)


def check_query(query: Any, dim: int) -> np.ndarray | None:
    """(Q, D) float32 of a query embedding: (D,) or (Q, D) finite real numbers, D = ``dim``, Q >= 1
    (float32 range: a float64 value beyond it is refused); None stays None."""
    if query is None:
        return None
    what = f"a ({dim},) or (Q, {dim}) array of finite real numbers, Q >= 1 (None: the user's saves)"
    try:
        q = np.asarray(query)
    except (TypeError, ValueError) as e:  # ragged nesting, objects numpy cannot hold
        raise RequestError(f"query must be {what}: {e}") from None
    if q.dtype.kind not in "iuf":
        raise RequestError(f"query must be {what}, got dtype {q.dtype}")
    q = q[None] if q.ndim == 1 else q
    if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] != dim:
        raise RequestError(f"query must be {what}, got shape {np.shape(query)}")
    with np.errstate(over="ignore"):
        q = np.ascontiguousarray(q, np.float32)
    if not np.isfinite(q).all():
        raise RequestError(f"query must be {what}: rows {np.flatnonzero(~np.isfinite(q).all(1))[:5].tolist()} "
                           "hold NaN or inf (or values beyond float32)")
    return q


class UserTable:
    r"""Every user of the snapshot's user view, looked up without Arrow per request.

    Args:
        view (ViewSnapshot): the ``user`` view (keyed by ``user_id``).
        category_code (dict): category name -> pin category code.
        embeddings (np.ndarray, optional): (N, D) pin embeddings, row i = pin row i, and ``rows``:
            pin ids (S,) -> (rows (S,), found (S,)); then :meth:`vector` gives a user embedding
            of :mod:`pinrec.export.serving.embedding_features`. (default: ``None``)
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
            :class:`~pinrec.export.serving.embedding_features.EmbeddingTable`. (default: ``None``)
    """

    def __init__(self, features, pins, columns: list[str], cutoff: dt.datetime, users: UserTable | None = None,
                 embeddings: np.ndarray | None = None, embedding_table=None) -> None:
        self.features, self.pins, self._columns, self._cutoff = features, pins, columns, cutoff
        self._users, self.embeddings, self._embedding_table = users, embeddings, embedding_table

    def request(self, user: int | None, context: Mapping[str, Any] | None) -> Request:
        user, now, context = parse(user, context)
        now_us = int(to_micros(now)[0]) if now is not None else int(to_micros(self._cutoff)[0])
        if now is not None and now_us < int(to_micros(self._cutoff)[0]):
            raise RequestError(f"context['now'] = {now.isoformat()} is before the snapshot's cut-off "
                               f"{self._cutoff.isoformat()}: it cannot serve an earlier time (values known later "
                               "would leak)")
        if self._users is not None:  # the snapshot serves: precomputed rows
            pos = self._users.find(user, now)
            top = self._users.top_code(pos)
            return Request(user, now, now_us, context, self._users.saves(pos),
                           self.pins.category_names[top] if top >= 0 else None, pos,
                           closeups=self._users.pins(pos, LAST_CLOSEUPS))
        req = Request(user, now, now_us, context, np.zeros(0, np.int64), None)
        row = self.user_row(req)
        for attr, column in (("saves", LAST_SAVED), ("closeups", LAST_CLOSEUPS)):
            pins = row.column(column)[0].values if column in row.column_names else None
            if pins is not None:
                setattr(req, attr, pins.to_numpy(zero_copy_only=False).astype(np.int64))
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
