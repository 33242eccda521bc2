"""How to read one interaction log (:mod:`pinrec.jobs.ingest.log_reader`): :class:`LogSpec`, and
:class:`ReadLog`, what :func:`~pinrec.jobs.ingest.log_load.read_log` returns.

Columns are mapped by name (:class:`LogSpec`); a file without a header names its columns with
``LogSpec.names``. The timestamp modes are :mod:`pinrec.jobs.ingest.log_times`'s.

``"auto"`` is ``"column"`` when ``timestamp`` is set, else ``"none"``. The mode is returned in
:attr:`ReadLog.timestamps` and stored in the landing zone's dataset record
(:mod:`pinrec.jobs.ingest.dataset_info`), where evaluation looks before it offers time-aware settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .datasets import InteractionLog

TIMESTAMP_MODES = ("auto", "column", "row_order", "none")
TIMESTAMP_UNITS = ("auto", "s", "ms")


@dataclass(frozen=True)
class LogSpec:
    """How to read one interaction log (:mod:`pinrec.jobs.ingest.log_reader` and the modules it names). Column
    arguments name columns of the file."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = None
    rating: str | None = None
    weight: str | None = None
    timestamps: str = "auto"
    timestamp_unit: str = "auto"
    sep: str | None = None
    names: tuple[str, ...] = ()
    save_threshold: float | None = None
    country: str = "ZZ"
    items: str | None = None
    item_key: str | None = None
    category: str | None = None
    labels: str | None = None
    label_sep: str = "|"
    title: str | None = None
    items_sep: str | None = None
    items_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {list(TIMESTAMP_MODES)}, got {self.timestamps!r}")
        if self.timestamps == "column" and not self.timestamp:
            raise ValueError("timestamps='column' needs the timestamp column's name")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(f"timestamp_unit must be one of {list(TIMESTAMP_UNITS)}, got {self.timestamp_unit!r}")
        if self.rating and self.weight:
            raise ValueError("give either a rating or a weight column, not both")
        for name in ("sep", "label_sep", "items_sep"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} must be a non-empty separator (None: guessed), got ''")

    @property
    def mode(self) -> str:
        """The effective timestamp mode (``auto`` resolved)."""
        if self.timestamps == "auto":
            return "column" if self.timestamp else "none"
        return self.timestamps


@dataclass(frozen=True)
class ReadLog:
    """What :func:`~pinrec.jobs.ingest.log_load.read_log` returns: the log, its timestamp mode, the save threshold to land it
    with, and the id mappings (original value, int id) of non-integer ids (None: kept as they were)."""

    log: InteractionLog
    timestamps: str
    save_threshold: float
    rows: int
    user_ids: pd.DataFrame | None = field(default=None, repr=False)
    item_ids: pd.DataFrame | None = field(default=None, repr=False)
