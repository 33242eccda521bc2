"""The tables of pinrec: the raw and validated ones in ingestion order, then every derived table
of the warehouse (:data:`WAREHOUSE`), which the catalog (:mod:`pinrec.jobs.io.catalog`) reads and
writes by name.

Ids of users, pins and boards are int64 (FAISS stores int64 ids); event and session ids are
strings. Every timestamp is UTC. ``dt`` (a date) partitions every raw table.
"""
from __future__ import annotations

from .features import FEATURE_VIEWS, FeatureView
from .tables import Column, RowCheck, StoredTable, TableSpec

SURFACES = ("home_feed", "search", "related_pins", "board")
DEVICES = ("ios", "android", "web", "unknown")
ACTION_TYPES = ("closeup", "save", "click")
GENDERS = ("F", "M", "U")
COUNTRY_PATTERN = r"^[A-Z]{2}$"
MAX_POSITION = 500

USERS = TableSpec(
    name="users",
    kind="dimension",
    columns=(
        Column("user_id", "int64", doc="user id"),
        Column("created_at", "timestamp", doc="sign-up time"),
        Column("country", "string", pattern=COUNTRY_PATTERN, doc="ISO 3166 alpha-2", categorical=True),
        Column("gender", "string", nullable=True, allowed=GENDERS),
        Column("age", "int32", nullable=True, min_value=0, max_value=120),
        Column("occupation", "string", nullable=True),
    ),
    primary_key=("user_id",),
    event_ts="created_at",
    doc="Users; dt is the day the row arrived (day 0 carries the initial snapshot).",
)

PINS = TableSpec(
    name="pins",
    kind="dimension",
    columns=(
        Column("pin_id", "int64"),
        Column("created_at", "timestamp"),
        Column("category", "string", doc="top-level interest category", categorical=True),
        Column("title", "string", nullable=True),
        Column("nsfw", "bool", doc="flagged unsafe; never recommended"),
        Column("content_embedding", "array<float32>", nullable=True,
               doc="optional content vector standing in for visual/text features"),
    ),
    primary_key=("pin_id",),
    event_ts="created_at",
    doc="Pins; fresh pins arrive daily.",
)

BOARDS = TableSpec(
    name="boards",
    kind="dimension",
    columns=(
        Column("board_id", "int64"),
        Column("owner_user_id", "int64", references="users.user_id"),
        Column("topic", "string"),
        Column("created_at", "timestamp"),
    ),
    primary_key=("board_id",),
    event_ts="created_at",
)

PIN_BOARD_EDGES = TableSpec(
    name="pin_board_edges",
    kind="event",
    columns=(
        Column("pin_id", "int64", references="pins.pin_id"),
        Column("board_id", "int64", references="boards.board_id"),
        Column("saved_at", "timestamp"),
    ),
    primary_key=("pin_id", "board_id"),
    event_ts="saved_at",
    doc="The Pin-Board graph: a pin saved to a board, first save wins.",
)

IMPRESSIONS = TableSpec(
    name="impressions",
    columns=(
        Column("event_id", "string"),
        Column("user_id", "int64", references="users.user_id"),
        Column("pin_id", "int64", references="pins.pin_id"),
        Column("ts", "timestamp"),
        Column("session_id", "string"),
        Column("position", "int32", min_value=1, max_value=MAX_POSITION, doc="1-based slot in the feed"),
        Column("surface", "string", allowed=SURFACES),
        Column("device", "string", allowed=DEVICES),
        Column("country", "string", pattern=COUNTRY_PATTERN, categorical=True),
    ),
    primary_key=("event_id",),
    event_ts="ts",
)

ACTIONS = TableSpec(
    name="actions",
    columns=(
        Column("event_id", "string"),
        Column("impression_id", "string", nullable=True, references="impressions.event_id"),
        Column("user_id", "int64", references="users.user_id"),
        Column("pin_id", "int64", references="pins.pin_id"),
        Column("session_id", "string", nullable=True),
        Column("type", "string", allowed=ACTION_TYPES),
        Column("ts", "timestamp"),
        Column("board_id", "int64", nullable=True, references="boards.board_id"),
    ),
    primary_key=("event_id",),
    event_ts="ts",
    row_checks=(
        RowCheck("save_has_board", "type <> 'save' OR board_id IS NOT NULL",
                 doc="a save names the board it went to"),
        RowCheck("attributable", "impression_id IS NOT NULL OR session_id IS NOT NULL",
                 doc="an action refers to an impression, or to (user, pin, session)"),
    ),
)

QUARANTINE = TableSpec(
    name="quarantine",
    columns=(
        Column("source_table", "string"),
        Column("batch_id", "string"),
        Column("reason", "string", doc="';'-joined failed checks"),
        Column("raw", "string", doc="the row as JSON, or the raw line when it did not parse"),
        Column("quarantined_at", "timestamp"),
    ),
    primary_key=("source_table", "batch_id", "raw"),
    event_ts="quarantined_at",
    doc="Rows that failed validation. Stored partitioned by (source_table, dt) so that re-ingesting a "
        "table's days replaces exactly its own quarantined rows.",
)

#: Raw tables in the order ingestion must process them (foreign keys point backwards).
RAW_TABLES: tuple[TableSpec, ...] = (USERS, PINS, BOARDS, PIN_BOARD_EDGES, IMPRESSIONS, ACTIONS)
TABLES: dict[str, TableSpec] = {t.name: t for t in (*RAW_TABLES, QUARANTINE)}


def table(name: str) -> TableSpec:
    """The spec called ``name``; a clear KeyError listing the known tables otherwise."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None


def feature_table(view: FeatureView) -> str:
    """The warehouse table of a feature view: ``features_<view>``."""
    return f"features_{view.name}"


#: Every Delta table under ``storage.warehouse``, in pipeline order (the order ``pinrec tables`` lists).
WAREHOUSE: dict[str, StoredTable] = {t.name: t for t in (
    *(StoredTable(s.name, (s.partition,), f"validated {s.name} ({s.kind}), by the day it arrived", s, "ingest")
      for s in RAW_TABLES),
    StoredTable(QUARANTINE.name, ("source_table", QUARANTINE.partition), "rows that failed validation", QUARANTINE,
                "ingest"),
    *(StoredTable(feature_table(v), ("dt",), f"daily {v.name} features, one row per ({', '.join(v.entities)}, "
                  f"feature_ts)", written_by="features") for v in FEATURE_VIEWS),
    StoredTable("training_set", ("dt",), "point-in-time training set; the commit holds its spec and lineage",
                written_by="training-set"),
    StoredTable("graph_edges", (), "Pin-Board edges as of the cut-off, train/eval split (snapshot)", written_by="graph"),
    StoredTable("graph_pin_nodes", (), "pin nodes with dense pin_idx and feature vectors (snapshot)", written_by="graph"),
    StoredTable("graph_board_nodes", (), "board nodes with dense board_idx (snapshot)", written_by="graph"),
    StoredTable("pin_embeddings", (), "PinSage embedding of every pin, one model version (snapshot)",
                written_by="pinsage"),
)}


def warehouse_table(name: str) -> StoredTable:
    """The warehouse table called ``name``; a clear KeyError listing the known tables otherwise."""
    try:
        return WAREHOUSE[name]
    except KeyError:
        raise KeyError(f"unknown warehouse table {name!r}; known tables: {', '.join(WAREHOUSE)}") from None
