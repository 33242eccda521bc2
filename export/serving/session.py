"""Fresh session actions of a request: ``recent=[(pin_id, action, ts), ...]``, seconds old, that no batch has seen.

The feature snapshot knows a user's recent saves and closeups as of its cut-off (``user__last_saved_pins``,
``user__last_closeup_pins``, newest first); what the user did since, in this session, comes with the request:

* ``pin_id``: an int64 pin id (not a bool); a pin the bundle does not know is allowed (a pin created
  after the bundle: it queries nothing but is still excluded from the results);
* ``action``: one of :data:`SESSION_ACTIONS`, the kinds of :data:`pinrec.schemas.catalog.ACTION_TYPES` the
  user view keeps a recent list of (a click has none, so it is refused rather than silently dropped);
* ``ts``: a datetime (naive = UTC) or epoch seconds (int or float, not ms), from 1970 on. An action after the
  request's ``now`` is refused: it is a clock or field bug of the caller that the server cannot repair
  (pass ``now`` from the clock that stamps the actions). Without ``now`` in the context the request is
  served as of the snapshot's cut-off and the times are only ordered, not compared with it: session
  actions are newer than any snapshot by definition.

:func:`merged` puts them in front of the snapshot's list of the same kind: the session's pins newest
first (``ts`` descending; equal times: the later element of ``recent`` first), then the snapshot's,
each pin once at its newest position, cut to the list's cap (:func:`list_caps`); :func:`with_session`
does so for a request's saves and closeups. A request without session actions keeps the snapshot's
lists exactly. Base install only: numpy, pyarrow, schemas.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from pinrec.schemas.catalog import ACTION_TYPES

from .embedding_features import LAST_CLOSEUPS, LAST_SAVED
from .serving_request import Request, RequestError

#: session action -> the user-view list it joins
LISTS: dict[str, str] = {"save": LAST_SAVED, "closeup": LAST_CLOSEUPS}
SESSION_ACTIONS: tuple[str, ...] = tuple(a for a in ACTION_TYPES if a in LISTS)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z: a larger number is milliseconds or garbage
_EMPTY = np.zeros(0, np.int64)


@dataclass(frozen=True)
class Session:
    """The validated session actions of one request: per action kind the distinct pin ids, newest
    first (``by_action[action]`` (S_a,) int64), and ``pins`` (S,) int64: every distinct pin of
    the session, newest first (what the results exclude)."""

    by_action: dict[str, np.ndarray]
    pins: np.ndarray

    def __len__(self) -> int:
        return len(self.pins)


NO_SESSION = Session({a: _EMPTY for a in SESSION_ACTIONS}, _EMPTY)


def _micros(ts: Any, where: str) -> int:
    if isinstance(ts, dt.datetime) and not isinstance(ts.year, int):  # pandas' NaT: a datetime whose year is NaN
        raise RequestError(f"{where}: ts must be a time, got {ts!r}")
    if isinstance(ts, dt.datetime):
        try:
            utc = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
        except OverflowError:
            raise RequestError(f"{where}: ts is outside the datetime range in UTC") from None
        us = (utc - _EPOCH) // dt.timedelta(microseconds=1)
        if us < 0:  # as for epoch seconds; datetime.min is an unset field, not a session action
            raise RequestError(f"{where}: ts must be at or after 1970-01-01 UTC, got {ts!r:.80}")
        return us
    if isinstance(ts, bool | np.bool_) or not isinstance(ts, int | float | np.integer | np.floating) \
            or not 0 <= ts <= _MAX_EPOCH_S or not math.isfinite(ts):  # the range first: 10**400 overflows isfinite
        raise RequestError(f"{where}: ts must be a datetime (naive = UTC) or epoch seconds (an int or float in "
                           f"[0, {_MAX_EPOCH_S}], not milliseconds, not a bool), got {ts!r:.80}")
    if isinstance(ts, int | np.integer):
        return int(ts) * 1_000_000
    # as datetime.fromtimestamp rounds (whole seconds, then the fraction to the µs), so that a float from the
    # clock that gives ``now`` lands on the same µs: round(ts * 1e6) is one µs off for ~6 % of today's times
    return (dt.datetime.fromtimestamp(float(ts), dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)


def check_recent(recent: Any, now_us: int | None) -> Session:
    """The :class:`Session` of ``recent`` (a list or tuple of ``(pin_id, action, ts)``; None: none),
    every element checked as the module docstring says; ``now_us``: the request's ``now`` (µs since
    the epoch), or None when the request gives none (times then not compared with it)."""
    if recent is None:
        return NO_SESSION
    what = f"a list of (pin_id, action, ts) with action in {list(SESSION_ACTIONS)}"
    if not isinstance(recent, list | tuple):
        raise RequestError(f"recent must be {what}, got {type(recent).__name__} {recent!r:.80}")
    pins, kinds, times = [], [], []
    for i, item in enumerate(recent):
        where = f"recent[{i}] = {item!r:.80}"
        if isinstance(item, str | bytes | Mapping) or not isinstance(item, list | tuple) or len(item) != 3:
            raise RequestError(f"{where}: each action must be a (pin_id, action, ts) tuple; recent must be {what}")
        pin, action, ts = item
        if isinstance(pin, bool | np.bool_) or not isinstance(pin, int | np.integer) or not -2 ** 63 <= pin < 2 ** 63:
            raise RequestError(f"{where}: pin_id must be an int64 pin id (not a bool), got {pin!r:.40}")
        if action not in SESSION_ACTIONS:
            raise RequestError(f"{where}: action must be one of {list(SESSION_ACTIONS)} (the kinds the user's recent "
                               f"lists hold; of {list(ACTION_TYPES)}), got {action!r:.40}")
        us = _micros(ts, where)
        if now_us is not None and us > now_us:
            now = _EPOCH + dt.timedelta(microseconds=now_us)
            raise RequestError(f"{where}: the action is after the request's now ({now.isoformat()}); session actions "
                               "must be stamped by the clock that gives now")
        pins.append(int(pin))
        kinds.append(action)
        times.append(us)
    if not pins:
        return NO_SESSION
    # newest first; equal times: the later element first (a session log is appended in time order)
    order = np.lexsort((-np.arange(len(pins)), -np.asarray(times, np.int64)))
    ids, kinds = np.asarray(pins, np.int64)[order], [kinds[o] for o in order]
    is_kind = {a: np.array([k == a for k in kinds], bool) for a in SESSION_ACTIONS}
    return Session({a: _first_each(ids[m]) for a, m in is_kind.items()}, _first_each(ids))


def _first_each(ids: np.ndarray) -> np.ndarray:
    """``ids`` with each id once, at its first position."""
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]


def merged(session: np.ndarray, snapshot: np.ndarray, cap: int) -> np.ndarray:
    """(L,) int64: the (S,) session pins (newest first) before the (P,) snapshot list, each pin
    once at its first position, at most ``cap``; the snapshot list itself when ``session`` is empty."""
    if not len(session):
        return snapshot
    return _first_each(np.concatenate([session, np.asarray(snapshot, np.int64)]))[:cap]


def list_caps(view, floor: int) -> dict[str, int]:
    """List column -> the most pins a merged list keeps: the longest such list in the snapshot's user
    ``view`` (the features job's ``last_*_pins`` cap whenever one user reached it: the snapshot does
    not record the setting), at least ``floor`` (the ANN channel's query count, so that session saves
    are always queried)."""
    caps = {}
    for column in LISTS.values():
        longest = 0
        if column in view.values.column_names and view.num_rows:
            longest = int(pc.max(pc.fill_null(pc.list_value_length(view.values.column(column)), 0)).as_py() or 0)
        caps[column] = max(longest, floor)
    return caps


def with_session(req: Request, recent: Any, caps: Mapping[str, int]) -> Request:
    """``req`` with the session actions ``recent`` (validated here, :func:`check_recent`) merged in
    front of its recent saves and closeups (each cut to ``caps``, :func:`list_caps`); its snapshot
    saves kept as ``own_saves`` and the session's pins as ``session`` (both excluded from results)."""
    if recent is None:
        return req
    session = check_recent(recent, req.now_us if req.now is not None else None)
    if len(session):
        req.own_saves = req.saves
        req.saves = merged(session.by_action["save"], req.saves, caps[LAST_SAVED])
        req.closeups = merged(session.by_action["closeup"], req.closeups, caps[LAST_CLOSEUPS])
        req.session = session.pins
    return req
