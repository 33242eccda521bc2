"""Writing the synthetic world into the landing zone (:mod:`pinrec.jobs.ingest.synthetic`).

:func:`generate` writes every table of :data:`pinrec.schemas.catalog.RAW_TABLES` into the landing zone
(JSON lines, one partition per day, via :func:`pinrec.jobs.ingest.landing.write_partition`) and the hidden truth
as Parquet under ``<landing>/_truth/``. The same ``(cfg, seed)`` gives byte-identical files.

Truth files: ``_truth/impressions/dt=YYYY-MM-DD/part-0.parquet`` (event_id, user_id, pin_id,
position, relevance, p_closeup, p_save, exam_prob, closeup, save, click), written here, and the
world's (:func:`~pinrec.jobs.ingest.synthetic_world._write_world_truth`).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pinrec.jobs.config import SyntheticConfig
from pinrec.jobs.io.lake import Location, as_location
from pinrec.schemas.catalog import (
    ACTIONS,
    BOARDS,
    IMPRESSIONS,
    PIN_BOARD_EDGES,
    PINS,
    RAW_TABLES,
    USERS,
)

from .landing import LandingSummary, write_partition
from .landing_owner import claim, replace
from .synthetic_draw import _draw
from .synthetic_faults import ACTION_FAULTS, IMPRESSION_FAULTS, _land
from .synthetic_feed import _actions, _impressions, _new_edges
from .synthetic_world import _DAY_MS, _day_ms, _ids, _write_parquet, _write_world_truth


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
