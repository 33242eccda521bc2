"""The synthetic world's feed (:mod:`pinrec.jobs.ingest.synthetic`): impressions, the actions they
cause and the Pin-Board edges those save, with their ground truth.

Impressions: ``cfg.impressions_per_day`` clean ones a day, in sessions of ``cfg.session_length``
slots (positions 1..N, 1-6 s apart) of one user drawn by activity. A slot shows, with probability
``INTEREST_SHARE``, the best (highest ``<u, v_p>``) of ``CANDIDATES`` pins of a category drawn from
``softmax(CATEGORY_TEMPERATURE * <u, mu_c>)``, else a pin drawn by popularity; never an nsfw pin
and never a pin created after the impression. ``cfg.feed_order`` places a session's pins on its
positions: ``"random"`` in the order drawn (position independent of everything), ``"popularity"``
by descending ``log(popularity) + N(0, FEED_ORDER_NOISE^2)`` (the logging policy of a
popularity-driven feed: popular pins get the examined top slots, so a model that ignores position
credits popularity with what the position did).

Ground truth, with relevance ``r = <u, v_p>`` and ``sigmoid(x) = 1 / (1 + exp(-x))``::

    exam_prob   = position_bias(pos) = pos ** -POSITION_BIAS_EXPONENT
    p_closeup   = sigmoid(CLOSEUP_A * r + CLOSEUP_B)          # unbiased: if examined
    closeup     ~ Bernoulli(exam_prob * p_closeup)             # ~7% of impressions
    save        ~ Bernoulli(p_save = sigmoid(SAVE_C * r + SAVE_D))  if closeup
    click       ~ Bernoulli(CLICK_GIVEN_CLOSEUP)                    if closeup

A closeup follows its impression by 1-10 s, a click by 2-120 s more, a save by a log-normal
delay (median 20 min, up to a day): some saves land in the next day's actions partition, and
those after the last day are not written but stay in the truth. A save goes to the user's board
whose topic is the pin's category (else a random board of the user) and adds a
``pin_board_edges`` row unless that (pin, board) was saved before.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pinrec.jobs.config import SyntheticConfig
from pinrec.schemas.catalog import DEVICES, SURFACES

from .synthetic_world import (
    _DAY_MS,
    _MS,
    BOARD_ID_BASE,
    CANDIDATES,
    CLICK_GIVEN_CLOSEUP,
    CLOSEUP_A,
    CLOSEUP_B,
    COUNTRIES,
    FEED_ORDER_NOISE,
    INTEREST_SHARE,
    PIN_ID_BASE,
    POSITION_BIAS_EXPONENT,
    SAVE_C,
    SAVE_D,
    SAVE_DELAY_MEDIAN_S,
    SAVE_DELAY_SIGMA,
    SURFACE_P,
    USER_ID_BASE,
    _day_ms,
    _ids,
    _ts,
    _World,
)

_MAX_GAP_MS = 6 * _MS                     # impressions of a session are 1-6 s apart
_CHUNK = 262_144                          # impression slots per vectorised pin draw


def position_bias(pos: np.ndarray | int) -> np.ndarray:
    """Examination probability of a 1-based feed position: ``pos ** -POSITION_BIAS_EXPONENT``."""
    return np.asarray(pos, dtype=np.float64) ** -POSITION_BIAS_EXPONENT


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class _PinPool:
    """Non-nsfw pins sorted by (category, created_at), to draw a category's pins created before t."""

    order: np.ndarray
    keys: np.ndarray
    cat_start: np.ndarray
    t0: int

    _SHIFT = 1 << 42  # ms, ~139 years

    @classmethod
    def of(cls, world: _World, categories: int) -> _PinPool:
        ok = np.flatnonzero(~world.pin_nsfw)
        t0 = int(world.pin_created.min())
        keys = world.pin_category[ok] * cls._SHIFT + (world.pin_created[ok] - t0)
        sort = np.argsort(keys, kind="stable")
        keys = keys[sort]
        return cls(ok[sort], keys, np.searchsorted(keys, np.arange(categories) * cls._SHIFT), t0)

    def eligible(self, category: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """How many pins of ``category`` were created strictly before ``ts``."""
        return np.searchsorted(self.keys, category * self._SHIFT + (ts - self.t0)) - self.cat_start[category]


def _choose_pins(world: _World, pool: _PinPool, popular_cdf: np.ndarray, user: np.ndarray, ts: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pins for impression slots and their true relevance, in chunks to bound memory."""
    pin, relevance = np.empty(len(user), np.int64), np.empty(len(user), np.float32)
    for s in range(0, len(user), _CHUNK):
        u, t = user[s:s + _CHUNK], ts[s:s + _CHUNK]
        m, ul = len(u), world.user_latent[u]
        cat = np.minimum((world.user_category_cdf[u] < rng.random(m)[:, None]).sum(axis=1),
                         len(pool.cat_start) - 1)
        n_eligible = pool.eligible(cat, t)
        cand = pool.cat_start[cat][:, None] + (rng.random((m, CANDIDATES)) * n_eligible[:, None]).astype(np.int64)
        cand = pool.order[np.minimum(cand, len(pool.order) - 1)]
        best = cand[np.arange(m), np.einsum("mkd,md->mk", world.pin_latent[cand], ul).argmax(axis=1)]
        popular = np.searchsorted(popular_cdf, rng.random(m) * popular_cdf[-1], side="right")
        chosen = np.where((rng.random(m) < INTEREST_SHARE) & (n_eligible > 0), best, popular)
        pin[s:s + m] = chosen
        relevance[s:s + m] = np.einsum("md,md->m", ul, world.pin_latent[chosen])
    return pin, relevance


def _impressions(world: _World, cfg: SyntheticConfig, pool: _PinPool, day: int,
                 rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The clean impressions of day index ``day`` (``ts`` in ms) and their ground truth."""
    n, L = cfg.impressions_per_day, cfg.session_length
    day0 = _day_ms(cfg.start_date) + day * _DAY_MS
    tag = (cfg.start_date + dt.timedelta(days=day)).strftime("%Y%m%d")
    slot = np.arange(n)
    session, position = slot // L, (slot % L + 1).astype(np.int32)
    n_sessions = -(-n // L)
    activity = world.user_activity_cdf[:cfg.users + (day + 1) * cfg.new_users_per_day]
    session_user = np.searchsorted(activity, rng.random(n_sessions) * activity[-1], side="right")
    lo = np.maximum(day0, world.user_created[session_user] + 600 * _MS)  # boards exist by then
    hi = day0 + _DAY_MS - L * _MAX_GAP_MS
    start = lo + (rng.random(n_sessions) * (hi - lo)).astype(np.int64)
    gaps = np.where(position == 1, 0, rng.integers(_MS, _MAX_GAP_MS, n))
    elapsed = np.cumsum(gaps)
    ts = start[session] + elapsed - elapsed[session * L]
    user = session_user[session]
    device = np.where(rng.random(n_sessions) < 0.9, world.user_device[session_user],
                      rng.integers(0, len(DEVICES), n_sessions))

    popular = world.pin_popularity * (~world.pin_nsfw & (world.pin_created < day0))
    pin, relevance = _choose_pins(world, pool, np.cumsum(popular), user, ts, rng)
    if cfg.feed_order == "popularity":  # slots of a session are contiguous: sort within each
        score = np.log(world.pin_popularity[pin]) + rng.normal(0.0, FEED_ORDER_NOISE, n)
        order = np.lexsort((-score, session))
        pin, relevance = pin[order], relevance[order]
    p_closeup = _sigmoid(CLOSEUP_A * relevance + CLOSEUP_B)
    p_save = _sigmoid(SAVE_C * relevance + SAVE_D)
    exam = position_bias(position)
    closeup = rng.random(n) < exam * p_closeup
    save = closeup & (rng.random(n) < p_save)
    click = closeup & (rng.random(n) < CLICK_GIVEN_CLOSEUP)

    event_id = _ids(f"imp-{tag}-", 0, n)
    frame = pd.DataFrame({
        "event_id": event_id, "user_id": USER_ID_BASE + user, "pin_id": PIN_ID_BASE + pin, "ts": ts,
        "session_id": _ids(f"s-{tag}-", 0, n_sessions)[session], "position": position,
        "surface": np.array(SURFACES, dtype=object)[rng.choice(len(SURFACES), n_sessions, p=SURFACE_P)][session],
        "device": np.array(DEVICES, dtype=object)[device][session],
        "country": np.array(COUNTRIES, dtype=object)[world.user_country[user]]})
    truth = {"event_id": event_id, "user_id": frame["user_id"].to_numpy(), "pin_id": frame["pin_id"].to_numpy(),
             "position": position, "relevance": relevance, "p_closeup": p_closeup.astype(np.float32),
             "p_save": p_save.astype(np.float32), "exam_prob": exam.astype(np.float32),
             "closeup": closeup, "save": save, "click": click}
    return frame, truth


def _actions(world: _World, cfg: SyntheticConfig, impressions: pd.DataFrame, truth: dict[str, np.ndarray],
             rng: np.random.Generator) -> pd.DataFrame:
    """Closeups, saves and clicks caused by one day's impressions (``ts`` in ms, any day)."""
    idx = np.flatnonzero(truth["closeup"])
    m, B = len(idx), cfg.boards_per_user
    t_closeup = impressions["ts"].to_numpy()[idx] + rng.integers(_MS, 10 * _MS, m)
    delay = np.exp(rng.normal(np.log(SAVE_DELAY_MEDIAN_S * _MS), SAVE_DELAY_SIGMA, m))
    t_save = t_closeup + np.clip(delay, 5 * _MS, _DAY_MS).astype(np.int64)
    t_click = t_closeup + rng.integers(2 * _MS, 120 * _MS, m)
    user = impressions["user_id"].to_numpy()[idx] - USER_ID_BASE
    match = world.board_topic[user] == world.pin_category[impressions["pin_id"].to_numpy()[idx] - PIN_ID_BASE][:, None]
    board = np.where(match.any(axis=1), match.argmax(axis=1), rng.integers(0, B, m))
    base = impressions.iloc[idx][["event_id", "user_id", "pin_id", "session_id"]].rename(
        columns={"event_id": "impression_id"}).reset_index(drop=True)
    parts = [base[keep].assign(type=kind, ts=ts[keep], board=board[keep])
             for kind, ts, keep in (("closeup", t_closeup, np.ones(m, bool)), ("save", t_save, truth["save"][idx]),
                                    ("click", t_click, truth["click"][idx]))]
    out = pd.concat(parts, ignore_index=True)
    board_id = BOARD_ID_BASE + (out["user_id"] - USER_ID_BASE) * B + out.pop("board")
    out["board_id"] = board_id.astype("Int64").where(out["type"] == "save")
    return out


def _new_edges(saves: pd.DataFrame, seen: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """``pin_board_edges`` rows for the first save of each (pin, board) not in ``seen`` (keys
    ``pin_id << 32 | board_id``); returns them and the grown ``seen``."""
    pin, board = saves["pin_id"].to_numpy(), saves["board_id"].to_numpy(dtype=np.int64)
    keys = pin * (1 << 32) + board
    first = np.sort(np.unique(keys, return_index=True)[1])
    first = first[~np.isin(keys[first], seen)]
    edges = pd.DataFrame({"pin_id": pin[first], "board_id": board[first],
                          "saved_at": _ts(saves["ts"].to_numpy()[first])})
    return edges, np.union1d(seen, keys[first])
