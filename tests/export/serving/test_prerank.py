"""The pre-ranker stage of recommend() on a tiny published bundle carrying extra/prerank.onnx: it keeps
the brute-force top prerank_keep of the pre-ranker's scores, changes nothing when everything fits,
scores as the torch model does, and its absence is a clear error."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.encoding import FeatureEncoder
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import load
from pinrec.export.serving.prerank import Prerank
from pinrec.export.serving.recommend import STAGES, RecommendConfig, Recommender
from pinrec.export.serving.store import Store
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import (
    BLOCKER,
    CATS,
    CONTEXT,
    GATE,
    PIN_IDS,
    prerank_onnx,
    write_candidate,
)

KEEP = 10


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(store, candidate folder, torch scoring module of the pre-ranker, its encoder): a ranker reading
    hashed ids and the PinSage embeddings, and the pre-ranker (which reads neither) beside it."""
    root = tmp_path_factory.mktemp("prerank")
    folder = root / "candidate"
    files = write_candidate(folder, ids=True, embedding_features=True)
    module, encoder = prerank_onnx(str(folder / "prerank.onnx"), FeatureEncoder.from_json(
        (folder / "encoder.json").read_text()))
    files = dataclasses.replace(files, extras=(*files.extras, str(folder / "prerank.onnx")))
    store = Store(str(root / "store"))
    publish(store, "homefeed", files, metrics(), LINEAGE, version="v1", now=T0, blessing=GATE)
    return store, folder, module, encoder


@pytest.fixture(scope="module")
def bundle(published):
    return load(published[0].uri, "homefeed")


def rec(bundle, **kwargs) -> Recommender:
    return Recommender(bundle, RecommendConfig(**{"category_cap": 0, **kwargs}))


def independent_inputs(folder, encoder: FeatureEncoder, user: int | None, pin_ids, context: dict):
    """The pre-ranker's encoded (categorical, dense), built here from the snapshot files alone."""
    snap = FeatureSnapshot.open(str(folder))
    b = len(pin_ids)
    category = [CATS[int(np.flatnonzero(PIN_IDS == p)[0])] for p in pin_ids]
    frame = {k: pa.array([v] * b) for k, v in context.items()} | {"category": pa.array(category)}
    for t in (snap.lookup("user", pa.array([user] * b, pa.int64())), snap.lookup("pin", list(pin_ids)),
              snap.lookup("user_category", {"user_id": pa.array([user] * b, pa.int64()), "category": category})):
        frame.update({c: t.column(c) for c in t.column_names})
    batch = encoder.transform(frame)
    return batch.categorical, batch.dense


def independent_scores(published, user, pin_ids) -> np.ndarray:
    _, folder, _, encoder = published
    cat, dense = independent_inputs(folder, encoder, user, pin_ids, CONTEXT)
    sess = ort.InferenceSession(str(folder / "prerank.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(["score"], {"categorical": cat, "dense": dense})[0]


@pytest.mark.parametrize("user", [2, 3, 99, None])
def test_the_ranker_gets_the_brute_force_top_prerank_keep_of_the_prerank_scores(bundle, published, user):
    r = rec(bundle, prerank_keep=KEEP)
    cand = r.candidates(user, CONTEXT)
    assert len(cand) > KEEP
    score = independent_scores(published, user, cand.pin_ids)
    want = cand.pin_ids[np.lexsort((cand.pin_ids, -score))[:KEEP]]
    timings: dict[str, float] = {}
    out = r.recommend(user, CONTEXT, k=50, timings=timings)  # no cap: every kept pin comes back
    assert sorted(x.pin_id for x in out) == sorted(want.tolist())
    assert set(timings) == set(STAGES) and timings["prerank"] > 0
    # ... ranked by the DCN ranker's scores, as without the pre-ranker
    full = {x.pin_id: x.score for x in rec(bundle).recommend(user, CONTEXT, k=50)}
    np.testing.assert_allclose([x.score for x in out], [full[x.pin_id] for x in out], rtol=1e-6)


def test_with_a_store_in_front_the_prerank_encodes_per_request_alike(bundle):
    """Redis in front (down here: every lookup falls back to the snapshot): no precomputed user rows,
    the generic per-request path; the same pins are kept, the same scores given."""
    from pinrec.export.serving.redis_format import RedisConfig
    from pinrec.export.serving.redis_store import RedisFeatureStore

    class Down:
        def mget(self, names):
            raise ConnectionRefusedError("redis is down")

    store = RedisFeatureStore(FeatureSnapshot.from_bundle(bundle), bundle.version, RedisConfig(retry_after_s=0.0),
                              client=Down())
    via_store = Recommender(bundle, RecommendConfig(category_cap=0, prerank_keep=KEEP), features=store)
    direct = rec(bundle, prerank_keep=KEEP)
    pins = direct.candidates(2, CONTEXT).pin_ids
    np.testing.assert_allclose(via_store.prerank_scores(2, pins, CONTEXT), direct.prerank_scores(2, pins, CONTEXT),
                               rtol=1e-6)
    assert via_store.recommend(2, CONTEXT, k=50) == direct.recommend(2, CONTEXT, k=50) and store.fallbacks >= 2


def test_ties_keep_the_smaller_pin_ids_in_candidate_order(bundle):
    r = rec(bundle, prerank_keep=KEEP)
    cand = r.candidates(2, CONTEXT)
    r.prerank.scores = lambda req, rows: np.zeros(len(rows), np.float32)  # every score tied
    kept = r.prerank.keep(r._request(2, CONTEXT), cand, KEEP)
    smallest = set(np.sort(cand.pin_ids)[:KEEP].tolist())
    assert kept.pin_ids.tolist() == [p for p in cand.pin_ids.tolist() if p in smallest]
    assert kept.channel.tolist() == [c for p, c in zip(cand.pin_ids.tolist(), cand.channel.tolist()) if p in smallest]


def test_prerank_keep_at_least_the_candidates_changes_nothing(bundle):
    n = len(rec(bundle).candidates(2, CONTEXT))
    want = rec(bundle).recommend(2, CONTEXT, k=50)
    for keep in (n, n + 100):
        assert rec(bundle, prerank_keep=keep).recommend(2, CONTEXT, k=50) == want
    assert rec(bundle, prerank_keep=n - 1).recommend(2, CONTEXT, k=50) != want


def test_serving_scores_equal_the_onnx_file_and_the_torch_model(bundle, published):
    import torch

    _, folder, module, encoder = published
    r = rec(bundle, prerank_keep=KEEP)
    assert r.prerank.encoder == encoder and not {"user_id", "pin_id"} & set(encoder.categorical_names)
    assert len(r.prerank.encoder.dense_names) < len(r.encoder.dense_names)  # no embeddings
    assert "embedding" not in r.prerank.parts and "request" not in r.prerank.parts  # never encoded for it
    pins = r.candidates(2, CONTEXT).pin_ids
    got = r.prerank_scores(2, pins, CONTEXT)
    np.testing.assert_allclose(got, independent_scores(published, 2, pins), rtol=1e-6)
    cat, dense = independent_inputs(folder, encoder, 2, pins, CONTEXT)
    with torch.no_grad():
        want = module(torch.from_numpy(cat), torch.from_numpy(dense))[-1].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_without_prerank_onnx_prerank_keep_is_a_clear_error(tmp_path, bundle):
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    plain = load(store.uri, "homefeed")
    with pytest.raises(ValueError, match=r"recommend.prerank_keep=5 but bundle homefeed/v1 carries no "
                                         r"extra/prerank.onnx .*ranker_job.prerank=logistic.*prerank_keep=0"):
        rec(plain, prerank_keep=5)
    assert len(rec(plain).recommend(2, CONTEXT, k=5)) == 5
    with pytest.raises(ValueError, match="recommend.prerank_keep is 0"):
        rec(bundle).prerank_scores(2, PIN_IDS[:3], CONTEXT)
    with pytest.raises(ValueError, match="prerank_keep"):
        RecommendConfig(prerank_keep=-1)


@pytest.mark.parametrize("change", ["new feature", "refitted"])
def test_a_prerank_reading_what_the_ranker_does_not_is_refused(tmp_path, bundle, published, change):
    from pinrec.export.encoding import EncoderSpec, Hashed

    _, folder, _, encoder = published
    if change == "new feature":
        other = FeatureEncoder(EncoderSpec((*encoder.spec.features, Hashed("board_id", 8)), None), encoder.state)
        bad = "'board_id'"
    else:
        other = FeatureEncoder(encoder.spec, {**encoder.state, "pin__saves_30d": {"mean": 0.0, "std": 1.0}})
        bad = "'pin__saves_30d'"
    model = onnx.load(str(folder / "prerank.onnx"))
    onnx.helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} |
                                {"pinrec.encoder": other.to_json()})
    path = str(tmp_path / "prerank.onnx")
    onnx.save(model, path)
    with pytest.raises(ValueError, match=rf"reads features \[{bad}\] that the bundle's ranker does not read or "
                                         "fitted differently"):
        Prerank(path, rec(bundle)._serving)


def test_the_prerank_needs_only_the_base_install(published):
    script = BLOCKER + textwrap.dedent(f"""
        from pinrec.export.serving.loader import load
        from pinrec.export.serving.recommend import RecommendConfig, Recommender
        rec = Recommender(load({published[0].uri!r}, "homefeed", version="v1"), RecommendConfig(prerank_keep=4))
        out = rec.recommend(2, {{"surface": "home_feed"}}, k=10)
        print(len(out), sorted(m for m in BLOCKED if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4 []"
