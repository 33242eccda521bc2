"""The publish job with ``storage.artifacts`` on S3 (SeaweedFS): the newest ranker found there, and
a bundle assembled from the index and ranker on S3, published into an S3 store, loaded by the
serving loader and answering ``recommend``."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest

from pinrec.jobs.io.fingerprint import module_closure
from pinrec.jobs.io.folders import put_file, upload_folder
from pinrec.jobs.io.lake import Location
from pinrec.jobs.publish import (
    bundle,
    bundle_cutoffs,
    bundle_drift,
    bundle_funnel,
    bundle_sources,
    publish_finish,
    serving_bundle,
)
from pinrec.jobs.publish.bundle import newest_ranker
from pinrec.jobs.ranking.ranker import RankerReport
from pinrec.jobs.ranking.ranker_artifacts import publish_artifacts
from tests.support.s3 import BUCKET


@pytest.fixture()
def artifacts(any_location) -> Location:
    return any_location / "artifacts"


def test_newest_ranker_is_the_last_complete_export(artifacts, tmp_path):
    (tmp_path / "ranker.onnx").write_bytes(b"x")
    files = {"ranker.onnx": str(tmp_path / "ranker.onnx")}
    report = RankerReport("ranker-x", ("save",), {}, 0.1, 1, 1, "cpu", ())
    with pytest.raises(FileNotFoundError, match=r"no exported ranker under .*/artifacts/ranker: run `pinrec ranker`"):
        newest_ranker(artifacts)
    publish_artifacts(files, artifacts / "ranker" / "ranker-bbbb", report)
    put_file(tmp_path / "ranker.onnx", artifacts / "ranker" / "ranker-half" / "ranker.onnx")  # no metrics.json yet
    assert newest_ranker(artifacts) == artifacts / "ranker" / "ranker-bbbb"
    time.sleep(1.1)  # S3 keeps modification times in whole seconds
    publish_artifacts(files, artifacts / "ranker" / "ranker-aaaa", report)
    assert newest_ranker(artifacts) == artifacts / "ranker" / "ranker-aaaa"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_embedding_stability_comes_from_the_pin_embeddings_commit():
    from pinrec.jobs.publish.bundle import embedding_stability

    class Commit:  # what the catalog answers for the pin_embeddings version the job read
        def __init__(self, meta):
            self.meta = meta

        def user_metadata(self, name):
            assert name == "pin_embeddings"
            return self.meta

    moved = {"overlap_at_10": 0.4, "procrustes_cosine": 0.8, "heldout_recall_at_10": float("nan"), "common_pins": 12}
    assert embedding_stability(Commit({"stability": moved})) == {"overlap_at_10": 0.4, "procrustes_cosine": 0.8,
                                                                 "common_pins": 12.0}
    assert embedding_stability(Commit({"model_version": "pinsage-1"})) == {}  # a first version


@pytest.mark.spark
def test_the_demo_bundle_ships_the_prerank_exported_beside_its_ranker(tiny_world):
    """ranker_job.prerank defaults to logistic: the ranker folder holds prerank.onnx (its test AUC in
    metrics.json as the model 'pre-ranker') and the published bundle carries the same file as an extra."""
    import onnx

    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import RecommendConfig, Recommender

    cfg, result = tiny_world
    folder = Path(cfg.storage.artifacts) / "ranker" / result.ranker.model_version
    assert result.ranker.prerank["onnx_max_abs_diff"] <= 1e-5
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {r["task"] for r in metrics["metrics"] if r["model"] == "pre-ranker"} == {"save", "closeup"}
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    entry = next(e for e in bundle.manifest.of_role("extra") if e.path == "extra/prerank.onnx")
    assert entry.sha256 == _sha(folder / "prerank.onnx")
    props = {p.key: p.value for p in onnx.load(str(folder / "prerank.onnx")).metadata_props}
    assert props["pinrec.model_version"] == result.ranker.model_version
    rec = Recommender(bundle, RecommendConfig(prerank_keep=5))
    assert len(rec.recommend(None, k=10)) == 5


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
def test_bundle_from_s3_artifacts_into_an_s3_store_loads_and_answers(spark, tiny_world, s3_server, monkeypatch):
    from pinrec.jobs.orchestration.demo import serve_examples
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg, result = tiny_world
    options = s3_server.options
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options.access_key)  # the config holds no keys: the SDK chain does
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options.secret_key)
    root = f"s3://{BUCKET}/publish-{uuid.uuid4().hex[:12]}"
    local = Path(cfg.storage.artifacts)
    ranker_dir = local / "ranker" / result.ranker.model_version
    index_dir = local / "index" / result.index.embedding_version
    on_s3 = dataclasses.replace(
        cfg, storage=dataclasses.replace(cfg.storage, artifacts=f"{root}/artifacts", s3_endpoint_url=options.endpoint_url),
        publish=dataclasses.replace(cfg.publish, store_uri=f"{root}/serving"))
    artifacts = on_s3.storage.location("artifacts")
    upload_folder(index_dir, artifacts / "index" / result.index.embedding_version, last=("index.json",))
    upload_folder(ranker_dir, artifacts / "ranker" / result.ranker.model_version, last=("metrics.json",))

    report = publish_serving_bundle(spark, on_s3, register=False)
    assert report.promoted and report.blessed and report.store_uri == f"{root}/serving"
    answers = serve_examples(on_s3, echo=lambda line: None, users=2, k=5)
    assert len(answers) == 3 and all(0 < len(items) <= 5 for items in answers.values())

    from pinrec.export.serving.loader import load

    bundle = load(on_s3.bundle_store_uri, cfg.publish.name, cfg.publish.channel, s3=artifacts.s3)
    assert bundle.version == report.version
    shas = {e.path: e.sha256 for e in bundle.manifest.files}
    assert shas["ranker/ranker.onnx"] == _sha(ranker_dir / "ranker.onnx")
    assert shas["index/index.json"] == _sha(index_dir / "index.json")
    assert bundle.ntotal == result.index.pins


#: Every public name bundle.py defined before the split, and the module that defines it now.
HOME = {
    "BundleReport": serving_bundle, "publish_serving_bundle": serving_bundle,
    "code_version": bundle_sources, "config_hash": bundle_sources, "newest_ranker": bundle_sources,
    "ranker_metrics": bundle_sources, "pin_metadata": bundle_sources, "embedding_stability": bundle_sources,
    "ranker_scorer": bundle_drift, "candidate_drift": bundle_drift,
    "default_cutoff": bundle_cutoffs, "snapshot_cutoffs": bundle_cutoffs, "champion_day": bundle_cutoffs,
    "candidate_funnel": bundle_funnel, "champion_funnel": bundle_funnel,
    "finish_publish": publish_finish,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(bundle.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(bundle, name) is getattr(module, name), name
        assert module.__dict__[name].__module__ == module.__name__, name


def test_the_split_modules_log_under_the_old_name_and_the_publish_fingerprint_covers_them():
    for module in (bundle_sources, bundle_drift, bundle_funnel, serving_bundle):
        assert module.log.name == "pinrec.jobs.publish.bundle", module.__name__
    closure = {name for name, _ in module_closure("pinrec.jobs.publish.bundle")}  # cached_steps.MODULES["publish"]
    assert {m.__name__ for m in HOME.values()} <= closure
