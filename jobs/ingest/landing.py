"""The landing zone: raw JSON-lines files as logs would arrive, one folder per table and date.

The zone is a local folder or an S3 prefix (a :class:`~pinrec.jobs.io.lake.Location`; functions
taking ``landing`` accept a path string too, which means local or AWS with the SDK's defaults).

Layout: ``<landing>/<table>/dt=YYYY-MM-DD/part-00000.jsonl`` (or ``.jsonl.gz``), UTF-8, one JSON
object per ``\n``-ended line; a partition is flat (ingestion refuses files in its sub-folders, see
:mod:`pinrec.jobs.ingest.ingest_read`). Timestamps are ISO-8601 UTC strings with millisecond precision
(``2026-01-05T10:00:00.123Z``); ``dt`` lives only in the folder name.

Granularity. A partition holds one day by default. A static dataset spanning years may land in
coarser partitions (:data:`GRANULARITIES`): ``month`` or ``year``, each folder named by its first
day (``dt=2003-07-01`` holds July 2003) and holding every row of that span. The landing zone's
dataset record (:mod:`pinrec.jobs.ingest.dataset_info`, key ``partition``) says which; without one
(the synthetic world) partitions are days. Ingestion checks that an event falls in its folder's
span and writes it to the Delta partition of its own day.
Sources (the synthetic generator, dataset adapters) write through :func:`write_partition`, so
every source produces byte-compatible files.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pinrec.jobs.io.lake import Location, as_location
from pinrec.schemas.tables import TableSpec


@dataclass(frozen=True)
class LandingSummary:
    """What a source wrote into the landing zone.

    ``rows[table][day]`` counts every line written, faulty ones included; ``faults[table][kind]``
    counts deliberately injected faults (synthetic source only) so tests can check that ingestion
    quarantines exactly those; ``duplicates[table]`` counts injected duplicate rows. ``partition``:
    the partitions' span (:data:`GRANULARITIES`); the keys of ``rows`` are their first days.
    ``labels`` (a dataset's landing only): impressions, closeup and save actions landed;
    ``negatives``: sampled negative impressions per interaction (:mod:`pinrec.jobs.ingest.negatives`).
    """

    rows: dict[str, dict[dt.date, int]]
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    partition: str = "day"
    labels: dict[str, int] = field(default_factory=dict)
    negatives: int = 0

    @property
    def days(self) -> list[dt.date]:
        return sorted({d for per_day in self.rows.values() for d in per_day})

    def total(self, table: str) -> int:
        return sum(self.rows.get(table, {}).values())


#: Landing partition spans, finest first.
GRANULARITIES = ("day", "month", "year")


def _check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"landing partition granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")


def partition_start(day: dt.date, granularity: str = "day") -> dt.date:
    """The first day of the ``granularity`` partition holding ``day`` (its folder's date)."""
    _check_granularity(granularity)
    if granularity == "day":
        return day
    return day.replace(day=1) if granularity == "month" else day.replace(month=1, day=1)


def partition_end(start: dt.date, granularity: str = "day") -> dt.date:
    """The first day after the partition starting on ``start`` (exclusive end of its span)."""
    _check_granularity(granularity)
    if granularity == "day":
        return start + dt.timedelta(days=1)
    if granularity == "year":
        return start.replace(year=start.year + 1)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_dir(landing: str | Path | Location, table: str, day: dt.date) -> Location:
    return as_location(landing) / table / f"dt={day.isoformat()}"


def list_partitions(landing: str | Path | Location, table: str) -> list[dt.date]:
    """Dates present in the landing zone for ``table``, sorted."""
    root = as_location(landing) / table
    days = []
    for name, is_dir in root.entries():
        if is_dir and name.startswith("dt="):
            try:
                days.append(dt.date.fromisoformat(name[3:]))
            except ValueError:
                raise ValueError(f"landing folder {root / name} is not a partition (dt=YYYY-MM-DD): rename or remove "
                                 "it (names starting with '.' or '_' are skipped)") from None
    return sorted(days)


def format_ts(series: pd.Series) -> pd.Series:
    """UTC timestamps -> ``2026-01-05T10:00:00.123Z`` (vectorised; NaT -> None)."""
    ts = pd.to_datetime(series, utc=True)
    values = ts.dt.tz_localize(None).to_numpy().astype("datetime64[ms]")
    text = pd.Series(np.char.add(np.datetime_as_string(values, unit="ms"), "Z"), index=series.index, dtype=object)
    return text.where(ts.notna(), None)


def write_partition(landing: str | Path | Location, spec: TableSpec, day: dt.date, frame: pd.DataFrame,
                    part: int = 0) -> Location:
    """Write ``frame`` (columns of ``spec``; extra columns are written too, on purpose, so that
    tests and fault injection can produce schema drift) as one JSON-lines file; returns its path.

    Timestamp columns are formatted as ISO-8601 UTC; NaN/NaT become JSON null.
    """
    out = frame.copy()
    for col in spec.columns:
        if col.name not in out.columns:
            continue
        if col.dtype == "timestamp" and not pd.api.types.is_object_dtype(out[col.name]):
            out[col.name] = format_ts(out[col.name])
        elif col.dtype in ("int32", "int64") and pd.api.types.is_float_dtype(out[col.name]):
            # A nullable int column arrives as float in pandas; 1.0 is not a valid JSON integer.
            out[col.name] = out[col.name].astype("Int64")
    path = partition_dir(landing, spec.name, day) / f"part-{part:05d}.jsonl"
    path.write_text(out.to_json(orient="records", lines=True, force_ascii=False) if len(out) else "")
    return path  # written whole (one PUT, or a renamed temporary file): a reader never sees half of it


def append_raw_lines(landing: str | Path | Location, table: str, day: dt.date, lines: list[str],
                     name: str = "part-99999.jsonl") -> Location:
    """Write raw text lines (malformed JSON, wrong types...) into a partition; used for fault
    injection and tests."""
    path = partition_dir(landing, table, day) / name
    path.write_text("".join(line.rstrip("\n") + "\n" for line in lines))
    return path


def json_default(value):
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(row: dict) -> str:
    return json.dumps(row, default=json_default)
