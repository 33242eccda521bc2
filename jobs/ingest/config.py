"""The landing and ingestion configuration: the synthetic world (``synthetic``), the raw source
(``dataset``) and the validation gate (``ingest``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pinrec.schemas.catalog import MAX_POSITION, RAW_TABLES
from pinrec.schemas.config_base import ConfigError, section

__all__ = ["DatasetConfig", "IngestConfig", "SyntheticConfig"]

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]


@section("synthetic")
class SyntheticConfig:
    """Size and shape of the synthetic world (see :mod:`pinrec.jobs.ingest.synthetic`). ``feed_order``: how a
    session's pins are placed on positions 1..N: ``"random"`` (in the order drawn, so position is
    independent of every feature) or ``"popularity"`` (most popular first, as a popularity-driven
    feed would: position is then confounded with how popular a pin is)."""

    users: PosInt = 1_000
    pins: PosInt = 4_000
    categories: PosInt = 12
    latent_dim: PosInt = 16
    boards_per_user: PosInt = 3
    days: PosInt = 4
    impressions_per_day: PosInt = 20_000
    session_length: Annotated[int, Field(ge=1, le=MAX_POSITION)] = 20
    fresh_pins_per_day: NonNegInt = 100
    new_users_per_day: NonNegInt = 20
    start_date: dt.date = dt.date(2026, 1, 5)
    fault_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.002
    duplicate_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.002
    feed_order: Literal["random", "popularity"] = "random"


@section("dataset")
class DatasetConfig:
    """Which raw source fills the landing zone.

    ``kind`` is ``"synthetic"`` (the embedded default), ``"movielens-100k"`` (``path``: the GroupLens
    folder) or ``"log"``: any interaction log, ``path`` a CSV / TSV / Parquet file read by
    :mod:`pinrec.jobs.ingest.log_reader` (worked example: ``docs/datasets.md``). For ``log``:
    ``user_column``, ``item_column``, ``timestamp_column`` (none: no time), ``rating_column`` or
    ``weight_column`` (a count: repeated rows are summed); ``timestamps``: ``auto`` (the column when
    given, else ``none``), ``column``, ``row_order`` (rows are in time order) or ``none`` (no time:
    ties); ``timestamp_unit`` of numeric times (``auto``: milliseconds when the largest is at least 1e11, else
    seconds); ``sep`` (none: guessed from the first line: tab, ``::``, comma, ``;`` or ``|``) and ``names``
    (the columns of a header-less file); a ``.json`` / ``.jsonl`` log is read as JSON lines; text that is not
    UTF-8 is read as Latin-1; ``save_threshold`` (none: 4 with ratings, else every
    interaction is a save); ``country`` of every user; ``items``: an item-metadata file keyed by
    ``item_key`` (default: ``item_column``) with ``category_column``, ``labels_column`` (multi-label,
    joined by ``label_sep``: multi-hot content vector) and ``title_column``; ``items_sep`` /
    ``items_names`` as for the log. ``max_partitions`` > 0 bounds the landed partitions per table:
    a dataset with more days than that lands by calendar month, or by year (each event still
    ingested into its own day); 0: one partition per day. ``negative_impressions``: impressions of
    pins the user never interacted with, sampled per interaction (:mod:`pinrec.jobs.ingest.negatives`;
    null: 1 when ``ranker.tasks`` holds ``closeup`` or every interaction is a save, such as an implicit
    log; else 0).
    """

    kind: Literal["synthetic", "movielens-100k", "log"] = "synthetic"
    path: str | None = None
    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str | None = None
    rating_column: str | None = None
    weight_column: str | None = None
    timestamps: Literal["auto", "column", "row_order", "none"] = "auto"
    timestamp_unit: Literal["auto", "s", "ms"] = "auto"
    sep: Annotated[str, Field(min_length=1)] | None = None
    names: tuple[str, ...] = ()
    save_threshold: float | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "ZZ"
    items: str | None = None
    item_key: str | None = None
    category_column: str | None = None
    labels_column: str | None = None
    label_sep: Annotated[str, Field(min_length=1)] = "|"
    title_column: str | None = None
    items_sep: Annotated[str, Field(min_length=1)] | None = None
    items_names: tuple[str, ...] = ()
    max_partitions: Annotated[int, Field(ge=0)] = 366
    negative_impressions: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if self.kind != "synthetic" and not self.path:
            raise ConfigError(f"dataset.path is required for dataset.kind={self.kind!r}")
        return self


@section("ingest")
class IngestConfig:
    """Validation gate of the ingestion job.

    ``max_failing_fraction``: above this share of quarantined rows a batch is rejected and nothing
    is written to the valid table. ``optional_tables``: tables whose landing partition may be
    missing or empty on a day (nothing new arrived); for the others (impressions, actions) a
    missing or empty partition is an error, since it means logging broke. ``max_future_skew_s``:
    how far past the job's clock an event timestamp may be before it counts as "in the future".
    ``reference_lookback_days``: foreign keys into event tables (actions -> impressions) are
    looked up in that many days before the batch. ``parallel_tables``: how many tables of one
    foreign-key level (users and pins; boards and impressions; pin_board_edges and actions) are
    ingested side by side, each in its own thread of the one Spark session (1: one after the other;
    on small days most of a table's time is Spark's per-job latency, which overlaps).
    """

    max_failing_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    optional_tables: tuple[str, ...] = ("users", "pins", "boards", "pin_board_edges")
    max_future_skew_s: Annotated[int, Field(ge=0, le=366 * 86400)] = 300
    reference_lookback_days: NonNegInt = 7
    report_sample_rows: NonNegInt = 5
    parallel_tables: PosInt = 2

    @model_validator(mode="after")
    def _known_tables(self):
        names = [t.name for t in RAW_TABLES]
        unknown = [t for t in self.optional_tables if t not in names]
        if unknown:
            raise ConfigError(f"ingest.optional_tables names unknown table(s) {unknown}; the landed tables are "
                              f"{names}")
        return self
