"""The step cache: fingerprints recorded with the outputs, reruns that skip what did not change."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil

import pytest

from pinrec.jobs.config import StepCacheConfig
from pinrec.jobs.io.lake import Location
from pinrec.jobs.orchestration.step_cache import (
    FINGERPRINT_FILE,
    Cached,
    StepCache,
    day_fingerprints,
    folder_fingerprint,
    folder_record,
    mark_folder,
    table_fingerprint,
)

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)


def test_a_step_is_reused_only_when_caching_is_on_it_is_not_forced_and_the_fingerprints_match():
    cache = StepCache(StepCacheConfig(force=("ranker",)))
    assert cache.hit("index", "f1", "f1") and not cache.hit("index", "f1", "f2") and not cache.hit("index", "f1", None)
    assert not cache.hit("ranker", "f1", "f1")  # forced
    assert cache.skipped == ["index"] and cache.ran == ["index", "index", "ranker"]
    off = StepCache(StepCacheConfig(enabled=False))
    assert not off.hit("index", "f1", "f1")
    assert Cached("index", "0123456789abcdef", "v1").render() == "cached (fingerprint 0123456789ab; v1)"


def test_a_folder_records_its_steps_fingerprint(tmp_path):
    folder = Location(str(tmp_path / "index" / "v1"))
    assert folder_fingerprint(folder, "index") is None
    mark_folder(folder, "index", "abc", note=1)
    assert folder_fingerprint(folder, "index") == "abc"
    assert folder_fingerprint(folder, "ranker") is None  # another step's record is no record
    assert json.loads((tmp_path / "index" / "v1" / FINGERPRINT_FILE).read_text())["note"] == 1
    first = folder_record(folder, "index")["run"]
    mark_folder(folder, "index", "abc")  # the step forced to run again on the same inputs: another run
    assert folder_fingerprint(folder, "index") == "abc" and folder_record(folder, "index")["run"] != first
    (tmp_path / "index" / "v1" / FINGERPRINT_FILE).write_text("{broken")
    assert folder_fingerprint(folder, "index") is None


@pytest.mark.spark
def test_table_and_day_fingerprints_come_from_the_newest_commit_that_wrote_them(spark, tmp_path):
    from pinrec.jobs.io.catalog import Catalog

    def frame(rows):
        return spark.createDataFrame(rows, "id long, dt date")

    Catalog(spark, str(tmp_path), stamp={"step": "features", "days": {D1.isoformat(): "a1", D2.isoformat(): "a2"}}) \
        .write("features_user", frame([(1, D1), (2, D2)]), days=[D1, D2])
    Catalog(spark, str(tmp_path), stamp={"step": "features", "days": {D2.isoformat(): "b2"}}) \
        .write("features_user", frame([(3, D2)]), days=[D2])
    look = Catalog(spark, str(tmp_path))
    assert day_fingerprints(look, "features_user", "features") == {D1: "a1", D2: "b2"}
    assert day_fingerprints(look, "features_user", "ingest") == {D1: None, D2: None}
    Catalog(spark, str(tmp_path)).write("features_user", frame([(4, D3)]), days=[D3])  # no stamp: unknown
    assert day_fingerprints(look, "features_user", "features") == {D1: "a1", D2: "b2", D3: None}
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, look.path("features_user")).delete("id = 1")  # rows changed, days not said
    assert day_fingerprints(look, "features_user", "features") == {}

    assert table_fingerprint(look, "graph_edges", "graph") is None  # absent
    Catalog(spark, str(tmp_path), stamp={"step": "graph", "fingerprint": "g1"}) \
        .write("graph_edges", spark.createDataFrame([(1,)], "id long"))
    assert table_fingerprint(look, "graph_edges", "graph") == "g1"
    assert table_fingerprint(look, "graph_edges", "pinsage") is None
    Catalog(spark, str(tmp_path)).write("graph_edges", spark.createDataFrame([(2,)], "id long"))
    assert table_fingerprint(look, "graph_edges", "graph") is None  # written since by another


@pytest.mark.spark
def test_a_read_in_a_writers_scope_on_another_thread_still_counts_against_the_steps_fingerprint(spark, tmp_path):
    """Reads attributed to one writer (a read scope, another thread) stay in the catalog's reads, which a
    step's fingerprint must cover: one it does not cover fails the step instead of a stale cache hit later."""
    import threading

    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.orchestration.cached_steps import Steps

    setup = Catalog(spark, str(tmp_path))
    for name in ("actions", "pins"):
        setup.write(name, spark.createDataFrame([(1, D1)], "id long, dt date"), days=[D1])
    job = Catalog(spark, str(tmp_path))

    def writer() -> None:
        with job.scope():
            job.read("pins")

    job.read("actions")
    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(120)
    assert job.lineage == {"actions": 0, "pins": 0}
    with pytest.raises(RuntimeError, match=r"step cf read \['pins'\], which its fingerprint does not cover"):
        Steps._check_reads("cf", job)
    Steps._check_reads("publish", job)  # publish's fingerprint covers both


@pytest.fixture
def world_copy(tiny_world, tmp_path):
    """The tiny world's lake, artifacts and bundle store as the demo left them (other tests write to the
    shared world: conftest keeps a pristine copy) copied again, and its config pointed at the copy."""
    cfg, result = tiny_world
    root = Location(cfg.storage.landing).path.rsplit("/", 1)[0]
    shutil.copytree(f"{root}-pristine", tmp_path / "world")
    new = str(tmp_path / "world")
    storage = dataclasses.replace(
        cfg.storage, landing=cfg.storage.landing.replace(root, new), warehouse=cfg.storage.warehouse.replace(root, new),
        artifacts=cfg.storage.artifacts.replace(root, new),
        mlflow_tracking_uri=cfg.storage.mlflow_tracking_uri.replace(root, new))
    return dataclasses.replace(cfg, storage=storage, publish=dataclasses.replace(
        cfg.publish, store_uri=cfg.publish.store_uri.replace(root, new))), result


@pytest.mark.spark
def test_an_unchanged_rerun_skips_every_step_and_a_ranker_change_or_index_edit_reruns_only_what_depends(
        world_copy, monkeypatch):
    from pinrec.jobs.orchestration import cached_steps, steps_base
    from pinrec.jobs.orchestration.demo import run_demo
    from pinrec.jobs.orchestration.step_cache import Cached

    cfg, first = world_copy
    lines: list[str] = []
    again = run_demo(cfg, echo=lines.append)
    assert again.cache.ran == []
    assert set(again.cache.skipped) == {"landing", "ingest", "features", "training_set", "graph", "pinsage",
                                        "two_tower", "cf", "ranker", "index", "publish"}
    assert isinstance(again.bundle, Cached) and again.bundle.output == first.bundle.version
    assert any(line.startswith("[ranker] cached (fingerprint ") for line in lines)
    assert again.recommendations.keys() == first.recommendations.keys()
    assert again.warehouse == first.warehouse  # the summary reused: no table has a new version
    assert "snapshots ahead" in first.steps and "snapshots ahead" not in again.steps  # no new features: no work ahead

    # the first publish died before it moved the channel: the rerun finishes it, it does not call it cached
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.schemas.manifest import channel_key

    store = Store(cfg.bundle_store_uri)
    store.delete(channel_key(cfg.publish.name, cfg.publish.channel))
    finished = run_demo(cfg, echo=lambda line: None)
    assert finished.cache.ran == ["publish"] and finished.bundle.promoted
    assert finished.bundle.version == first.bundle.version
    assert read_channel(store, cfg.publish.name, cfg.publish.channel).version == first.bundle.version

    # the ranker's config changes and the index's code is edited: those two and publish run, nothing else
    # (patched where the steps' code looks it up: steps_base, not the cached_steps facade)
    real = steps_base.code_hash
    monkeypatch.setattr(steps_base, "code_hash",
                        lambda *m, **kw: real(*m, **kw) + ("-edited" if m == (cached_steps.MODULES["index"],) else ""))
    changed = dataclasses.replace(cfg, ranker_job=dataclasses.replace(cfg.ranker_job, evaluation="fast"))
    third = run_demo(changed, echo=lambda line: None)
    # publish's gate replays the champion (the first run's bundle) on the same day: through the step
    # cache, the first time it is asked for
    assert sorted(set(third.cache.ran)) == ["funnel", "index", "publish", "ranker"]
    assert third.bundle.funnel is not None
    assert not isinstance(third.ranker, Cached) and not isinstance(third.index, Cached)
    assert third.bundle.version != first.bundle.version
    assert isinstance(third.two_tower, Cached) and isinstance(third.cf, Cached)


@pytest.mark.spark
def test_the_ranker_and_publish_read_through_the_steps_catalog_so_a_read_their_fingerprint_misses_fails_them(
        spark, world_copy, monkeypatch):
    """run_ranker and publish_serving_bundle read every table through the step's catalog (publish's candidate
    drift and funnel replay too): on the tiny world exactly the tables of READS; a table dropped from READS
    fails the step, naming it, where it used to pass unseen (and a later rerun could reuse a stale output)."""
    from pinrec.jobs.orchestration import cached_steps
    from pinrec.jobs.orchestration.cached_training import PipelineSteps

    cfg, _first = world_copy
    cfg = dataclasses.replace(  # forced (the copy holds both outputs); a short ranker: its reads are the point
        cfg, cache=dataclasses.replace(cfg.cache, force=("ranker", "publish")),
        ranker_train=dataclasses.replace(cfg.ranker_train, epochs=1),
        ranker_job=dataclasses.replace(cfg.ranker_job, evaluation="fast"))

    def steps():
        return PipelineSteps(cfg, spark, StepCache(cfg.cache), echo=lambda line: None)

    run = steps()
    assert not isinstance(run.ranker(), Cached)
    assert sorted(run.last_catalog.reads) == ["pin_embeddings", "training_set"] == sorted(cached_steps.READS["ranker"])
    assert not isinstance(run.publish(), Cached)
    assert sorted(run.last_catalog.reads) == sorted(cached_steps.READS["publish"]) == [
        "actions", "features_pin", "features_user", "features_user_category", "graph_edges", "impressions",
        "pin_embeddings", "pins", "training_set"]  # graph_edges: the funnel's check of the replayed day

    monkeypatch.setitem(cached_steps.READS, "ranker", ("training_set",))
    monkeypatch.setitem(cached_steps.READS, "publish",
                        tuple(t for t in cached_steps.READS["publish"] if t != "graph_edges"))
    with pytest.raises(RuntimeError, match=r"step ranker read \['pin_embeddings'\], which its fingerprint does not "
                                           r"cover: add them to .*READS\['ranker'\]"):
        steps().ranker()
    with pytest.raises(RuntimeError, match=r"step publish read \['graph_edges'\], which its fingerprint does not "
                                           r"cover: add them to .*READS\['publish'\]"):
        steps().publish()


@pytest.mark.spark
def test_a_rejected_publish_is_reused_only_while_the_channel_serves_the_champion_it_was_judged_against(
        world_copy):
    """A rejected candidate's verdict names the champion it lost to: while the channel serves that version a
    rerun is "cached", once the channel serves another (here: none) the rerun judges the same inputs anew."""
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.store import Store
    from pinrec.jobs.orchestration.demo import run_demo
    from pinrec.schemas.manifest import channel_key

    cfg, first = world_copy
    # no ranker reaches an AUC of 1: every candidate is rejected, whatever the champion
    cfg = dataclasses.replace(cfg, blessing=dataclasses.replace(cfg.blessing, min_auc=1.0))

    def publish():  # the whole demo: publish is the only step the blessing config reaches
        result = run_demo(cfg, echo=lambda line: None)
        assert set(result.cache.ran) <= {"publish", "funnel"}
        return result.bundle

    rejected = publish()
    assert not isinstance(rejected, Cached) and not rejected.blessed and not rejected.promoted
    stored = load(cfg.publish.store_uri, cfg.publish.name, version=rejected.version).manifest
    assert stored.blessing.baseline_version == first.bundle.version
    again = publish()
    assert isinstance(again, Cached) and again.output == rejected.version  # the same champion: the same verdict

    Store(cfg.bundle_store_uri).delete(channel_key(cfg.publish.name, cfg.publish.channel))  # the channel moved
    judged = publish()
    assert not isinstance(judged, Cached) and judged.version != rejected.version and not judged.blessed
    assert load(cfg.publish.store_uri, cfg.publish.name, version=judged.version).manifest.blessing \
        .baseline_version is None

@pytest.mark.spark
@pytest.mark.full
def test_landing_a_new_day_ingests_and_featurises_only_that_day_and_rebuilds_the_training_set(spark, tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.ingest import landed_days
    from pinrec.jobs.orchestration.cached_training import PipelineSteps

    root = tmp_path / "w"
    cfg = load_config(overrides={
        "storage": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse"),
                    "artifacts": str(root / "artifacts"), "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db"},
        "synthetic": {"users": 40, "pins": 200, "days": 4, "impressions_per_day": 1000}})

    def steps():
        return PipelineSteps(cfg, spark, StepCache(cfg.cache), echo=lambda line: None)

    first = steps()
    first.landing()
    days = landed_days(cfg.storage.landing, dt.date.min, dt.date.max)
    held = tmp_path / "held"
    held.mkdir()
    for table in (root / "landing").iterdir():  # the last day has not landed yet
        if (table / f"dt={days[-1]}").is_dir():
            shutil.move(str(table / f"dt={days[-1]}"), str(held / table.name))
    reports, reused = first.ingest(days[:-1])  # (three days: the split needs train, validation and test)
    assert reused == [] and {r.days for r in reports} == {tuple(days[:-1])}
    first.features(days[:-1])
    assert not isinstance(first.training_set(days[:-1]), Cached)

    for table in held.iterdir():  # it lands
        shutil.move(str(table), str(root / "landing" / table.name / f"dt={days[-1]}"))
    second = steps()
    assert isinstance(second.landing(), Cached)  # what the source wrote is intact; a new day is no change
    reports, reused = second.ingest(days)
    assert reused == days[:-1] and {r.days for r in reports} == {(days[-1],)}
    rows, reused = second.features(days)
    assert reused == days[:-1] and rows
    assert not isinstance(second.training_set(days), Cached)

    third = steps()
    third.landing()
    assert third.ingest(days) == ([], days) and third.features(days) == ({}, days)
    assert isinstance(third.training_set(days), Cached)
    assert third.fingerprints["features"] == second.fingerprints["features"]

    # a smaller world replaces the landing zone; the warehouse still holds the old world's last day
    cfg = dataclasses.replace(cfg, synthetic=dataclasses.replace(cfg.synthetic, days=3))
    fourth = steps()
    assert not isinstance(fourth.landing(), Cached)
    assert landed_days(cfg.storage.landing, dt.date.min, dt.date.max) == days[:-1]
    with pytest.raises(ValueError, match=rf"warehouse .*w/warehouse holds impressions of 1 day\(s\) the landing zone "
                                         rf".* does not \({days[-1]}\.\.{days[-1]}\): it was built from another "
                                         r"dataset or world"):
        fourth.ingest(days[:-1])


@pytest.mark.spark
def test_a_table_written_again_from_scratch_is_a_new_input_at_the_same_version(spark, tmp_path, monkeypatch):
    """A warehouse rebuilt from scratch (or a new storage.warehouse beside the same artifacts) restarts
    Delta versions at 0: the cf factors trained on the first one's actions must not be reused."""
    import types

    from pinrec.jobs.cf import cf as cf_job
    from pinrec.jobs.config import load_config
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.orchestration.cached_training import PipelineSteps

    trained = []

    def fake_train_cf(spark, warehouse, cfg, tracking_uri, *, cutoff, artifacts, artifact_root=None, **kw):
        folder = Location(str(tmp_path / "artifacts" / "cf" / f"cf-{len(trained)}"))
        (folder / cf_job.META_FILE).write_text("{}")  # what newest_cf looks for
        trained.append(folder)
        return types.SimpleNamespace(folder=str(folder))

    monkeypatch.setattr(cf_job, "train_cf", fake_train_cf)
    cutoff = dt.datetime(2026, 1, 3)
    ids = []
    for warehouse, pin in (("w1", 1), ("w2", 2), ("w2", 2)):  # the third: nothing changed, reused
        cfg = load_config(overrides={"storage": {
            "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / warehouse),
            "artifacts": str(tmp_path / "artifacts"), "mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}})
        catalog = Catalog(spark, cfg.storage.warehouse)
        if len(ids) < 2:  # w1, then w2 (both at version 0); the third run writes nothing
            catalog.write("actions", spark.createDataFrame(
                [(1, pin, "save", dt.datetime(2026, 1, 1, 12), D1)],
                "user_id long, pin_id long, type string, ts timestamp, dt date"), days=[D1])
        ids.append(catalog.commit_id("actions"))
        steps = PipelineSteps(cfg, spark, StepCache(cfg.cache), echo=lambda line: None)
        result = steps.cf(cutoff)
        assert isinstance(result, Cached) == (len(ids) == 3), (warehouse, ids)
    assert len(trained) == 2 and ids[0].split(":")[0] == ids[1].split(":")[0] == "0" and ids[0] != ids[1]
