"""Landing one day of a synthetic event table with injected faults and duplicates
(:mod:`pinrec.jobs.ingest.synthetic`).

Faults: per day and event table, ``round(cfg.fault_rate * n)`` extra rows copy clean rows with a
new event id and exactly one fault, the kinds taken in turn from ``IMPRESSION_FAULTS`` /
``ACTION_FAULTS``; no action refers to a faulty impression. ``round(cfg.duplicate_rate * n)``
exact copies of clean rows follow. Both are counted in the returned
:class:`~pinrec.jobs.ingest.landing.LandingSummary` and are not part of the truth.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pinrec.jobs.config import SyntheticConfig
from pinrec.jobs.io.lake import Location
from pinrec.schemas.catalog import MAX_POSITION
from pinrec.schemas.tables import TableSpec

from .landing import LandingSummary, partition_dir, write_partition
from .synthetic_world import _DAY_MS, _day_ms, _ids, _ts

IMPRESSION_FAULTS = ("null_user_id", "position_out_of_range", "unknown_surface", "future_ts")
ACTION_FAULTS = ("save_without_board", "unknown_impression", "unknown_action_type")

_PART_ROWS = 500_000                      # landing lines per file


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
