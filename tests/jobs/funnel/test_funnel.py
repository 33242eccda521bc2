"""The funnel replay on the tiny synthetic world: the candidate publish replayed, and ``eval_funnel``; which
pre-ranker keep the replay uses."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest


def _landed(cfg) -> list[dt.date]:
    from pinrec.jobs.ingest.ingest import landed_days

    return landed_days(cfg.storage.location("landing"), dt.date.min, dt.date.max)


@pytest.mark.spark
def test_publish_replays_the_candidate_into_its_manifest(tiny_world):
    from pinrec.export.serving.loader import load

    cfg, result = tiny_world
    report = result.bundle.funnel
    manifest = load(cfg.bundle_store_uri, cfg.publish.name, version=result.bundle.version).manifest
    f = manifest.metrics.funnel
    assert f == report.metrics and f["users"] == report.users >= 5
    day = _landed(cfg)[-1]  # the newest day: the training set's test day
    assert report.day == day.isoformat() and report.channels == ("ann", "two_tower", "cf", "category", "trending", "fresh")
    for scope in ("merged", *report.channels):
        recalls = [f[f"candidates.{scope}.recall@{n}.saves"] for n in (50, 500, 1000)]
        assert 0.0 <= recalls[0] <= recalls[1] <= recalls[2] <= 1.0, scope
        assert 0.0 <= f[f"candidates.{scope}.truth_recall@1000"] <= 1.0  # the synthetic world's truth
    # the merge (no quotas, shorter than 1000 pins) holds every channel's candidates: at least the best
    # channel's recall, at most their sum
    alone = [f[f"candidates.{c}.recall@1000.saves"] for c in report.channels]
    assert max(alone) <= f["candidates.merged.recall@1000.saves"] <= sum(alone)
    assert sum(f[f"served.share.{c}"] for c in report.channels) == pytest.approx(1.0)
    assert 0.0 <= f["served.ndcg@50"] <= f["served.hr@50"] <= 1.0
    assert -1.0 <= f["served.cosine"] <= 1.0 and f["served.category_entropy"] > 0.0
    assert any(f"(before {day})" in n for n in report.notes)
    assert f"features as of {day.isoformat()}T01:00:00" in " ".join(report.notes)  # publish_delay_s = 3600
    assert manifest.blessing.notes == ()  # the first version: nothing to compare with
    # the bundle carries the ranker job's pre-ranker, serving has it off: replayed at funnel.prerank_keep
    assert f["prerank.keep"] == 200.0 and "pre-ranker replayed on and off at funnel.prerank_keep = 200" in report.notes[-1]
    assert f["served.hr@50"] == f["prerank.off.hr@50"] and f["served.ndcg@50"] == f["prerank.off.ndcg@50"]
    assert f["prerank.on.to_ranker.size"] <= 200.0 < f["prerank.off.to_ranker.size"]  # it cuts
    # off, the ranker gets the whole merged list (< 1000 pins here); on, a subset of it
    assert f["prerank.off.to_ranker.recall.saves"] == pytest.approx(f["candidates.merged.recall@1000.saves"])
    assert f["prerank.on.to_ranker.recall.saves"] <= f["prerank.off.to_ranker.recall.saves"]
    assert f["prerank.change.hr@50"] == pytest.approx(f["prerank.on.hr@50"] - f["prerank.off.hr@50"])
    # 95 % intervals over users, in the manifest and the table
    assert 0.0 < f["ci95.served.hr@50"] < 1.0 and f["ci95.candidates.merged.recall@1000.saves"] > 0.0
    assert f["ci95.prerank.change.hr@50"] >= 0.0
    table = report.render()
    assert "pre-ranker, keep 200" in table and f"HR@50 {f['served.hr@50']:.4f}±{f['ci95.served.hr@50']:.4f}" in table


@pytest.mark.spark
def test_eval_funnel_replays_the_channels_bundle_and_refuses_a_day_the_models_saw(tiny_world, spark, tmp_path):
    from pinrec.jobs.funnel.funnel import eval_funnel

    cfg, result = tiny_world
    report, where = eval_funnel(spark, cfg, out=str(tmp_path / "funnel"))
    written = json.loads(where.read_text())
    assert written["bundle"] == f"{cfg.publish.name}/{result.bundle.version}"
    # the same files, day and as-of features as publish's replay of the candidate: the same numbers
    assert written["metrics"] == report.metrics == result.bundle.funnel.metrics
    with pytest.raises(ValueError, match=r"graph_edges holds training edges saved at .* PinSage and the index "
                                         r"were trained on the replayed day"):
        eval_funnel(spark, cfg, day=_landed(cfg)[0], out=str(tmp_path / "early"))


@pytest.mark.spark
def test_a_replayed_day_without_saves_publishes_without_funnel_metrics_and_the_gate_says_so(tiny_world, spark,
                                                                                          tmp_path):
    """A sparse log's newest day may hold no save: publishing goes on and measures no funnel (the gate notes
    that when it has a champion to compare with); the DAG's champion replay of such a day is skipped with the
    reason; ``eval-funnel``, asked for that day, raises."""
    import dataclasses

    from pinrec.export.serving.loader import load
    from pinrec.jobs.funnel.funnel import eval_funnel
    from pinrec.jobs.funnel.replay import NothingToReplay
    from pinrec.jobs.orchestration.tasks import funnel_day
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg, _result = tiny_world
    empty = _landed(cfg)[-1] + dt.timedelta(days=2)  # after every landed day: nobody saved anything on it
    cutoff = dt.datetime.combine(empty + dt.timedelta(days=1), dt.time()) + dt.timedelta(
        seconds=cfg.features.publish_delay_s)
    own = dataclasses.replace(cfg, publish=dataclasses.replace(cfg.publish, store_uri=str(tmp_path / "serving")))
    report = publish_serving_bundle(spark, own, cutoff=cutoff, register=False)
    assert report.funnel is None and report.blessed and report.promoted
    manifest = load(own.bundle_store_uri, own.publish.name, version=report.version).manifest
    assert manifest.metrics.funnel == {}
    with pytest.raises(NothingToReplay, match=f"no user saved a pin on {empty}"):
        eval_funnel(spark, own, day=empty, out=str(tmp_path / "funnel"))
    assert funnel_day(own, empty) == {"day": empty.isoformat(),
                                      "skipped": f"funnel: no user saved a pin on {empty}: nothing to replay"}


@pytest.mark.spark
def test_the_champions_replay_is_reused_while_bundle_day_config_and_tables_are_unchanged(tiny_world, spark, tmp_path):
    """The DAG's funnel task and publish's gate replay the champion through the step cache: a rerun of the day
    reuses the stored replay; another config replays again; publish's gate gets the replay from the cache."""
    import dataclasses
    import shutil

    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.funnel.funnel import READS
    from pinrec.jobs.orchestration.cached_steps import READS as STEP_READS
    from pinrec.jobs.orchestration.cached_training import PipelineSteps
    from pinrec.jobs.orchestration.step_cache import StepCache
    from pinrec.jobs.orchestration.tasks import funnel_day
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    assert STEP_READS["funnel"] == READS
    cfg, _result = tiny_world
    # publishing below moves the channel, and the replays write under the artifacts: copies of both
    shutil.copytree(cfg.bundle_store_uri, tmp_path / "serving")
    shutil.copytree(cfg.storage.artifacts, tmp_path / "artifacts", ignore=shutil.ignore_patterns("funnel"))
    own = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, artifacts=str(tmp_path / "artifacts")),
                              publish=dataclasses.replace(cfg.publish, store_uri=str(tmp_path / "serving")))
    champion = read_channel(Store(own.bundle_store_uri), own.publish.name, own.publish.channel).version
    day = _landed(cfg)[-1]
    first = funnel_day(own, day)
    where = str(tmp_path / "artifacts" / "funnel" / champion / "funnel.json")
    assert first["version"] == champion and first["cache"]["cached"] is False and first["wrote"] == {"funnel": where}
    assert json.loads(Path(where).read_text())["metrics"] == first["metrics"] and first["users"] >= 5
    again = funnel_day(own, day)
    assert again["cache"] == {**first["cache"], "cached": True} and again["wrote"] == {}
    assert again["reused"] == first["wrote"] and again["metrics"] == first["metrics"]
    assert again["channels"] == first["channels"] and again["notes"] == first["notes"]
    shorter = dataclasses.replace(own, funnel=dataclasses.replace(own.funnel, k=20))
    changed = funnel_day(shorter, day)
    assert changed["cache"]["cached"] is False and "served.hr@20" in changed["metrics"]
    assert "served.hr@50" not in changed["metrics"]

    # publish's gate: the champion's replay comes from the same cache (here the k=20 one just stored)
    steps = PipelineSteps(shorter, spark, StepCache(shorter.cache), echo=lambda line: None)
    cutoff = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) + dt.timedelta(
        seconds=cfg.features.publish_delay_s)
    asked = []

    def replay_champion(_spark, _cfg, at):
        asked.append(at)
        return steps.champion(at)

    report = publish_serving_bundle(spark, shorter, cutoff=cutoff, register=False, replay_champion=replay_champion)
    assert asked == [cutoff] and steps.cache.skipped == ["funnel"] and steps.cache.ran == []
    assert report.funnel is not None and report.version != champion


def test_the_pre_ranker_arm_keeps_what_serving_keeps_else_the_funnels_keep_and_needs_the_file():
    from types import SimpleNamespace

    from pinrec.jobs.funnel.funnel import prerank_keep

    def bundle(*extras):
        entries = [SimpleNamespace(path=f"extra/{name}") for name in extras]
        return SimpleNamespace(name="homefeed", version="v1", manifest=SimpleNamespace(
            of_role=lambda role: entries if role == "extra" else []))

    with_it = bundle("pin_embeddings.npy", "prerank.onnx")
    assert prerank_keep(with_it, 150, 200) == (150, "pre-ranker replayed on and off at recommend.prerank_keep = 150")
    keep, note = prerank_keep(with_it, 0, 200)
    assert keep == 200 and "funnel.prerank_keep = 200 (serving has it off" in note
    assert prerank_keep(with_it, 0, 0)[0] == 0
    keep, note = prerank_keep(bundle("pin_embeddings.npy"), 0, 200)
    assert keep == 0 and note == "pre-ranker: bundle homefeed/v1 carries none (no extra/prerank.onnx)"
