"""The catalog: reads pinned per job, time travel, partition writes, snapshot writes, lineage in the commits."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.io.catalog import Catalog, days_predicate
from pinrec.jobs.io.lake import Location
from pinrec.schemas.catalog import WAREHOUSE, warehouse_table

D1, D2, D3 = dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)


def frame(spark, rows):
    """rows: (id, day)"""
    return spark.createDataFrame(list(rows), "id bigint, dt date")


def ids(df) -> list[tuple[int, dt.date]]:
    return sorted((r["id"], r["dt"]) for r in df.collect())


def test_an_unknown_table_is_a_key_error_listing_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match=r"unknown warehouse table 'trainingset'; known tables: users, pins, .*"
                                       r"training_set, .*pin_embeddings"):
        Catalog(None, str(tmp_path)).path("trainingset")
    assert warehouse_table("quarantine").partition_by == ("source_table", "dt")
    assert warehouse_table("graph_edges").snapshot and not warehouse_table("impressions").snapshot


def test_paths_are_the_table_under_the_warehouse_and_s3_becomes_s3a(tmp_path):
    assert Catalog(None, str(tmp_path)).path("features_user") == f"file://{tmp_path}/features_user"
    assert Catalog(None, "s3://lake/wh/").path("pins") == "s3a://lake/wh/pins"
    assert Catalog(None, Location("s3a://lake/wh")).path("pin_embeddings") == "s3a://lake/wh/pin_embeddings"
    assert len(WAREHOUSE) == 15 and list(WAREHOUSE)[:7] == ["users", "pins", "boards", "pin_board_edges",
                                                            "impressions", "actions", "quarantine"]


def test_of_passes_a_catalog_through_and_days_predicate_names_each_day(tmp_path):
    catalog = Catalog(None, str(tmp_path))
    assert Catalog.of(None, catalog) is catalog and Catalog.of(None, str(tmp_path)) is not catalog
    assert days_predicate([D2, D1, D2]) == "(dt >= DATE'2026-01-05' AND dt <= DATE'2026-01-06')"
    with pytest.raises(ValueError, match="at least one day"):
        days_predicate([])


@pytest.mark.spark
def test_write_read_version_and_time_travel(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    assert catalog.version("impressions") is None and not catalog.exists("impressions")
    with pytest.raises(FileNotFoundError, match=r"table 'impressions' does not exist at .*/impressions: "
                                                    r"run `pinrec ingest` first"):
        catalog.read("impressions")
    first = catalog.write("impressions", frame(spark, [(1, D1), (2, D1)]), days=[D1])
    second = catalog.write("impressions", frame(spark, [(3, D2)]), days=[D2])
    assert (first.version, first.rows, second.version, second.rows) == (0, 2, 1, 1)
    assert catalog.version("impressions") == 1 and catalog.writes == {"impressions": 1}
    assert ids(catalog.read("impressions")) == [(1, D1), (2, D1), (3, D2)]
    assert ids(catalog.read("impressions", version=0)) == [(1, D1), (2, D1)]
    assert catalog.reads == {"impressions": 0}  # the last read's version
    with pytest.raises(ValueError, match="version of 'impressions' must be an int >= 0"):
        catalog.read("impressions", version=-1)


@pytest.mark.spark
def test_a_read_is_pinned_for_the_job_while_another_writer_commits(spark, tmp_path):
    writer, job = Catalog(spark, str(tmp_path)), Catalog(spark, str(tmp_path))
    writer.write("actions", frame(spark, [(1, D1)]), days=[D1])
    assert ids(job.read("actions")) == [(1, D1)]
    writer.write("actions", frame(spark, [(2, D2)]), days=[D2])
    assert ids(job.read("actions")) == [(1, D1)]  # still the version its first read saw
    assert job.reads == {"actions": 0} and job.version("actions") == 1
    assert ids(Catalog(spark, str(tmp_path)).read("actions")) == [(1, D1), (2, D2)]


@pytest.mark.spark
def test_days_and_replace_where_replace_only_the_named_partitions(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    catalog.write("features_pin", frame(spark, [(1, D1), (2, D2), (3, D3)]), days=[D1, D2, D3])
    catalog.write("features_pin", frame(spark, [(20, D2), (21, D2)]), days=[D2])
    assert ids(catalog.read("features_pin")) == [(1, D1), (3, D3), (20, D2), (21, D2)]
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|predicate"):
        catalog.write("features_pin", frame(spark, [(4, D3)]), days=[D1])  # a row outside the named day
    q = spark.createDataFrame([("impressions", "r", D1), ("actions", "r", D1)], "source_table string, raw string, dt date")
    catalog.write("quarantine", q, days=[D1], replace_where="source_table = 'impressions'")
    again = spark.createDataFrame([("impressions", "r2", D1)], "source_table string, raw string, dt date")
    catalog.write("quarantine", again, days=[D1], replace_where="source_table = 'impressions'")
    got = sorted((r["source_table"], r["raw"]) for r in catalog.read("quarantine").collect())
    assert got == [("actions", "r"), ("impressions", "r2")]


@pytest.mark.spark
def test_partitioned_and_snapshot_tables_refuse_the_wrong_write(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    with pytest.raises(ValueError, match=r"'training_set' is partitioned by \['dt'\]: pass days="):
        catalog.write("training_set", frame(spark, [(1, D1)]))
    with pytest.raises(ValueError, match="'graph_edges' is a snapshot .* days= and replace_where= are not allowed"):
        catalog.write("graph_edges", frame(spark, [(1, D1)]), days=[D1])
    with pytest.raises(ValueError, match=r"may not hold \['read'\]"):
        catalog.write("graph_edges", frame(spark, [(1, D1)]), user_metadata={"read": {}})
    assert not catalog.exists("training_set") and not catalog.exists("graph_edges")


@pytest.mark.spark
def test_a_snapshot_write_replaces_the_whole_table_and_its_schema(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    catalog.write("pin_embeddings", frame(spark, [(1, D1), (2, D2)]))
    other = spark.createDataFrame([(7, "v")], "pin_id bigint, model_version string")
    commit = catalog.write("pin_embeddings", other)
    assert commit.version == 1 and commit.rows == 1
    assert [tuple(r) for r in catalog.read("pin_embeddings").collect()] == [(7, "v")]


@pytest.mark.spark
def test_add_columns_adds_a_new_column_older_rows_read_null(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    catalog.write("features_user", frame(spark, [(1, D1)]), days=[D1])
    wider = spark.createDataFrame([(2, 0.5, D2)], "id bigint, rate double, dt date")
    with pytest.raises(Exception, match="(?i)schema|metadata"):
        catalog.write("features_user", wider, days=[D2])
    catalog.write("features_user", wider, days=[D2], add_columns=True)
    assert sorted((r["id"], r["rate"]) for r in catalog.read("features_user").collect()) == [(1, None), (2, 0.5)]


@pytest.mark.spark
def test_the_lineage_of_reads_goes_into_the_commit_beside_the_jobs_metadata(spark, tmp_path):
    setup = Catalog(spark, str(tmp_path))
    setup.write("impressions", frame(spark, [(1, D1)]), days=[D1])
    setup.write("impressions", frame(spark, [(2, D2)]), days=[D2])
    setup.write("pins", frame(spark, [(9, D1)]), days=[D1])

    job = Catalog(spark, str(tmp_path))
    joined = job.read("impressions").unionByName(job.read("pins"))
    commit = job.write("training_set", joined, days=[D1, D2], user_metadata={"negative_rate": 0.1, "days": ["x"]})
    lineage = {"impressions": 1, "pins": 0}
    assert job.reads == lineage and job.writes == {"training_set": 0}
    assert commit.user_metadata == {"negative_rate": 0.1, "days": ["x"], "read": lineage,
                                    "wrote_days": [D1.isoformat(), D2.isoformat()]}
    reader = Catalog(spark, str(tmp_path))
    assert reader.user_metadata("training_set") == commit.user_metadata
    assert reader.reads == {}  # looking at metadata reads no table
    job.write("training_set", joined, days=[D1, D2])
    assert [c.version for c in reader.history("training_set")] == [1, 0]
    assert reader.user_metadata("training_set", 0)["negative_rate"] == 0.1
    assert reader.user_metadata("training_set") == {"read": lineage, "wrote_days": [D1.isoformat(), D2.isoformat()]}
    with pytest.raises(ValueError, match=r"'training_set' has no version 5 \(it has 0..1\)"):
        reader.user_metadata("training_set", 5)


@pytest.mark.spark
def test_a_maintenance_commit_is_no_new_data_for_metadata_and_commit_ids(spark, tmp_path):
    from delta.tables import DeltaTable

    catalog = Catalog(spark, str(tmp_path))
    two_files = frame(spark, [(1, D1), (2, D2)]).repartition(2)  # so OPTIMIZE has something to compact
    catalog.write("pin_embeddings", two_files, user_metadata={"model_version": "pinsage-1"})
    before = catalog.commit_id("pin_embeddings")
    DeltaTable.forPath(spark, catalog.path("pin_embeddings")).optimize().executeCompaction()
    spark.sql(f"ALTER TABLE delta.`{catalog.path('pin_embeddings')}` SET TBLPROPERTIES ('note' = 'x')")
    assert [c.operation for c in catalog.history("pin_embeddings")] == ["SET TBLPROPERTIES", "OPTIMIZE", "WRITE"]
    look = Catalog(spark, str(tmp_path))
    assert look.user_metadata("pin_embeddings")["model_version"] == "pinsage-1"  # not {} of the ALTER
    assert look.user_metadata("pin_embeddings", 1)["model_version"] == "pinsage-1"
    assert look.commit_id("pin_embeddings") == before  # downstream steps stay cached
    catalog.write("pin_embeddings", frame(spark, [(2, D1)]), user_metadata={"model_version": "pinsage-2"})
    assert look.commit_id("pin_embeddings") != before and look.user_metadata("pin_embeddings", 3)["model_version"] \
        == "pinsage-2"


@pytest.mark.spark
def test_require_pins_the_present_tables_and_names_the_absent(spark, tmp_path):
    catalog = Catalog(spark, str(tmp_path))
    Catalog(spark, str(tmp_path)).write("pins", frame(spark, [(1, D1)]), days=[D1])
    with pytest.raises(FileNotFoundError, match=r"table\(s\) \['boards', 'actions'\] do not exist under .*: run it"):
        catalog.require(["pins", "boards", "actions"], "run it")
    Catalog(spark, str(tmp_path)).write("pins", frame(spark, [(2, D2)]), days=[D2])
    assert ids(catalog.read("pins")) == [(1, D1)]  # pinned by require, before the second write


@pytest.mark.spark
def test_on_local_disk_and_on_s3(spark, any_lake):
    catalog = Catalog(spark, any_lake.warehouse)
    catalog.write("users", frame(spark, [(1, D1)]), days=[D1])
    catalog.write("users", frame(spark, [(2, D2)]), days=[D2])
    catalog.write("graph_pin_nodes", frame(spark, [(5, D1)]), user_metadata={"feature_names": ["a"]})
    job = Catalog(spark, any_lake.warehouse)
    assert ids(job.read("users")) == [(1, D1), (2, D2)] and ids(job.read("users", 0)) == [(1, D1)]
    assert job.version("graph_pin_nodes") == 0 and job.user_metadata("graph_pin_nodes")["feature_names"] == ["a"]
    assert catalog.writes == {"users": 1, "graph_pin_nodes": 0}


@pytest.mark.spark
def test_a_write_in_a_scope_records_its_own_writers_reads_and_the_catalog_still_holds_all(spark, tmp_path):
    import contextvars
    import threading

    setup = Catalog(spark, str(tmp_path))
    for name in ("users", "pins", "boards"):
        setup.write(name, frame(spark, [(1, D1)]), days=[D1])
    job = Catalog(spark, str(tmp_path))
    both_read = threading.Barrier(2, timeout=60)

    def writer(reads: str, table: str) -> dict:
        with job.scope():
            job.read(reads)
            both_read.wait()  # the other writer's read happened before this write
            return job.write(table, frame(spark, [(2, D1)]), days=[D1]).user_metadata["read"]

    threads, got = [], {}
    for reads, table in (("users", "impressions"), ("pins", "actions")):
        threads.append(threading.Thread(target=lambda r=reads, t=table: got.__setitem__(t, writer(r, t))))
        threads[-1].start()
    for thread in threads:
        thread.join(120)
    assert got == {"impressions": {"users": 0}, "actions": {"pins": 0}}
    assert job.reads == {"users": 0, "pins": 0}  # the job's lineage: what the step cache checks

    with job.scope():  # a scope starts afresh, and a thread run in a copy of its context starts from its reads
        job.read("boards")
        assert job.lineage == {"boards": 0}

        def in_copy():
            job.read("users")
            return job.lineage

        assert contextvars.copy_context().run(in_copy) == {"boards": 0, "users": 0}
        assert job.lineage == {"boards": 0}  # what the copy read stayed its own
        with job.scope({"pins": 0}), Catalog(spark, str(tmp_path)).scope():
            job.read("users")  # inside another catalog's scope: still this one's innermost scope
            assert job.lineage == {"pins": 0, "users": 0}
        assert job.lineage == {"boards": 0}
    assert job.lineage == job.reads == {"users": 0, "pins": 0, "boards": 0}  # no scope: every read
