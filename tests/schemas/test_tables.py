"""Table contracts: declared once, consistent, and failing fast on bad declarations."""
from __future__ import annotations

import pyarrow as pa
import pytest

from pinrec.schemas.catalog import ACTIONS, IMPRESSIONS, RAW_TABLES, TABLES, table
from pinrec.schemas.tables import Column, TableSpec


def test_every_foreign_key_points_backwards_in_ingestion_order():
    seen: dict[str, set[str]] = {}
    for spec in RAW_TABLES:
        for col in spec.foreign_keys:
            ref_table, ref_col = col.references.split(".")
            assert ref_table in seen, f"{spec.name}.{col.name} references {ref_table}, ingested later"
            assert ref_col in seen[ref_table]
        seen[spec.name] = set(spec.column_names)


def test_arrow_schema_carries_types_nullability_and_partition():
    schema = IMPRESSIONS.arrow_schema()
    assert schema.field("position").type == pa.int32()
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert not schema.field("event_id").nullable
    assert schema.names[-1] == "dt" and schema.field("dt").type == pa.date32()
    assert ACTIONS.arrow_schema().field("board_id").nullable


def test_lookup_and_bad_declarations():
    assert table("pins") is TABLES["pins"]
    with pytest.raises(KeyError, match="known tables"):
        table("pinz")
    with pytest.raises(ValueError, match="unknown dtype"):
        Column("x", "decimal")
    with pytest.raises(ValueError, match="table.column"):
        Column("x", "int64", references="users")
    with pytest.raises(ValueError, match="not columns"):
        TableSpec("t", (Column("a", "int64"),), primary_key=("b",), event_ts="a")
    with pytest.raises(ValueError, match="partition column"):
        TableSpec("t", (Column("a", "timestamp"), Column("dt", "date")), primary_key=("a",), event_ts="a")
