"""The latent state of the synthetic world (:mod:`pinrec.jobs.ingest.synthetic`), the constants of its
ground truth, and the truth files that record them.

World (C = ``cfg.categories``, D = ``cfg.latent_dim``):

* categories ``cat00, cat01, ...`` with unit centroids ``mu_c`` in R^D and Zipf-like popularity;
* pin: ``v_p = normalise(mu_category + noise)``; ``content_embedding`` = ``v_p`` + noise (null for
  ~5%); ~1% nsfw; initial pins are created before ``cfg.start_date``, ``cfg.fresh_pins_per_day``
  more during each day;
* user: ``u = normalise(sum_k w_k mu_k + noise)`` over 1-3 categories, Zipf-like activity, a
  country, a preferred device; ``cfg.new_users_per_day`` sign up during each day;
* board: ``cfg.boards_per_user`` per user, topics = the user's top categories by ``<u, mu_c>``.

Users, pins and boards land in the partition of the day they arrived (day 0: initial snapshot).

Truth files written here: ``_truth/users.parquet`` (user_id, latent), ``_truth/pins.parquet``
(pin_id, category, latent) and ``_truth/world.json`` (the constants, the seed and ``cfg``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pinrec.jobs.config import SyntheticConfig
from pinrec.jobs.io.lake import Location
from pinrec.schemas.catalog import DEVICES

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

_MS = 1000
_DAY_MS = 86_400 * _MS


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
