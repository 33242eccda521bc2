"""A seeded, Pinterest-like synthetic world whose ground truth is known.

:func:`generate` writes every table of :data:`pinrec.schemas.catalog.RAW_TABLES` into the landing zone
(JSON lines, one partition per day, via :func:`pinrec.jobs.ingest.landing.write_partition`) and the hidden truth
as Parquet under ``<landing>/_truth/``. The same ``(cfg, seed)`` gives byte-identical files.

World (C = ``cfg.categories``, D = ``cfg.latent_dim``):

* categories ``cat00, cat01, ...`` with unit centroids ``mu_c`` in R^D and Zipf-like popularity;
* pin: ``v_p = normalise(mu_category + noise)``; ``content_embedding`` = ``v_p`` + noise (null for
  ~5%); ~1% nsfw; initial pins are created before ``cfg.start_date``, ``cfg.fresh_pins_per_day``
  more during each day;
* user: ``u = normalise(sum_k w_k mu_k + noise)`` over 1-3 categories, Zipf-like activity, a
  country, a preferred device; ``cfg.new_users_per_day`` sign up during each day;
* board: ``cfg.boards_per_user`` per user, topics = the user's top categories by ``<u, mu_c>``.

Users, pins and boards land in the partition of the day they arrived (day 0: initial snapshot).

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

Truth files: ``_truth/impressions/dt=YYYY-MM-DD/part-0.parquet`` (event_id, user_id, pin_id,
position, relevance, p_closeup, p_save, exam_prob, closeup, save, click),
``_truth/users.parquet`` (user_id, latent), ``_truth/pins.parquet`` (pin_id, category, latent)
and ``_truth/world.json`` (the constants, the seed and ``cfg``).

:func:`simulate` draws the same impressions and truth in memory, without landing anything (for
model studies that need many impressions fast: ``benchmarks/ranker_oracle_gap.py``, the ranker's
oracle and debiasing tests).

Faults: per day and event table, ``round(cfg.fault_rate * n)`` extra rows copy clean rows with a
new event id and exactly one fault, the kinds taken in turn from ``IMPRESSION_FAULTS`` /
``ACTION_FAULTS``; no action refers to a faulty impression. ``round(cfg.duplicate_rate * n)``
exact copies of clean rows follow. Both are counted in the returned
:class:`~pinrec.jobs.ingest.landing.LandingSummary` and are not part of the truth.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pinrec.jobs.config import SyntheticConfig
from pinrec.jobs.io.lake import Location, as_location
from pinrec.schemas.catalog import (
    ACTIONS,
    BOARDS,
    DEVICES,
    GENDERS,
    IMPRESSIONS,
    MAX_POSITION,
    PIN_BOARD_EDGES,
    PINS,
    RAW_TABLES,
    SURFACES,
    USERS,
)
from pinrec.schemas.tables import TableSpec

from .landing import LandingSummary, partition_dir, write_partition
from .landing_owner import claim, replace

CLOSEUP_A, CLOSEUP_B = 5.0, -4.5          # P(closeup | examined) = sigmoid(a r + b)
SAVE_C, SAVE_D = 4.0, -5.0                # P(save | closeup) = sigmoid(c r + d)
POSITION_BIAS_EXPONENT = 0.7              # examination probability e(pos) = pos ** -0.7
CLICK_GIVEN_CLOSEUP = 0.1
INTEREST_SHARE = 0.7                      # share of slots filled by interest-matched pins
CANDIDATES = 4                            # interest slots show the best of this many pins
CATEGORY_TEMPERATURE = 6.0
FEED_ORDER_NOISE = 0.5                    # std of the noise on log(popularity) when feed_order = "popularity"
PIN_NOISE, USER_NOISE, CONTENT_NOISE = 0.6, 0.4, 0.3   # noise norms relative to unit vectors
NSFW_SHARE, NO_EMBEDDING_SHARE = 0.01, 0.05
SAVE_DELAY_MEDIAN_S, SAVE_DELAY_SIGMA = 1200.0, 1.6    # log-normal, clipped to [5 s, 24 h]
USER_ID_BASE, PIN_ID_BASE, BOARD_ID_BASE = 1, 1_000_000, 50_000_000

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "JP", "IN")
COUNTRY_P = (0.40, 0.10, 0.10, 0.08, 0.12, 0.08, 0.12)
GENDER_P = (0.60, 0.30, 0.10)
DEVICE_P = (0.45, 0.35, 0.17, 0.03)
SURFACE_P = (0.70, 0.12, 0.12, 0.06)
OCCUPATIONS = ("student", "engineer", "designer", "teacher", "nurse", "artist", "retired", "other")
_TRUTH_CONSTANTS = (
    "CLOSEUP_A", "CLOSEUP_B", "SAVE_C", "SAVE_D", "POSITION_BIAS_EXPONENT", "CLICK_GIVEN_CLOSEUP",
    "INTEREST_SHARE", "CANDIDATES", "CATEGORY_TEMPERATURE", "FEED_ORDER_NOISE", "PIN_NOISE", "USER_NOISE",
    "CONTENT_NOISE", "NSFW_SHARE", "NO_EMBEDDING_SHARE", "SAVE_DELAY_MEDIAN_S", "SAVE_DELAY_SIGMA", "USER_ID_BASE",
    "PIN_ID_BASE", "BOARD_ID_BASE", "COUNTRIES", "COUNTRY_P", "GENDER_P", "DEVICE_P", "SURFACE_P")

IMPRESSION_FAULTS = ("null_user_id", "position_out_of_range", "unknown_surface", "future_ts")
ACTION_FAULTS = ("save_without_board", "unknown_impression", "unknown_action_type")

_MS = 1000
_DAY_MS = 86_400 * _MS
_MAX_GAP_MS = 6 * _MS                     # impressions of a session are 1-6 s apart
_CHUNK = 262_144                          # impression slots per vectorised pin draw
_PART_ROWS = 500_000                      # landing lines per file


def position_bias(pos: np.ndarray | int) -> np.ndarray:
    """Examination probability of a 1-based feed position: ``pos ** -POSITION_BIAS_EXPONENT``."""
    return np.asarray(pos, dtype=np.float64) ** -POSITION_BIAS_EXPONENT


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, dim: int, norm: float) -> np.ndarray:
    return rng.normal(0.0, norm / np.sqrt(dim), size=(n, dim))


def _zipf(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Zipf-like weights (rank ** -exponent) over ``n`` items in random rank order."""
    return rng.permutation(np.arange(1, n + 1, dtype=np.float64) ** -exponent)


def _day_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * _DAY_MS


def _ts(ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(ms, unit="ms", utc=True)


def _ids(prefix: str, start: int, n: int) -> np.ndarray:
    return (prefix + pd.Series(np.arange(start, start + n)).astype(str)).to_numpy(dtype=object)


@dataclass(frozen=True)
class _World:
    """The latent state. Users, pins and boards are indexed 0..n-1 (ids = base + index); users
    and pins are ordered by arrival day (initial ones first)."""

    user_latent: np.ndarray      # (U, D) float32 unit rows
    user_created: np.ndarray     # ms since epoch
    user_arrival: np.ndarray     # day index the row lands on
    user_activity_cdf: np.ndarray
    user_category_cdf: np.ndarray  # (U, C) cumulative softmax(T * <u, mu_c>)
    user_country: np.ndarray
    user_device: np.ndarray
    board_topic: np.ndarray      # (U, B) category of board j of user i (id BOARD_ID_BASE + i*B + j)
    pin_latent: np.ndarray       # (P, D) float32 unit rows
    pin_category: np.ndarray
    pin_created: np.ndarray
    pin_arrival: np.ndarray
    pin_nsfw: np.ndarray
    pin_popularity: np.ndarray


def _build_world(cfg: SyntheticConfig, rng: np.random.Generator) -> _World:
    """Draw centroids, users (with boards) and pins; see the module docstring."""
    C, D, B = cfg.categories, cfg.latent_dim, cfg.boards_per_user
    start = _day_ms(cfg.start_date)
    centroids = _normalise(rng.normal(size=(C, D)))

    n_users, n_new = cfg.users + cfg.days * cfg.new_users_per_day, cfg.days * cfg.new_users_per_day
    user_arrival = np.r_[np.zeros(cfg.users, np.int64), np.repeat(np.arange(cfg.days), cfg.new_users_per_day)]
    user_created = np.r_[start - rng.integers(3600, 3 * 365 * 86_400, cfg.users) * _MS,
                         start + user_arrival[cfg.users:] * _DAY_MS + rng.integers(0, 20 * 3600 * _MS, n_new)]
    # 1-3 distinct categories per user with Dirichlet(1) weights (a masked Dirichlet stays one).
    k = min(3, C)
    chosen = np.argsort(rng.random((n_users, C)), axis=1)[:, :k]
    weights = rng.dirichlet(np.ones(k), n_users) * (np.arange(k) < rng.integers(1, k + 1, n_users)[:, None])
    mixture = np.zeros((n_users, C))
    np.put_along_axis(mixture, chosen, weights / weights.sum(axis=1, keepdims=True), axis=1)
    user_latent = _normalise(mixture @ centroids + _noise(rng, n_users, D, USER_NOISE))
    affinity = user_latent @ centroids.T
    pref = np.exp(CATEGORY_TEMPERATURE * (affinity - affinity.max(axis=1, keepdims=True)))
    board_topic = np.argsort(-affinity, axis=1, kind="stable")[:, np.arange(B) % C]

    n_pins = cfg.pins + cfg.days * cfg.fresh_pins_per_day
    pin_arrival = np.r_[np.zeros(cfg.pins, np.int64), np.repeat(np.arange(cfg.days), cfg.fresh_pins_per_day)]
    pin_created = np.r_[start - rng.integers(60, 365 * 86_400, cfg.pins) * _MS,
                        start + pin_arrival[cfg.pins:] * _DAY_MS + rng.integers(0, _DAY_MS, n_pins - cfg.pins)]
    category_p = np.arange(1, C + 1, dtype=np.float64) ** -0.7
    pin_category = rng.choice(C, n_pins, p=category_p / category_p.sum())
    pin_latent = _normalise(centroids[pin_category] + _noise(rng, n_pins, D, PIN_NOISE))
    return _World(
        user_latent=user_latent, user_created=user_created, user_arrival=user_arrival,
        user_activity_cdf=np.cumsum(_zipf(rng, n_users, 1.0)),
        user_category_cdf=np.cumsum(pref / pref.sum(axis=1, keepdims=True), axis=1),
        user_country=rng.choice(len(COUNTRIES), n_users, p=COUNTRY_P),
        user_device=rng.choice(len(DEVICES), n_users, p=DEVICE_P), board_topic=board_topic,
        pin_latent=pin_latent, pin_category=pin_category, pin_created=pin_created, pin_arrival=pin_arrival,
        pin_nsfw=rng.random(n_pins) < NSFW_SHARE, pin_popularity=_zipf(rng, n_pins, 0.9),
    )


def _category_names(cfg: SyntheticConfig) -> np.ndarray:
    return np.array([f"cat{c:02d}" for c in range(cfg.categories)], dtype=object)


def _dimension_frames(world: _World, cfg: SyntheticConfig, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Users, pins and boards rows of the whole run; ``_arrival`` is the day index they land on."""
    n_users, n_pins, B = len(world.user_created), len(world.pin_created), cfg.boards_per_user
    names = _category_names(cfg)
    occupation = np.array(OCCUPATIONS, dtype=object)[rng.integers(0, len(OCCUPATIONS), n_users)]
    users = pd.DataFrame({
        "user_id": USER_ID_BASE + np.arange(n_users), "created_at": _ts(world.user_created),
        "country": np.array(COUNTRIES, dtype=object)[world.user_country],
        "gender": np.array(GENDERS, dtype=object)[rng.choice(len(GENDERS), n_users, p=GENDER_P)],
        "age": np.clip(np.rint(rng.normal(34, 12, n_users)), 13, 80).astype(np.int32),
        "occupation": np.where(rng.random(n_users) < 0.1, None, occupation),
        "_arrival": world.user_arrival})
    content = np.round(world.pin_latent + _noise(rng, n_pins, cfg.latent_dim, CONTENT_NOISE), 4).tolist()
    pin_id = PIN_ID_BASE + np.arange(n_pins)
    pins = pd.DataFrame({
        "pin_id": pin_id, "created_at": _ts(world.pin_created), "category": names[world.pin_category],
        "title": [f"pin {p} ({c})" for p, c in zip(pin_id, names[world.pin_category], strict=True)],
        "nsfw": world.pin_nsfw,
        "content_embedding": [None if drop else e
                              for e, drop in zip(content, rng.random(n_pins) < NO_EMBEDDING_SHARE, strict=True)],
        "_arrival": world.pin_arrival})
    owner = np.repeat(np.arange(n_users), B)
    boards = pd.DataFrame({
        "board_id": BOARD_ID_BASE + np.arange(n_users * B), "owner_user_id": USER_ID_BASE + owner,
        "topic": names[world.board_topic.ravel()],
        "created_at": _ts(world.user_created[owner] + rng.integers(0, 300 * _MS, n_users * B)),
        "_arrival": world.user_arrival[owner]})
    return {USERS.name: users, PINS.name: pins, BOARDS.name: boards}


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


def _faults(clean: pd.DataFrame, kinds: tuple[str, ...], n: int, first_id: int, prefix: str,
            rng: np.random.Generator) -> pd.DataFrame:
    """``n`` copies of clean rows with new event ids, row i carrying fault ``kinds[i % len(kinds)]``."""
    bad = clean.iloc[rng.choice(len(clean), n, replace=False)].reset_index(drop=True)
    bad["event_id"] = _ids(prefix, first_id, n)
    kind = np.array(kinds, dtype=object)[np.arange(n) % len(kinds)]
    if "position" in bad:  # impressions
        bad["user_id"] = bad["user_id"].astype("Int64").mask(kind == "null_user_id")
        wrong = np.where(rng.random(n) < 0.5, 0, rng.integers(MAX_POSITION + 1, 1000, n))
        bad["position"] = np.where(kind == "position_out_of_range", wrong, bad["position"]).astype(np.int32)
        bad["surface"] = bad["surface"].mask(kind == "unknown_surface", "stories")
        to_2099 = _day_ms(dt.date(2099, 1, 1)) - bad["ts"].to_numpy() // _DAY_MS * _DAY_MS
        bad["ts"] = np.where(kind == "future_ts", bad["ts"] + to_2099, bad["ts"])
    else:  # actions
        bad["type"] = np.where(kind == "save_without_board", "save",
                               np.where(kind == "unknown_action_type", "hide", bad["type"]))
        bad["board_id"] = bad["board_id"].mask(kind != "unknown_impression")
        bad["impression_id"] = bad["impression_id"].mask(kind == "unknown_impression", "orphan-" + bad["event_id"])
    return bad


def _land(landing: Location, spec: TableSpec, day: dt.date, clean: pd.DataFrame, cfg: SyntheticConfig, prefix: str,
          kinds: tuple[str, ...], summary: LandingSummary, rng: np.random.Generator) -> None:
    """Write clean rows (``ts`` in ms) plus injected faults and exact duplicates of clean rows;
    count them in ``summary``."""
    n_faults, n_dups = round(cfg.fault_rate * len(clean)), round(cfg.duplicate_rate * len(clean))
    bad = _faults(clean, kinds, n_faults, len(clean), prefix, rng)
    dups = clean.iloc[rng.choice(len(clean), n_dups, replace=False)]
    frame = pd.concat([clean, bad, dups], ignore_index=True)[list(spec.column_names)]
    folder = partition_dir(landing, spec.name, day)
    for name, is_dir in folder.entries():  # a larger earlier run
        if not is_dir and name.startswith("part-") and name.endswith(".jsonl"):
            (folder / name).delete()
    for part, s in enumerate(range(0, max(len(frame), 1), _PART_ROWS)):
        write_partition(landing, spec, day, frame.iloc[s:s + _PART_ROWS].assign(
            ts=lambda f: _ts(f["ts"].to_numpy())), part=part)
    summary.rows[spec.name][day] = len(frame)
    for kind, count in zip(kinds, np.bincount(np.arange(n_faults) % len(kinds), minlength=len(kinds)), strict=True):
        summary.faults[spec.name][kind] += int(count)
    summary.duplicates[spec.name] += n_dups


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


def _latent_column(latent: np.ndarray) -> pa.Array:
    n, dim = latent.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)),
                                    pa.array(latent.astype(np.float32).ravel()))


def _write_parquet(table: pa.Table, where: Location) -> None:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    where.write_bytes(buffer.getvalue().to_pybytes())


def _write_world_truth(truth: Location, world: _World, cfg: SyntheticConfig, seed: int) -> None:
    n_users, n_pins = len(world.user_latent), len(world.pin_latent)
    _write_parquet(pa.table({"user_id": pa.array(USER_ID_BASE + np.arange(n_users)),
                             "latent": _latent_column(world.user_latent)}), truth / "users.parquet")
    _write_parquet(pa.table({"pin_id": pa.array(PIN_ID_BASE + np.arange(n_pins)),
                             "category": pa.array(_category_names(cfg)[world.pin_category].tolist()),
                             "latent": _latent_column(world.pin_latent)}), truth / "pins.parquet")
    constants = {name.lower(): globals()[name] for name in _TRUTH_CONSTANTS}
    constants |= {"seed": seed, "config": {k: v.isoformat() if isinstance(v, dt.date) else v
                                          for k, v in dataclasses.asdict(cfg).items()}}
    (truth / "world.json").write_text(json.dumps(constants, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` returns. ``days``: per day, the truth columns of
    ``_truth/impressions`` (event_id, user_id, pin_id, position, relevance, p_closeup, p_save,
    exam_prob, closeup, save, click) plus ``user`` / ``pin`` (0-based indices into the arrays
    below) and ``session`` (0-based within the day). ``user_latent`` (U, D), ``pin_latent``
    (P, D), ``pin_popularity`` (P,) the popularity weights, ``content`` (P, D) the landed
    ``content_embedding`` (zeros where the pin has none) and ``has_content`` (P,)."""

    days: tuple[dict[str, np.ndarray], ...]
    user_latent: np.ndarray
    pin_latent: np.ndarray
    pin_popularity: np.ndarray
    content: np.ndarray
    has_content: np.ndarray


def _draw(cfg: SyntheticConfig, seed: int) -> tuple[_World, dict[str, pd.DataFrame], _PinPool]:
    """The world, its users/pins/boards rows and the pin pool: what :func:`generate` and
    :func:`simulate` share, from the same random streams."""
    world = _build_world(cfg, np.random.default_rng([seed, 0]))
    dims = _dimension_frames(world, cfg, np.random.default_rng([seed, 1]))
    return world, dims, _PinPool.of(world, cfg.categories)


def simulate(cfg: SyntheticConfig, seed: int) -> Simulation:
    """The impressions and truth :func:`generate` writes for ``(cfg, seed)``, drawn the same way
    (same random streams, so the same values) but kept in memory; no actions, faults or files."""
    world, dims, pool = _draw(cfg, seed)
    pins = dims[PINS.name]
    has_content = pins["content_embedding"].notna().to_numpy()
    content = np.zeros((len(pins), cfg.latent_dim), np.float32)
    content[has_content] = np.array(pins["content_embedding"][has_content].to_list(), np.float32)
    days = []
    for d in range(cfg.days):
        _, truth = _impressions(world, cfg, pool, d, np.random.default_rng([seed, 2, d]))
        truth |= {"user": truth["user_id"] - USER_ID_BASE, "pin": truth["pin_id"] - PIN_ID_BASE,
                  "session": np.arange(len(truth["user_id"])) // cfg.session_length}
        days.append(truth)
    return Simulation(tuple(days), world.user_latent, world.pin_latent, world.pin_popularity, content, has_content)


def generate(cfg: SyntheticConfig, landing: str | Path | Location, seed: int) -> LandingSummary:
    """Write ``cfg.days`` days of every raw table into ``landing`` and the truth into
    ``<landing>/_truth/`` (see the module docstring). Deterministic in ``(cfg, seed)``. The world replaces
    what a previous load left in ``landing`` (:mod:`pinrec.jobs.ingest.landing_owner`).

    Returns the lines written per table and day, the injected faults per table and kind, and the
    injected duplicates per table.
    """
    landing = as_location(landing)
    claim(landing, "synthetic")
    world, dims, pool = _draw(cfg, seed)
    _write_world_truth(landing / "_truth", world, cfg, seed)
    summary = LandingSummary(
        rows={spec.name: {} for spec in RAW_TABLES},
        faults={IMPRESSIONS.name: dict.fromkeys(IMPRESSION_FAULTS, 0), ACTIONS.name: dict.fromkeys(ACTION_FAULTS, 0)},
        duplicates={IMPRESSIONS.name: 0, ACTIONS.name: 0})
    pending: list[pd.DataFrame] = []  # actions whose ts falls on a later day
    edges_seen = np.empty(0, np.int64)
    for d in range(cfg.days):
        day, rng = cfg.start_date + dt.timedelta(days=d), np.random.default_rng([seed, 2, d])
        tag = day.strftime("%Y%m%d")
        for spec in (USERS, PINS, BOARDS):
            rows = dims[spec.name]
            rows = rows[rows["_arrival"] == d].drop(columns="_arrival")
            write_partition(landing, spec, day, rows)
            summary.rows[spec.name][day] = len(rows)

        impressions, truth = _impressions(world, cfg, pool, d, rng)
        _write_parquet(pa.table(truth), landing / "_truth" / "impressions" / f"dt={day.isoformat()}" / "part-0.parquet")
        pending.append(_actions(world, cfg, impressions, truth, rng))
        _land(landing, IMPRESSIONS, day, impressions, cfg, f"imp-{tag}-", IMPRESSION_FAULTS, summary, rng)

        actions = pd.concat(pending, ignore_index=True)
        today = actions["ts"].to_numpy() < _day_ms(day) + _DAY_MS
        pending = [actions[~today]]
        actions = actions[today].sort_values("ts", kind="stable", ignore_index=True)
        actions["event_id"] = _ids(f"act-{tag}-", 0, len(actions))
        _land(landing, ACTIONS, day, actions, cfg, f"act-{tag}-", ACTION_FAULTS, summary, rng)

        edges, edges_seen = _new_edges(actions[actions["type"] == "save"], edges_seen)
        write_partition(landing, PIN_BOARD_EDGES, day, edges)
        summary.rows[PIN_BOARD_EDGES.name][day] = len(edges)
    replace(landing, "synthetic", summary.rows)  # what another world or dataset left
    return summary
