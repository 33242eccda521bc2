"""The landing zone's dataset record: what ``pinrec load-dataset`` loaded, for the jobs that read it later.

``<landing>/_dataset/dataset.json`` holds one JSON object: ``kind`` (``movielens-100k``, ``log``),
``path`` (where it was read from), ``timestamps`` (``"column"``: real event times; ``"row_order"``:
the file's row order stood in for time; ``"none"``: no time at all, every interaction at one instant),
``rows`` (lines read), ``users``, ``items``, ``interactions`` (distinct (user, item) pairs landed),
``save_threshold`` (null: every interaction is a save), ``partitions`` (landed partitions of ``impressions``), ``max_partitions`` and
``partition`` (the landing partitions' span: ``day``, ``month`` or ``year``, see
:mod:`pinrec.jobs.ingest.landing`; a record without it means ``day``).
Non-integer ids of a generic log are replaced by integers; their mappings
(``value``, ``id``) go beside it as ``user_ids.parquet`` / ``item_ids.parquet``.

Evaluation reads the record to learn whether time order means anything (a ``row_order`` or ``none``
dataset gets no time-aware settings) and to tell "nothing loaded yet" from a broken landing zone.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from pinrec.jobs.io.lake import Location, as_location

from .landing import GRANULARITIES

FOLDER = "_dataset"
TIMESTAMP_KINDS = ("column", "row_order", "none")


def _folder(landing: str | Path | Location) -> Location:
    return as_location(landing) / FOLDER


def write_dataset_info(landing: str | Path | Location, info: dict, user_ids: pd.DataFrame | None = None,
                       item_ids: pd.DataFrame | None = None) -> Location:
    """Write the record (module docstring) and the id mappings given; returns the record's path."""
    if info.get("timestamps") not in TIMESTAMP_KINDS:
        raise ValueError(f"dataset record: timestamps must be one of {list(TIMESTAMP_KINDS)}, "
                         f"got {info.get('timestamps')!r}")
    if info.get("partition", "day") not in GRANULARITIES:
        raise ValueError(f"dataset record: partition must be one of {list(GRANULARITIES)}, got {info['partition']!r}")
    folder = _folder(landing)
    for name, ids in (("user_ids.parquet", user_ids), ("item_ids.parquet", item_ids)):
        if ids is not None:
            buffer = io.BytesIO()
            ids.to_parquet(buffer, index=False)
            (folder / name).write_bytes(buffer.getvalue())
        else:  # a previous load's mapping would renumber this dataset's ids
            (folder / name).delete()
    path = folder / "dataset.json"
    path.write_text(json.dumps(info, indent=2, default=str, allow_nan=False) + "\n")  # strict JSON: no NaN/Infinity
    return path


def read_dataset_info(landing: str | Path | Location) -> dict | None:
    """The record, or None when the landing zone has none (the synthetic world, an older load)."""
    path = _folder(landing) / "dataset.json"
    return json.loads(path.read_text()) if path.is_file() else None


def partition_granularity(landing: str | Path | Location) -> str:
    """The span of the landing zone's partitions: the record's ``partition``, ``"day"`` without one."""
    info = read_dataset_info(landing) or {}
    granularity = info.get("partition", "day")
    if granularity not in GRANULARITIES:
        raise ValueError(f"{_folder(landing) / 'dataset.json'}: partition must be one of {list(GRANULARITIES)}, "
                         f"got {granularity!r}")
    return granularity


def read_id_map(landing: str | Path | Location, what: str) -> pd.DataFrame | None:
    """``what`` = ``"user"`` or ``"item"``: the (value, id) mapping of a log's non-integer ids, or None."""
    if what not in ("user", "item"):
        raise ValueError(f"what must be 'user' or 'item', got {what!r}")
    path = _folder(landing) / f"{what}_ids.parquet"
    return pd.read_parquet(io.BytesIO(path.read_bytes())) if path.is_file() else None


__all__ = ["partition_granularity", "read_dataset_info", "read_id_map", "write_dataset_info"]
