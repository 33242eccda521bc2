"""A landing zone filled by a whole-dataset loader holds that dataset and nothing else.

``pinrec generate`` (the synthetic world) and ``pinrec load-dataset`` (MovieLens, any log) each write
a whole dataset. Into a landing zone that already held another one, writing only their own files
would leave the other's partitions beside them (days the new dataset does not have, a dimension
file on a day it has no rows for, the synthetic truth beside a real dataset), and ingestion would
read both: silently mixed ids and days. So a loader

* :func:`claim` s the landing zone before writing: refused (:class:`LandingInUseError`) when it holds
  raw partitions that no loader wrote (no :data:`MARKER`, no dataset record, no synthetic truth: data
  that arrived from elsewhere is never deleted); else the claim records the loader in :data:`MARKER`;
* :func:`replace` s after writing: every raw partition it did not write is removed, and the other
  loader's side folder (``_truth`` for a dataset, ``_dataset`` for the synthetic world).

Days appended later by other means stay until the next whole-dataset load, which replaces the zone.
Reloading the same dataset rewrites the same files, so nothing else changes. A warehouse built from
the previous dataset is the caller's to check (``pinrec demo`` refuses one holding days the new
landing zone does not).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pinrec.jobs.io.lake import Location, as_location
from pinrec.schemas.catalog import RAW_TABLES

from .landing import list_partitions, partition_dir

MARKER = "_pinrec_loader.json"
#: what each loader writes beside the raw tables
SIDE_FOLDERS = {"synthetic": "_truth", "dataset": "_dataset"}
#: files older loaders left that show the zone was theirs
_OWNED_BY = ("_truth/world.json", "_dataset/dataset.json")


class LandingInUseError(ValueError):
    """The landing zone holds raw data no loader wrote; the message names it."""


def claim(landing: str | Path | Location, loader: str) -> None:
    """Check that ``loader`` (``synthetic`` or ``dataset``) may fill ``landing`` and record it (module docstring)."""
    root = as_location(landing)
    owned = any((root / name).is_file() for name in (MARKER, *_OWNED_BY))
    if not owned:
        found = {spec.name: days for spec in RAW_TABLES if (days := list_partitions(root, spec.name))}
        if found:
            table, days = next(iter(found.items()))
            raise LandingInUseError(
                f"landing zone {root} already holds raw partitions that no pinrec loader wrote ({table}: "
                f"{len(days)} day(s), {days[0]}..{days[-1]}; tables {sorted(found)}): a {loader} load replaces "
                "the whole landing zone and never deletes data that arrived from elsewhere. Point storage.landing "
                "at an empty folder, or remove those partitions first")
    (root / MARKER).write_text(json.dumps({"loader": loader}) + "\n")


def replace(landing: str | Path | Location, loader: str, written: dict[str, dict[dt.date, int]]) -> list[Location]:
    """Remove every raw partition not in ``written`` (table -> day -> rows, as a LandingSummary's
    ``rows``) and the other loader's side folder; returns what was removed."""
    root = as_location(landing)
    gone = []
    for spec in RAW_TABLES:
        for day in list_partitions(root, spec.name):
            if day not in written.get(spec.name, {}):
                gone.append(partition_dir(root, spec.name, day))
    for name, folder in SIDE_FOLDERS.items():
        if name != loader and (root / folder).is_dir():
            gone.append(root / folder)
    for where in gone:
        where.delete()
    return gone
