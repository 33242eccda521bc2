"""The two-tower job on the tiny world (the demo's step) and the bundle's one-embedding-version rule."""
from __future__ import annotations

import json

import pytest

from pinrec.export.serving.two_tower import FILES, INDEX_FILE, PREFIX, SPEC_FILE
from pinrec.jobs.two_tower.two_tower import REPORT_FILE, bundle_files, locate


@pytest.mark.spark
def test_the_demo_trains_indexes_and_ships_the_two_tower(tiny_world):
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender

    cfg, result = tiny_world
    report = result.two_tower
    print(report.render())
    assert report.embedding_version == result.index.embedding_version  # one PinSage model for both
    assert report.pairs["train"] > 0 and report.pairs["validation"] > 0 and report.pairs["test"] > 0
    assert report.onnx_max_diff <= 1e-5
    # random retrieval finds a test engagement in the top k of the N embedded pins with probability k / N
    # (0.083 here); measured 0.25 on this world's data
    assert report.test_recall > 2 * report.k / result.index.pins
    assert set(report.validation_recall) == {"0.1", "0.2"}
    assert report.validation_recall[f"{report.temperature:g}"] == max(report.validation_recall.values())
    folder = locate(cfg.storage.location("artifacts"), report.embedding_version)
    spec = json.loads((folder / SPEC_FILE).read_text())
    index = json.loads((folder / INDEX_FILE).read_text())
    assert spec["embedding_version"] == index["embedding_version"] == report.embedding_version
    assert index["d"] == spec["dim"] == cfg.two_tower.out_channels
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel)
    shipped = {e.path.split("/")[-1] for e in bundle.manifest.of_role("extra")}
    assert set(FILES) | {PREFIX + s["file"] for s in index["shards"]} <= shipped
    rec = Recommender(bundle, cfg.recommend)
    assert rec.channels[:2] == ("ann", "two_tower")
    users = [int(u) for u in rec._users.view.keys[:20]]
    served = [c for u in users for c in rec.candidates(u, {"surface": "home_feed"}).channel_names()]
    assert served.count("two_tower") > 0


def _folder(tmp_path, version: str):
    for name in FILES:
        (tmp_path / name).write_text("{}")
    (tmp_path / SPEC_FILE).write_text(json.dumps({"embedding_version": version}))
    (tmp_path / INDEX_FILE).write_text(json.dumps({"shards": [{"file": "shard_0.faiss"}]}))
    (tmp_path / REPORT_FILE).write_text(json.dumps({"run_id": "r1"}))
    return tmp_path


def test_bundle_refuses_a_two_tower_of_another_embedding_version(tmp_path):
    folder = _folder(tmp_path, "pinsage-aaaa")
    files, report = bundle_files(folder, "pinsage-aaaa")
    assert [f.split("/")[-1] for f in files] == [*FILES, PREFIX + "shard_0.faiss"] and report["run_id"] == "r1"
    with pytest.raises(ValueError, match="trained on PinSage embeddings pinsage-aaaa, the bundle's are pinsage-bbbb"):
        bundle_files(folder, "pinsage-bbbb")


def test_locate_takes_a_complete_folder_only(tmp_path):
    assert locate(tmp_path, "pinsage-aaaa") is None  # none built: the bundle ships without it
    (tmp_path / "two_tower" / "pinsage-aaaa").mkdir(parents=True)
    _folder(tmp_path / "two_tower" / "pinsage-aaaa", "pinsage-aaaa")
    assert locate(tmp_path, "pinsage-aaaa").path == str(tmp_path / "two_tower" / "pinsage-aaaa")
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete two-tower model"):
        locate(tmp_path, "pinsage-aaaa", str(tmp_path / "half"))
