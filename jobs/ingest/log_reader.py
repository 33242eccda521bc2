"""A generic reader for any interaction log: CSV / TSV / Parquet of user, item, optional timestamp and
optional rating or weight, plus an optional item-metadata table, into an
:class:`~pinrec.jobs.ingest.datasets.InteractionLog`.

The names below are importable from here as before the module was split; each lives, with the
docstring that describes it, in one of these:

- :mod:`pinrec.jobs.ingest.log_spec`: :class:`LogSpec` (columns mapped by name, the timestamp mode
  ``"auto"``) and :class:`ReadLog`;
- :mod:`pinrec.jobs.ingest.log_files`: :func:`read_table` (CSV / TSV with the separator guessed, JSON
  lines, Parquet; UTF-8, else Latin-1);
- :mod:`pinrec.jobs.ingest.log_columns`: the columns' checks, and the ids kept or renumbered
  (:data:`MAX_KEPT_ID`);
- :mod:`pinrec.jobs.ingest.log_times`: time (``LogSpec.timestamps``: ``"column"``, ``"row_order"``,
  ``"none"``; :data:`ORIGIN`, :data:`MS_FROM`);
- :mod:`pinrec.jobs.ingest.log_items`: item metadata (category, labels as a multi-hot content vector
  over :data:`MAX_LABELS` labels, title);
- :mod:`pinrec.jobs.ingest.log_load`: :func:`read_log` (repeated rows, ratings, weights and the save
  threshold), :func:`load_log` and :func:`land_configured`.
"""
from __future__ import annotations

from .log_columns import MAX_KEPT_ID
from .log_files import read_table
from .log_items import MAX_LABELS
from .log_load import land_configured, load_log, read_log
from .log_spec import TIMESTAMP_MODES, TIMESTAMP_UNITS, LogSpec, ReadLog
from .log_times import MS_FROM, ORIGIN

__all__ = [
    "MAX_KEPT_ID",
    "MAX_LABELS",
    "MS_FROM",
    "ORIGIN",
    "TIMESTAMP_MODES",
    "TIMESTAMP_UNITS",
    "LogSpec",
    "ReadLog",
    "land_configured",
    "load_log",
    "read_log",
    "read_table",
]
