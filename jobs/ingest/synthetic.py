"""A seeded, Pinterest-like synthetic world whose ground truth is known.

:func:`generate` writes every table of :data:`pinrec.schemas.catalog.RAW_TABLES` into the landing zone
and the hidden truth as Parquet under ``<landing>/_truth/``; the same ``(cfg, seed)`` gives byte-identical
files. :func:`simulate` draws the same impressions and truth in memory.

The names below are importable from here as before the module was split; each lives, with the
docstring that describes it, in one of these:

- :mod:`pinrec.jobs.ingest.synthetic_world`: the world (categories, users, pins, boards), the
  constants of the ground truth (``CLOSEUP_A``, ``POSITION_BIAS_EXPONENT``, the id bases, ...) and the
  world's truth files (``_truth/users.parquet``, ``pins.parquet``, ``world.json``);
- :mod:`pinrec.jobs.ingest.synthetic_feed`: impressions (sessions, pin choice, ``feed_order``), the
  ground truth of closeups, saves and clicks (:func:`position_bias`), actions and Pin-Board edges;
- :mod:`pinrec.jobs.ingest.synthetic_faults`: injected faults (``IMPRESSION_FAULTS``,
  ``ACTION_FAULTS``) and duplicates, and the part files of a landed event partition;
- :mod:`pinrec.jobs.ingest.synthetic_draw`: the users/pins/boards rows, the draw that
  :func:`generate` and :func:`simulate` share, :func:`simulate` and :class:`Simulation`;
- :mod:`pinrec.jobs.ingest.synthetic_generate`: :func:`generate`, the landing zone and
  ``_truth/impressions``.
"""
from __future__ import annotations

from .synthetic_draw import Simulation, simulate
from .synthetic_faults import ACTION_FAULTS, IMPRESSION_FAULTS
from .synthetic_feed import _impressions, _PinPool, position_bias
from .synthetic_generate import generate
from .synthetic_world import (
    BOARD_ID_BASE,
    CANDIDATES,
    CATEGORY_TEMPERATURE,
    CLICK_GIVEN_CLOSEUP,
    CLOSEUP_A,
    CLOSEUP_B,
    CONTENT_NOISE,
    COUNTRIES,
    COUNTRY_P,
    DEVICE_P,
    FEED_ORDER_NOISE,
    GENDER_P,
    INTEREST_SHARE,
    NO_EMBEDDING_SHARE,
    NSFW_SHARE,
    OCCUPATIONS,
    PIN_ID_BASE,
    PIN_NOISE,
    POSITION_BIAS_EXPONENT,
    SAVE_C,
    SAVE_D,
    SAVE_DELAY_MEDIAN_S,
    SAVE_DELAY_SIGMA,
    SURFACE_P,
    USER_ID_BASE,
    USER_NOISE,
    _build_world,
)

# _PinPool, _build_world and _impressions are private: tests/jobs/ingest/test_synthetic.py uses them
__all__ = [
    "ACTION_FAULTS",
    "BOARD_ID_BASE",
    "CANDIDATES",
    "CATEGORY_TEMPERATURE",
    "CLICK_GIVEN_CLOSEUP",
    "CLOSEUP_A",
    "CLOSEUP_B",
    "CONTENT_NOISE",
    "COUNTRIES",
    "COUNTRY_P",
    "DEVICE_P",
    "FEED_ORDER_NOISE",
    "GENDER_P",
    "IMPRESSION_FAULTS",
    "INTEREST_SHARE",
    "NO_EMBEDDING_SHARE",
    "NSFW_SHARE",
    "OCCUPATIONS",
    "PIN_ID_BASE",
    "PIN_NOISE",
    "POSITION_BIAS_EXPONENT",
    "SAVE_C",
    "SAVE_D",
    "SAVE_DELAY_MEDIAN_S",
    "SAVE_DELAY_SIGMA",
    "SURFACE_P",
    "USER_ID_BASE",
    "USER_NOISE",
    "Simulation",
    "_PinPool",
    "_build_world",
    "_impressions",
    "generate",
    "position_bias",
    "simulate",
]
