"""The synthetic world drawn in memory (:mod:`pinrec.jobs.ingest.synthetic`): the world, its users,
pins and boards rows and the pin pool, from the random streams that
:func:`~pinrec.jobs.ingest.synthetic_generate.generate` and :func:`simulate` share.

:func:`simulate` draws the same impressions and truth in memory, without landing anything (for
model studies that need many impressions fast: ``benchmarks/ranker_oracle_gap.py``, the ranker's
oracle and debiasing tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pinrec.jobs.config import SyntheticConfig
from pinrec.schemas.catalog import BOARDS, GENDERS, PINS, USERS

from .synthetic_feed import _impressions, _PinPool
from .synthetic_world import (
    _MS,
    BOARD_ID_BASE,
    CONTENT_NOISE,
    COUNTRIES,
    GENDER_P,
    NO_EMBEDDING_SHARE,
    OCCUPATIONS,
    PIN_ID_BASE,
    USER_ID_BASE,
    _build_world,
    _category_names,
    _noise,
    _ts,
    _World,
)


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
    """The world, its users/pins/boards rows and the pin pool: what
    :func:`~pinrec.jobs.ingest.synthetic_generate.generate` and :func:`simulate` share, from the same random streams."""
    world = _build_world(cfg, np.random.default_rng([seed, 0]))
    dims = _dimension_frames(world, cfg, np.random.default_rng([seed, 1]))
    return world, dims, _PinPool.of(world, cfg.categories)


def simulate(cfg: SyntheticConfig, seed: int) -> Simulation:
    """The impressions and truth :func:`~pinrec.jobs.ingest.synthetic_generate.generate` writes for ``(cfg, seed)``,
    drawn the same way (same random streams, so the same values) but kept in memory; no actions, faults or files."""
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
