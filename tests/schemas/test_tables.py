"""Table contracts: declared once, consistent, and failing fast on bad declarations."""
from __future__ import annotations

import pyarrow as pa
import pytest

from pinrec.schemas.catalog import (
    ACTIONS,
    IMPRESSIONS,
    RAW_TABLES,
    TABLES,
    WAREHOUSE,
    feature_table,
    table,
    warehouse_table,
)
from pinrec.schemas.features import FEATURE_VIEWS
from pinrec.schemas.tables import Column, StoredTable, TableSpec


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


def test_every_warehouse_table_is_declared_once_with_its_partitions():
    assert list(WAREHOUSE) == [*(t.name for t in RAW_TABLES), "quarantine", *(feature_table(v) for v in FEATURE_VIEWS),
                               "training_set", "graph_edges", "graph_pin_nodes", "graph_board_nodes", "pin_embeddings"]
    assert all(WAREHOUSE[t.name].spec is t and WAREHOUSE[t.name].partition_by == ("dt",) for t in RAW_TABLES)
    assert [n for n, t in WAREHOUSE.items() if t.snapshot] == ["graph_edges", "graph_pin_nodes", "graph_board_nodes",
                                                               "pin_embeddings"]
    assert all(t.doc for t in WAREHOUSE.values())
    with pytest.raises(KeyError, match="unknown warehouse table 'pin_embedding'; known tables: users, pins"):
        warehouse_table("pin_embedding")
    with pytest.raises(ValueError, match="plain folder name"):
        StoredTable("a/b", ("dt",), "x")
    with pytest.raises(TypeError, match="partition_by must be a tuple"):
        StoredTable("t", "dt", "x")


def test_categorical_columns_are_labels_never_ids():
    assert IMPRESSIONS.categorical_columns == ("surface", "device", "country")  # allowed, allowed, declared
    assert table("pins").categorical_columns == ("category",)
    ids = {c.name for t in RAW_TABLES for c in t.columns if c.references or c.name in t.primary_key}
    assert not ids & {c for t in RAW_TABLES for c in t.categorical_columns}
    with pytest.raises(ValueError, match="column 'user_id': a categorical column .* no foreign key"):
        Column("user_id", "int64", references="users.user_id", categorical=True)
    with pytest.raises(ValueError, match="column 'score': a categorical column holds string or int32 or int64"):
        Column("score", "float64", categorical=True)
    with pytest.raises(ValueError, match=r"table 't': primary-key column\(s\) \['kind'\] cannot be categorical"):
        TableSpec("t", (Column("kind", "string", allowed=("a", "b")), Column("ts", "timestamp")),
                  primary_key=("kind",), event_ts="ts")


def test_every_warehouse_table_names_the_command_that_writes_it():
    from pinrec.jobs.orchestration.cli_parser import build_parser

    for command in {t.written_by for t in WAREHOUSE.values()}:
        assert build_parser().parse_args([command]).handler == command  # a subcommand (an unknown one exits 2)
    assert WAREHOUSE["training_set"].missing_hint == "run `pinrec training-set` first"
    assert WAREHOUSE["pin_embeddings"].written_by == "pinsage" and WAREHOUSE["quarantine"].written_by == "ingest"
    assert StoredTable("t", ("dt",), "x").missing_hint == ""
