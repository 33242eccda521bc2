"""`pinrec lineage`: from a bundle, a table version or an MLflow run back to the landing partitions."""
from __future__ import annotations

import pytest

from pinrec.jobs.publish.lineage import Node, parse_table_ref, render
from pinrec.schemas.catalog import RAW_TABLES


def test_parse_table_ref():
    assert parse_table_ref("pins@7") == ("pins", 7)
    assert parse_table_ref("pins@") == ("pins", None)
    assert parse_table_ref("v-2026") is None
    for bad in ("@3", "pins@x", "pins@-1"):
        with pytest.raises(ValueError, match="<table>@<version>"):
            parse_table_ref(bad)


def test_render_draws_the_tree():
    tree = Node("bundle homefeed/v1", {"code_version": "abc"}, (
        Node("pin_embeddings@3", {"model_version": "pinsage-1"}, (Node("graph_edges@2", {}, (Node("pins@1"),)),)),
        Node("pins@1 (above)")))
    assert render(tree).splitlines() == [
        "bundle homefeed/v1  [code_version=abc]",
        "├── pin_embeddings@3  [model_version=pinsage-1]",
        "│   └── graph_edges@2",
        "│       └── pins@1",
        "└── pins@1 (above)",
    ]


class _Catalog:
    """What table_lineage reads of a catalog: history (newest first), commit metadata, existence."""

    def __init__(self, commits):
        self.commits = commits

    def exists(self, table):
        return table in self.commits

    def path(self, table):
        return f"/lake/{table}"

    def history(self, table, limit=None):
        return sorted(self.commits[table], key=lambda c: -c.version)[:limit]

    def user_metadata(self, table, version=None):
        return next(c for c in self.history(table) if version is None or c.version == version).user_metadata


def test_a_table_written_day_by_day_leads_to_every_days_landing_and_inputs():
    from pinrec.jobs.io.catalog import Commit
    from pinrec.jobs.publish.lineage import table_lineage

    def day(version, d, folder, read):
        return Commit(version, "WRITE", 1, {"wrote_days": [d], "landing": {d: folder}, "read": read})

    catalog = _Catalog({"users": [day(0, "2026-01-01", "U1", {}), day(1, "2026-01-02", "U2", {})],
                        "impressions": [day(0, "2026-01-01", "I1", {"users": 0}),
                                        day(1, "2026-01-02", "I2", {"users": 1})]})
    tree = table_lineage(catalog, "impressions")
    assert tree.details["days_written_by"] == "impressions@1, impressions@0"
    assert [c.label for c in tree.children] == ["landing I1", "landing I2", "users@0", "users@1"]
    assert [c.label for c in tree.children[3].children] == ["landing U1", "landing U2"]
    assert [c.label for c in table_lineage(catalog, "impressions", 0).children] == ["landing I1", "users@0"]


def test_a_table_written_by_slices_of_a_day_follows_every_slices_last_writer():
    """The quarantine: each ingest replaces its own source table's rows of the day (replace_where), so one day's
    rows come from several commits; a whole-day write replaces them all."""
    from pinrec.jobs.io.catalog import Commit
    from pinrec.jobs.publish.lineage import table_lineage

    d = "2026-01-01"

    def quarantined(version, source, folder, read, where=True):
        meta = {"wrote_days": [d], "landing": {d: folder}, "read": read}
        return Commit(version, "WRITE", 1, {**meta, "replace_where": f"source_table = '{source}'"} if where else meta)

    catalog = _Catalog({
        "users": [Commit(0, "WRITE", 1, {"wrote_days": [d], "landing": {d: "U"}, "read": {}})],
        "quarantine": [quarantined(0, "impressions", "I1", {"users": 0}), quarantined(1, "actions", "A1", {}),
                       quarantined(2, "impressions", "I2", {"users": 0}), quarantined(3, "all", "X", {}, where=False)]})
    tree = table_lineage(catalog, "quarantine", 2)
    assert tree.details["days_written_by"] == "quarantine@2, quarantine@1"  # @0's slice was replaced by @2
    assert [c.label for c in tree.children] == ["landing A1", "landing I2", "users@0"]
    assert [c.details["ingested_by"] for c in tree.children[:2]] == ["quarantine@1", "quarantine@2"]
    assert [c.label for c in table_lineage(catalog, "quarantine", 1).children] == ["landing A1", "landing I1",
                                                                                    "users@0"]
    whole = table_lineage(catalog, "quarantine", 3)  # a write of the whole day replaced every slice
    assert "days_written_by" not in whole.details and [c.label for c in whole.children] == ["landing X"]

def _labels(node: Node) -> list[str]:
    return [node.label, *(label for child in node.children for label in _labels(child))]


@pytest.mark.spark
def test_lineage_of_the_demo_bundle_reaches_the_landing_partitions(tiny_world, capsys):
    from pinrec.jobs.orchestration.cli import main

    cfg, result = tiny_world
    version = result.bundle.version
    assert main(["lineage", f"{cfg.publish.name}/{version}", *_sets(cfg)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"bundle {cfg.publish.name}/{version}  [code_version=")
    assert "├── pin_embeddings@" in out and "model_version=pinsage-" in out
    # pin_embeddings <- graph_edges <- the raw tables <- their landing folders, one per landed day
    landed = [line for line in lines if "landing " in line]
    days = {d.isoformat() for d in result.landing.days}
    assert landed and {line.split("day=")[1].split(",")[0] for line in landed} == days
    tables = {line.split(f"landing {cfg.storage.landing}/")[1].split("/dt=")[0] for line in landed}
    # every raw table, also those ingest checked foreign keys of against other tables (their reads)
    assert tables == {t.name for t in RAW_TABLES}, tables
    assert "(above)" in out  # a table read by two steps is expanded once

    assert main(["lineage", "pin_embeddings@", *_sets(cfg)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("pin_embeddings@") and "graph_edges@" in table

    run = result.ranker.run_id
    assert main(["lineage", run, *_sets(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"run {run}  [experiment_id=")
    assert main(["lineage", "no_such_table@", *_sets(cfg)]) == 2
    assert "no table 'no_such_table'" in capsys.readouterr().err
    assert main(["lineage", "0" * 32, *_sets(cfg)]) == 2
    assert f"no MLflow run {'0' * 32} in {cfg.storage.mlflow_tracking_uri}" in capsys.readouterr().err


@pytest.mark.spark
def test_each_table_of_the_demo_lists_exactly_its_real_inputs(tiny_world, spark):
    """The demo ingests a foreign-key level's tables side by side on one catalog, writes the features' views
    side by side and the training set beside the graph and PinSage: each table's lineage names exactly the
    tables its own code read (not its neighbours'), read in the pristine copy (other tests write to the world)."""
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.lake import Location
    from pinrec.jobs.publish.lineage import table_lineage

    cfg, _ = tiny_world
    root = Location(cfg.storage.landing).path.rsplit("/", 1)[0]
    catalog = Catalog(spark, f"{root}-pristine/warehouse")
    features = {"impressions", "actions", "pins", "pin_board_edges"}
    graph = {"pins", "boards", "pin_board_edges", "features_pin"}
    expected = {
        "users": set(), "pins": set(), "boards": {"users"}, "pin_board_edges": {"pins", "boards"},
        "impressions": {"users", "pins"}, "actions": {"impressions", "users", "pins", "boards"},
        "features_user": features, "features_pin": features, "features_user_category": features,
        "training_set": {"impressions", "actions", "pins", "features_user", "features_pin", "features_user_category"},
        "graph_edges": graph, "graph_pin_nodes": graph, "graph_board_nodes": graph,
        "pin_embeddings": {"graph_edges", "graph_pin_nodes", "graph_board_nodes"},
    }
    got = {table: {child.label.split("@")[0] for child in table_lineage(catalog, table).children
                   if not child.label.startswith("landing ")} for table in expected}
    assert got == expected
    # the quarantine's day holds rows of several ingests (each replaced its own table's slice): all of them
    landed = {child.label.split(f"{cfg.storage.landing}/")[1].split("/dt=")[0]
              for child in table_lineage(catalog, "quarantine").children if child.label.startswith("landing ")}
    assert {"impressions", "actions"} <= landed, landed


def _sets(cfg) -> list[str]:
    return ["--set", f"storage.warehouse={cfg.storage.warehouse}", "--set", f"publish.store_uri={cfg.publish.store_uri}",
            "--set", f"storage.mlflow_tracking_uri={cfg.storage.mlflow_tracking_uri}",
            "--set", f"storage.landing={cfg.storage.landing}", "--set", "spark.master=local[1]"]
