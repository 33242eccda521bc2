"""Typed data contracts for every pinrec table.

A :class:`TableSpec` is declared once here and used everywhere: the ingestion job derives the
Spark read schema, the Great Expectations suite and the row-level quarantine reasons from it; the
synthetic generator and dataset adapters write rows that satisfy it; tests build tiny frames from
it. Nothing in this module imports Spark or Great Expectations at import time, so the serving
loader can import ``pinrec.schemas`` with the base install.

Column types are a small closed vocabulary (``DTYPES``) mapped to pyarrow here and to Spark in
:func:`pinrec.jobs.io.spark.spark_schema`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

DTYPES: dict[str, pa.DataType] = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "array<float32>": pa.list_(pa.float32()),
    "array<int64>": pa.list_(pa.int64()),
}

PARTITION_COLUMN = "dt"

#: What a categorical column may hold: string labels or small integer codes.
CATEGORICAL_DTYPES = ("string", "int32", "int64")


@dataclass(frozen=True)
class Column:
    """One column of a table and the per-value checks it carries.

    Args:
        name: column name.
        dtype: one of :data:`DTYPES`.
        nullable: whether null is a valid value (checked by validation, not by the reader).
        min_value / max_value: inclusive numeric range, ``None`` for unbounded.
        allowed: the closed set of valid values, or ``None``.
        pattern: a regular expression every non-null value must match, or ``None``.
        references: ``"table.column"`` this column is a foreign key to (checked against the
            Delta table plus the batch being ingested), or ``None``.
        doc: one line for humans.
        categorical: a label from a small vocabulary (a category, a country code), not an id or free
            text: drift monitoring compares its mix of values. A column with ``allowed`` is one by
            definition (:attr:`is_categorical`); a key or foreign key never is (an id).
    """

    name: str
    dtype: str
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    references: str | None = None
    doc: str = ""
    categorical: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: unknown dtype {self.dtype!r}; use one of {sorted(DTYPES)}")
        if self.references is not None and self.references.count(".") != 1:
            raise ValueError(f"column {self.name!r}: references must be 'table.column', got {self.references!r}")
        if self.is_categorical and (self.dtype not in CATEGORICAL_DTYPES or self.references is not None):
            raise ValueError(f"column {self.name!r}: a categorical column holds {' or '.join(CATEGORICAL_DTYPES)} "
                             f"labels and is no foreign key (an id), got dtype {self.dtype!r}, "
                             f"references {self.references!r}")

    @property
    def is_categorical(self) -> bool:
        """Declared ``categorical``, or a closed vocabulary (``allowed``)."""
        return self.categorical or self.allowed is not None

    @property
    def arrow_type(self) -> pa.DataType:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class RowCheck:
    """A condition over several columns of one row, written in Spark SQL.

    ``condition`` is true for a valid row; rows where it is false (or null) are quarantined with
    ``reason``. Example: ``RowCheck("save_has_board", "type <> 'save' OR board_id IS NOT NULL")``.
    """

    name: str
    condition: str
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A table contract: columns, primary key, event time and date partition.

    Args:
        name: table name (also the Delta folder name under the warehouse).
        columns: the payload columns, in order; the partition column ``dt`` is implicit.
        primary_key: columns that identify a row; ingestion de-duplicates on them.
        event_ts: the timestamp column that places a row in time (``dt`` is its UTC date for
            events; for dimension tables ``dt`` is the date the row arrived).
        kind: ``"event"`` (append-only log, ``dt == date(event_ts)``) or ``"dimension"``.
        row_checks: multi-column conditions.
        doc: one paragraph for humans.
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    event_ts: str
    kind: str = "event"
    row_checks: tuple[RowCheck, ...] = ()
    doc: str = ""
    partition: str = field(default=PARTITION_COLUMN)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name!r}: duplicate column names {names}")
        missing = [k for k in (*self.primary_key, self.event_ts) if k not in names]
        if missing:
            raise ValueError(f"table {self.name!r}: key/time columns {missing} are not columns")
        if self.kind not in ("event", "dimension"):
            raise ValueError(f"table {self.name!r}: kind must be 'event' or 'dimension', got {self.kind!r}")
        if self.partition in names:
            raise ValueError(f"table {self.name!r}: partition column {self.partition!r} is implicit")
        keys = sorted(c.name for c in self.columns if c.is_categorical and c.name in self.primary_key)
        if keys:
            raise ValueError(f"table {self.name!r}: primary-key column(s) {keys} cannot be categorical (an id)")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}; columns: {self.column_names}")

    def arrow_schema(self, with_partition: bool = True) -> pa.Schema:
        fields = [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        if with_partition:
            fields.append(pa.field(self.partition, pa.date32(), nullable=False))
        return pa.schema(fields)

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        """The names of its categorical columns (:attr:`Column.is_categorical`), in order."""
        return tuple(c.name for c in self.columns if c.is_categorical)

    @property
    def foreign_keys(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.references)


@dataclass(frozen=True)
class StoredTable:
    """A Delta table of the warehouse, as the catalog (:mod:`pinrec.jobs.io.catalog`) knows it.

    Args:
        name: the table's name, also its folder under the warehouse.
        partition_by: the partition columns, in order; ``()`` for a snapshot table that every
            write replaces whole.
        doc: one line for humans.
        spec: the column contract, for the raw tables ingestion validates (None for derived ones).
        written_by: the ``pinrec`` command that writes it ("ingest"), named when a job finds it absent.
    """

    name: str
    partition_by: tuple[str, ...]
    doc: str
    spec: TableSpec | None = None
    written_by: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith(("_", ".")):
            raise ValueError(f"table name {self.name!r} must be a plain folder name (no '/', no leading '_' or '.')")
        if isinstance(self.partition_by, str):
            raise TypeError(f"table {self.name!r}: partition_by must be a tuple of columns, got {self.partition_by!r}")

    @property
    def missing_hint(self) -> str:
        """What to run when the table is absent: "run `pinrec <written_by>` first" ("" when unknown)."""
        return f"run `pinrec {self.written_by}` first" if self.written_by else ""

    @property
    def snapshot(self) -> bool:
        """True when every write replaces the whole table (no partitions)."""
        return not self.partition_by
