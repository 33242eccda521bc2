"""End to end on a tiny synthetic world: every injected fault is quarantined, nothing else is."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# The reason each synthetic fault must be quarantined with.
FAULT_REASONS = {
    "null_user_id": "null:user_id",
    "position_out_of_range": "out_of_range:position",
    "unknown_surface": "not_allowed:surface",
    "future_ts": "future:ts;outside_partition:ts",
    "save_without_board": "row:save_has_board",
    "unknown_impression": "unknown_ref:impression_id->impressions.event_id",
    "unknown_action_type": "not_allowed:type",
}


def test_demo_ingests_the_world_and_quarantines_exactly_the_faults(tiny_world):
    _, result = tiny_world
    landing = result.landing
    reports = {r.table: r for r in result.reports}
    for table in ("impressions", "actions"):
        report = reports[table]
        faults = landing.faults[table]
        assert sum(faults.values()) > 0
        assert report.rows_in == landing.total(table)
        assert report.duplicates_dropped == landing.duplicates[table]
        expected = {FAULT_REASONS[k]: n for k, n in faults.items() if n}
        assert report.quarantined_by_reason == expected
        assert report.rows_valid == landing.total(table) - sum(faults.values()) - landing.duplicates[table]
    for table in ("users", "pins", "boards", "pin_board_edges"):
        assert reports[table].rows_quarantined == 0
        assert reports[table].rows_valid == landing.total(table)
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert rows["impressions"] == reports["impressions"].rows_valid
    assert sum(n for (source, _), n in result.warehouse.quarantine.items() if source == "actions") >= 1
    assert "impressions" in result.warehouse.render()


def test_demo_builds_the_graph_over_every_pin(tiny_world):
    _, result = tiny_world
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert rows["graph_pin_nodes"] == rows["pins"]  # every pin, cold ones included
    assert 0 < rows["graph_edges"] <= rows["pin_board_edges"]
    assert rows["graph_board_nodes"] <= rows["boards"]


def test_demo_says_where_the_time_went(tiny_world):
    _, result = tiny_world
    assert list(result.steps) == ["spark start", "landing", "ingest", "features", "training set", "graph", "pinsage",
                                  "snapshots ahead", "two-tower", "cf", "ranker", "index", "summary",
                                  "publish (+ funnel replay)", "serve examples", "report"]
    # the training set ran beside the graph and PinSage, the snapshots beside the torch steps, the summary
    # beside publishing: their seconds overlap
    beside = result.steps["training set"] + result.steps["snapshots ahead"] + result.steps["summary"]
    assert all(s >= 0 for s in result.steps.values()) and 0 < sum(result.steps.values()) - beside <= result.seconds


def test_demo_embeds_every_pin_with_pinsage(spark, tiny_world):
    cfg, result = tiny_world
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert rows["pin_embeddings"] == rows["graph_pin_nodes"]
    emb = spark.read.format("delta").load(f"{cfg.storage.warehouse}/pin_embeddings")
    first = emb.select("embedding", "model_version").first()
    assert len(first["embedding"]) == cfg.pinsage.out_channels
    assert abs(sum(x * x for x in first["embedding"]) - 1.0) < 1e-4  # L2-normalised output head
    assert first["model_version"].startswith("pinsage-")


def test_demo_trains_the_ranker_indexes_the_pins_and_publishes_a_loadable_bundle(tiny_world):
    from pinrec.export.serving.loader import load

    cfg, result = tiny_world
    assert result.ranker.model_version.startswith("ranker-") and result.ranker.artifacts
    assert result.ranker.onnx_max_abs_diff <= 1e-5
    # the ranker used the PinSage embeddings the index holds as features (pin, user, dot)
    assert result.ranker.embedding_version == result.index.embedding_version != ""
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert result.index.pins == rows["pin_embeddings"] and result.index.recall_at_k >= 0.95  # exact at this size
    assert result.bundle.promoted and result.bundle.blessed
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    assert bundle.version == result.bundle.version
    assert bundle.ntotal == rows["pin_embeddings"] and bundle.pins.num_rows == rows["pins"]
    assert len(bundle.shards) == cfg.index.shards == 2 and min(s.ntotal for s in bundle.shards) > 0
    assert bundle.manifest.lineage.delta_versions["pin_embeddings"] >= 0
    assert set(bundle.manifest.metrics.auc) == {"save", "closeup"}
    # ranker_job.user_embeddings defaults to [closeups]: the user embedding averages recent closeups
    names = set(_dense_names(bundle.encoder))
    assert {"pin_embedding[0]", "user_closeup_embedding[0]", "dot(pin_embedding,user_closeup_embedding)"} <= names
    assert "user_embedding[0]" not in names
    extras = {e.path for e in bundle.manifest.of_role("extra")}
    assert {"extra/pin_embeddings.npy", "extra/features_user.parquet", "extra/features_pin.parquet",
            "extra/features_user_category.parquet"} <= extras


def test_drift_goes_into_the_manifest_and_gates_publishing(spark, tiny_world, tmp_path):
    """On the 3-day tiny world the one training day is the first day of history, before any feature
    has a value: every feature of the views is in warm-up, and the manifest carries the drift of the
    raw tables' categorical columns alone (the impression's surface, device and country, the pin's
    category: known from the first day). Against the validation day (``monitoring.reference_split``)
    the non-windowed pin features (the pin's age, its category) and the 1-day counts are compared,
    into the manifest and MLflow; with limits of 0 the same candidate is stored but not blessed,
    with every reason."""
    import dataclasses

    import mlflow

    from pinrec.export.serving.loader import load
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg, _result = tiny_world
    client = mlflow.MlflowClient(cfg.storage.mlflow_tracking_uri)
    manifest = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel).manifest
    raw = ("country", "category", "surface", "device")
    assert set(manifest.metrics.drift) == {f"{kind}.{c}" for kind in ("category_psi", "category_psi_noise",
                                                                       "unseen_category_share") for c in raw}
    young = client.get_run(manifest.lineage.mlflow_run_ids["monitoring"]).data.metrics
    assert not any(k.startswith(("feature_drift.", "null_rate_shift.", "score_psi.")) for k in young)
    assert not any(k.endswith(("pin__category", "user__top_category")) for k in young)  # views: warm-up

    strict = dataclasses.replace(cfg, publish=dataclasses.replace(cfg.publish, store_uri=str(tmp_path / "serving")),
                                 monitoring=dataclasses.replace(cfg.monitoring, reference_split="validation"),
                                 blessing=dataclasses.replace(cfg.blessing, max_feature_drift=0.0,
                                                              max_null_rate_shift=0.0, max_category_psi=0.0,
                                                              category_psi_noise_factor=None))
    report = publish_serving_bundle(spark, strict, register=False)
    assert not report.blessed and not report.promoted
    stored = load(strict.publish.store_uri, strict.publish.name, version=report.version).manifest
    drift = stored.metrics.drift
    assert {"feature_drift.user__impressions_1d", "null_rate_shift.user__impressions_1d",
            "feature_drift.user__saves_1d"} <= set(drift)
    assert not any(k.startswith(("score_psi.", "feature_drift.user__saves_30d")) for k in drift)  # warm-up
    assert not {"feature_drift.pin__board_count", "feature_drift.pin__age_days"} & set(drift)  # grow by construction
    assert {"category_psi.pin__category", "category_psi.surface"} <= set(drift)
    assert "category_psi.user__top_category" not in drift  # a 30-day window: warm-up
    run = client.get_run(stored.lineage.mlflow_run_ids["monitoring"])
    assert run.data.metrics["feature_drift.user__impressions_1d"] == pytest.approx(
        drift["feature_drift.user__impressions_1d"])
    titles = {"feature_drift": "feature drift", "null_rate_shift": "null-rate shift", "category_psi": "category PSI"}
    expected = {f"{titles[k.split('.')[0]]}[{k.split('.', 1)[1]}] {v:.4f} > maximum 0.0000" for k, v in drift.items()
                if k.split(".")[0] in titles and v > 0}
    assert any(r.startswith("null-rate shift[") for r in expected)
    assert any(r.startswith("category PSI[") for r in expected)
    assert expected == {r for r in report.reasons if r.startswith(("feature drift[", "null-rate shift[", "category PSI["))}


def _dense_names(encoder: dict) -> list[str]:
    from pinrec.export.encoding import FeatureEncoder

    return FeatureEncoder.from_dict(encoder).dense_names


def test_demo_ends_by_serving_recommendations_from_the_loader(tiny_world):
    import pyarrow.compute as pc

    from pinrec.export.serving.loader import load

    cfg, result = tiny_world
    assert len(result.recommendations) == 4 and -1 in result.recommendations
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    flagged = set(pc.filter(bundle.pins.column("pin_id"), pc.or_(bundle.pins.column("nsfw"),
                                                                  bundle.pins.column("blocked"))).to_pylist())
    for user, items in result.recommendations.items():
        assert 0 < len(items) <= 10
        ids = [r.pin_id for r in items]
        assert len(set(ids)) == len(ids) and not set(ids) & flagged
        scores = [r.score for r in items]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1.3 for s in scores)
        if user < 0:  # unknown user: cold-start channels only
            assert {r.channel for r in items} <= {"trending", "fresh"}
    active = [items for user, items in result.recommendations.items() if user >= 0]
    assert any(r.channel == "ann" for items in active for r in items)  # the ANN channel serves known users


def test_preloading_imports_modules_in_the_background_and_leaves_failures_to_the_step(tmp_path, monkeypatch):
    import sys

    from pinrec.jobs.orchestration.demo import preload_imports

    (tmp_path / "pinrec_preload_ok.py").write_text("import time\ntime.sleep(0.2)\nVALUE = 41 + 1\n")
    (tmp_path / "pinrec_preload_bad.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("pinrec_preload_ok", "pinrec_preload_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    thread = preload_imports(("pinrec_preload_bad", "pinrec_preload_ok"))
    assert thread.daemon
    import pinrec_preload_ok  # waits on the module's import lock if the thread is importing it

    assert pinrec_preload_ok.VALUE == 42
    thread.join(10)
    assert not thread.is_alive() and "pinrec_preload_ok" in sys.modules and "pinrec_preload_bad" not in sys.modules
