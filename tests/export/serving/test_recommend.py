"""recommend(): channels, filters, ranking parity with ONNX, diversity, cold start, on a real published bundle;
the facade: every public name of ``pinrec.export.serving.recommend`` as the object its own module defines."""
from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.encoding import (
    FeatureEncoder,
)
from pinrec.export.serving import (
    bundle_extras,
    candidates,
    embedding_features,
    ranking_stage,
    recommend,
    recommend_config,
    recommender,
    serving_encoding,
    serving_request,
)
from pinrec.export.serving.embedding_features import EmbeddingTable
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import BundleError, Loader, load
from pinrec.export.serving.recommend import (
    CHANNELS,
    Recommendation,
    RecommendConfig,
    Recommender,
    RequestError,
)
from pinrec.export.serving.snapshot_meta import snapshot_file_name
from pinrec.export.serving.store import Store
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import (
    BLOCKED,
    BLOCKER,
    CATS,
    CONTEXT,
    CREATED,
    CUTOFF,
    GATE,
    NSFW,
    PIN_IDS,
    SAVES_30D,
    USER_SAVES,
    D,
    N,
    embeddings,
    write_candidate,
)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(store, candidate folder) with version v1 on channel prod."""
    root = tmp_path_factory.mktemp("recommend")
    store = Store(str(root / "store"))
    publish(store, "homefeed", write_candidate(root / "candidate"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    return store, root / "candidate"


@pytest.fixture(scope="module")
def bundle(published):
    return load(published[0].uri, "homefeed")


def rec(bundle, **kwargs) -> Recommender:
    return Recommender(bundle, RecommendConfig(**kwargs))


def eligible_ids() -> set[int]:
    return set(PIN_IDS[~(NSFW | BLOCKED)].tolist())


def top_by_ip(query: np.ndarray, k: int) -> np.ndarray:
    scores = embeddings() @ query
    return PIN_IDS[np.lexsort((PIN_IDS, -scores))][:k]


def test_ann_channel_returns_the_true_nearest_neighbours_of_the_saves(bundle):
    r = rec(bundle, channels=("ann",), ann_candidates=12)
    got = r.candidates(1).pin_ids
    want = [p for p in top_by_ip(embeddings()[5], 12) if p in eligible_ids() and p != PIN_IDS[5]]
    assert got.tolist() == want and len(want) >= 8
    # an explicit query embedding searches the same index
    assert r.candidates(None, query=embeddings()[5]).pin_ids.tolist() == \
        [p for p in top_by_ip(embeddings()[5], 12) if p in eligible_ids()]
    # three saves: per-save top-12 lists fused by recency-weighted reciprocal rank (newest weighs most)
    fused: dict[int, float] = {}
    for q, row in enumerate((10, 20, 30)):
        for rank, pid in enumerate(top_by_ip(embeddings()[row], 12)):
            fused[int(pid)] = fused.get(int(pid), 0.0) + 0.5 ** (q / 2.0) / (60.0 + 1 + rank)
    order = sorted(fused, key=lambda p: (-fused[p], p))[:12]
    saves = set(np.array(USER_SAVES[2]).tolist())
    assert r.candidates(2).pin_ids.tolist() == [p for p in order if p in eligible_ids() and p not in saves]


def test_channels_merge_and_remember_every_source(bundle):
    r = rec(bundle, ann_candidates=10, fresh_candidates=6, trending_candidates=5)
    cand = r.candidates(2, {"now": CUTOFF})
    assert len(set(cand.pin_ids.tolist())) == len(cand)  # de-duplicated
    ok = sorted((i for i in range(N) if not (NSFW[i] or BLOCKED[i])), key=lambda i: -SAVES_30D[i])
    trending = [int(PIN_IDS[i]) for i in ok[:5]]
    in_c2 = [int(PIN_IDS[i]) for i in ok if CATS[i] == "c2"][:5]
    fresh = [int(PIN_IDS[i]) for i in sorted((i for i in range(N) if not (NSFW[i] or BLOCKED[i])
                                              and CREATED[i] <= CUTOFF), key=lambda i: CREATED[i], reverse=True)[:6]]
    saves = set(np.array(USER_SAVES[2]).tolist())
    # (of() lists in candidate order: a pin another channel found first comes earlier)
    assert set(cand.of("trending").tolist()) == {p for p in trending if p not in saves}
    assert set(cand.of("category").tolist()) == {p for p in in_c2 if p not in saves}
    assert set(cand.of("fresh").tolist()) == {p for p in fresh if p not in saves}
    assert rec(bundle, channels=("fresh",), fresh_candidates=6).candidates(2, {"now": CUTOFF}).pin_ids.tolist() == \
        [p for p in fresh if p not in saves]  # newest first
    assert rec(bundle, channels=("trending",), trending_candidates=5).candidates(2).pin_ids.tolist() == \
        [p for p in trending if p not in saves]  # most saved first
    names = cand.channel_names()
    for pid, name, mask in zip(cand.pin_ids.tolist(), names, cand.mask.tolist()):
        found_by = [c for c in CHANNELS if pid in cand.of(c)]
        assert name == found_by[0] and mask == sum(1 << CHANNELS.index(c) for c in found_by)
    # candidate order is channel priority: every ANN pin before the first pin only another channel found
    first_other = next(i for i, n in enumerate(names) if n != "ann")
    assert set(names[:first_other]) == {"ann"} and "ann" not in names[first_other:]


def test_source_quotas_cap_what_each_channel_adds(bundle):
    free = rec(bundle, ann_candidates=10, fresh_candidates=6, trending_candidates=5)
    capped = rec(bundle, ann_candidates=10, fresh_candidates=6, trending_candidates=5, quotas={"ann": 3, "fresh": 1})
    before, after = free.candidates(2, {"now": CUTOFF}), capped.candidates(2, {"now": CUTOFF})
    names = after.channel_names()
    assert names.count("ann") == 3 and names.count("fresh") <= 1
    assert after.pin_ids[:3].tolist() == before.of("ann")[:3].tolist()  # ann's best three
    assert len(after) < len(before) and len(set(after.pin_ids.tolist())) == len(after)
    recs = capped.recommend(2, {"now": CUTOFF}, k=5)
    assert 1 <= len(recs) <= 5 and {r.pin_id for r in recs} <= set(after.pin_ids.tolist())


def test_flagged_pins_and_own_saves_are_never_returned(bundle):
    r = rec(bundle, category_cap=0)
    for user in (1, 2, 3, 99, None):
        got = {x.pin_id for x in r.recommend(user, CONTEXT, k=N)}
        assert got and got <= eligible_ids()
        assert not got & set(np.array(USER_SAVES.get(user, [])).tolist())
    got = {x.pin_id for x in r.recommend(2, CONTEXT, k=N, exclude=[int(PIN_IDS[0]), int(PIN_IDS[1])])}
    assert not got & {int(PIN_IDS[0]), int(PIN_IDS[1])}


def test_cold_users_get_fresh_and_trending_only(bundle):
    r = rec(bundle)
    for user in (99, None):
        out = r.recommend(user, CONTEXT, k=50)
        assert out and {c for x in out for c in x.channels} <= {"fresh", "trending"}
        assert r.candidates(user).of("ann").size == 0 and r.candidates(user).of("category").size == 0
    known_without_saves = r.candidates(3)
    assert known_without_saves.of("ann").size == 0 and known_without_saves.of("category").size > 0


def independent_scores(folder, user: int, pin_ids: list[int], context: dict, now=None) -> dict[str, np.ndarray]:
    """The ranker run on a frame built here from the snapshot files, the encoder JSON and the ONNX file."""
    snap = FeatureSnapshot.open(str(folder))
    b = len(pin_ids)
    category = [CATS[int(np.flatnonzero(PIN_IDS == p)[0])] for p in pin_ids]
    u = snap.lookup("user", [user] * b, now)
    p = snap.lookup("pin", pin_ids, now)
    uc = snap.lookup("user_category", {"user_id": [user] * b, "category": category}, now)
    frame = {k: pa.array([v] * b) for k, v in context.items()}
    frame.update(category=pa.array(category), user_id=pa.array([user] * b), pin_id=pa.array(pin_ids))
    for t in (u, p, uc):
        frame.update({c: t.column(c) for c in t.column_names})
    frame.update(EmbeddingTable(PIN_IDS, embeddings()).columns(pin_ids, u, ("user_embedding", "user_closeup_embedding")))
    enc = FeatureEncoder.from_json((folder / "encoder.json").read_text())
    batch = enc.transform(frame)
    sess = ort.InferenceSession(str(folder / "ranker.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"categorical": batch.categorical, "dense": batch.dense})))


def test_scores_equal_the_onnx_ranker_on_an_independently_built_frame(bundle, published):
    out = rec(bundle, category_cap=0).recommend(2, CONTEXT, k=20)
    assert len(out) == 20 and all(isinstance(x, Recommendation) for x in out)
    want = independent_scores(published[1], 2, [x.pin_id for x in out], CONTEXT)
    np.testing.assert_allclose([x.score for x in out], want["score"], rtol=1e-6)
    np.testing.assert_allclose([x.p["save"] for x in out], want["p_save"], rtol=1e-6)
    np.testing.assert_allclose([x.p["closeup"] for x in out], want["p_closeup"], rtol=1e-6)
    assert [x.score for x in out] == sorted((x.score for x in out), reverse=True)  # no cap, no MMR: score order
    assert [x.category for x in out] == [CATS[int(np.flatnonzero(PIN_IDS == x.pin_id)[0])] for x in out]
    # ... and the result is the top 20 of all candidates by score
    r = rec(bundle, category_cap=0)
    cand = r.candidates(2, CONTEXT)
    every = r.score(r.frame(2, cand.pin_ids, CONTEXT))["score"]
    assert sorted(every, reverse=True)[:20] == pytest.approx([x.score for x in out], rel=1e-6)


def test_features_expire_at_now_as_the_snapshot_says(bundle, published):
    later = CUTOFF + dt.timedelta(hours=10)  # every fifth pin and user x category row has expired
    r = rec(bundle, category_cap=0)
    out = r.recommend(2, {**CONTEXT, "now": later}, k=40)
    pins = [x.pin_id for x in out]
    expired = FeatureSnapshot.open(str(published[1])).lookup("pin", pins, later)["pin__missing"].to_pylist()
    assert 0 < sum(expired) < len(pins)
    want = independent_scores(published[1], 2, pins, CONTEXT, later)
    np.testing.assert_allclose([x.score for x in out], want["score"], rtol=1e-6)
    assert not np.allclose([x.score for x in out], independent_scores(published[1], 2, pins, CONTEXT)["score"])


def test_a_ranker_with_hashed_user_and_pin_ids(tmp_path):
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c", ids=True), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    r = Recommender(load(store.uri, "homefeed"), RecommendConfig(category_cap=0))
    assert r.encoder.categorical_names[:2] == ("user_id", "pin_id")
    out = r.recommend(2, CONTEXT, k=15)
    want = independent_scores(tmp_path / "c", 2, [x.pin_id for x in out], CONTEXT)
    np.testing.assert_allclose([x.score for x in out], want["score"], rtol=1e-6)


@pytest.mark.slow
def test_the_real_exported_ranker_scores_as_torch_does(tmp_path):
    """DCN-v2 + MMoE exported with the dynamo exporter: recommend's scores equal the torch module's
    on the independently encoded frame."""
    import torch

    torch.set_num_threads(1)
    files, module = write_candidate(tmp_path / "c", real_ranker=True)
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", files, metrics(), LINEAGE, version="v1", now=T0, blessing=GATE)
    r = Recommender(load(store.uri, "homefeed"), RecommendConfig(category_cap=0))
    assert r.tasks == ("save", "closeup")
    out = r.recommend(2, CONTEXT, k=25)
    want = independent_scores(tmp_path / "c", 2, [x.pin_id for x in out], CONTEXT)
    np.testing.assert_allclose([x.score for x in out], want["score"], rtol=1e-6)
    snap = FeatureSnapshot.open(str(tmp_path / "c"))
    pins = [x.pin_id for x in out]
    cats = [CATS[int(np.flatnonzero(PIN_IDS == p)[0])] for p in pins]
    frame = {**{k: pa.array([v] * len(pins)) for k, v in CONTEXT.items()}, "category": pa.array(cats)}
    for t in (snap.lookup("user", [2] * len(pins)), snap.lookup("pin", pins),
              snap.lookup("user_category", {"user_id": [2] * len(pins), "category": cats})):
        frame.update({c: t.column(c) for c in t.column_names})
    batch = r.encoder.transform(frame)
    with torch.no_grad():
        p_save, p_closeup, score = module(torch.from_numpy(batch.categorical), torch.from_numpy(batch.dense))
    np.testing.assert_allclose([x.score for x in out], score.numpy(), atol=1e-5)
    np.testing.assert_allclose([x.p["save"] for x in out], p_save.numpy(), atol=1e-5)
    np.testing.assert_allclose([x.p["closeup"] for x in out], p_closeup.numpy(), atol=1e-5)


def test_a_ranker_reading_pinsage_embeddings(tmp_path):
    """pin_embedding, user_embedding (mean of the saves'), user_closeup_embedding (of the closeups')
    and the pin's dot product with each, as the ranker job computes them (pinrec.export.serving.embedding_features)."""
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c", embedding_features=True), metrics(), LINEAGE,
            version="v1", now=T0, blessing=GATE)
    r = Recommender(load(store.uri, "homefeed"), RecommendConfig(category_cap=0))
    assert {"dot(pin_embedding,user_embedding)", "dot(pin_embedding,user_closeup_embedding)"} <= \
        set(r.encoder.dense_names)
    for user in (2, 3, 99):  # 3 has closeups but no saves
        out = r.recommend(user, CONTEXT, k=15)
        want = independent_scores(tmp_path / "c", user, [x.pin_id for x in out], CONTEXT)
        np.testing.assert_allclose([x.score for x in out], want["score"], rtol=1e-6)
    b = load(store.uri, "homefeed")
    files = tuple(f for f in b.manifest.files if not f.path.endswith("pin_embeddings.npy"))
    no_embeddings = dataclasses.replace(b, manifest=dataclasses.replace(b.manifest, files=files))
    with pytest.raises(ValueError, match="reads PinSage embeddings but bundle"):
        Recommender(no_embeddings, RecommendConfig(channels=("fresh",)))


def test_redis_in_front_falls_back_to_the_snapshot(bundle):
    from pinrec.export.serving.redis_format import RedisConfig
    from pinrec.export.serving.redis_store import RedisFeatureStore

    class Down:
        def mget(self, names):
            raise ConnectionRefusedError("redis is down")

    snapshot = FeatureSnapshot.from_bundle(bundle)
    store = RedisFeatureStore(snapshot, bundle.version, RedisConfig(retry_after_s=0.0), client=Down())
    via_redis = Recommender(bundle, RecommendConfig(), features=store).recommend(2, CONTEXT, k=10)
    assert via_redis == rec(bundle).recommend(2, CONTEXT, k=10) and store.fallbacks >= 2


def test_category_cap_is_respected_greedily(bundle):
    r = rec(bundle, category_cap=2)
    out = r.recommend(2, CONTEXT, k=10)
    counts = {c: sum(x.category == c for x in out) for c in {x.category for x in out}}
    assert max(counts.values()) <= 2 and len(out) == 8  # 4 categories x 2: fewer than k under the cap
    cand = r.candidates(2, CONTEXT)
    scores = r.score(r.frame(2, cand.pin_ids, CONTEXT))["score"]
    want, taken = [], {}
    for i in np.argsort(-scores, kind="stable"):
        cat = CATS[int(np.flatnonzero(PIN_IDS == cand.pin_ids[i])[0])]
        if taken.get(cat, 0) < 2:
            want.append(int(cand.pin_ids[i]))
            taken[cat] = taken.get(cat, 0) + 1
    assert [x.pin_id for x in out] == want


def test_mmr_follows_the_greedy_definition(bundle):
    lam = 0.5
    r = rec(bundle, category_cap=0, mmr_lambda=lam)
    out = r.recommend(1, CONTEXT, k=6)
    cand = r.candidates(1, CONTEXT)
    s = r.score(r.frame(1, cand.pin_ids, CONTEXT))["score"].astype(np.float64)
    rel = (s - s.min()) / (s.max() - s.min())
    e = embeddings()[[int(np.flatnonzero(PIN_IDS == p)[0]) for p in cand.pin_ids]]
    chosen: list[int] = []
    for _ in range(6):
        gains = [(-np.inf if i in chosen else lam * rel[i] - (1 - lam) * max((e[i] @ e[j] for j in chosen), default=0))
                 for i in range(len(s))]
        chosen.append(int(np.argmax(gains)))
    assert [x.pin_id for x in out] == cand.pin_ids[chosen].tolist()
    assert [x.pin_id for x in out] != [x.pin_id for x in rec(bundle, category_cap=0).recommend(1, CONTEXT, k=6)]


def test_deterministic_and_now_drives_freshness_and_context(bundle):
    a = rec(bundle).recommend(2, CONTEXT, k=15)
    assert a == rec(bundle).recommend(2, CONTEXT, k=15) == rec(bundle).recommend(2, CONTEXT, k=15)
    r = rec(bundle, channels=("fresh",), fresh_candidates=N)
    later = CUTOFF + dt.timedelta(hours=3)
    assert len(r.candidates(None, {"now": later})) == len(r.candidates(None)) + \
        sum(CUTOFF < CREATED[i] <= later and not (NSFW[i] or BLOCKED[i]) for i in range(N))
    sunday = dt.datetime(2026, 1, 11, 17, 30, tzinfo=dt.UTC)
    frame = r.frame(1, PIN_IDS[:2], {"now": sunday, "surface": "search"})
    assert frame["hour"].to_pylist() == [17, 17] and frame["day_of_week"].to_pylist() == [1, 1]
    assert frame["surface"].to_pylist() == ["search"] * 2 and frame["device"].to_pylist() == [None, None]


def test_bad_requests_are_clear_errors(bundle):
    r = rec(bundle)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be an int >= 1"):
            r.recommend(1, CONTEXT, k=k)
    with pytest.raises(ValueError, match=r"unknown context keys \['position'\]"):
        r.recommend(1, {**CONTEXT, "position": 3})
    with pytest.raises(ValueError, match="hour"):
        r.recommend(1, {**CONTEXT, "hour": 24})
    with pytest.raises(ValueError, match="cannot serve an earlier time"):
        r.recommend(1, {"now": CUTOFF - dt.timedelta(hours=1)})
    with pytest.raises(ValueError, match="user must be an int"):
        r.recommend("1", CONTEXT)


BAD_REQUESTS = [  # (args, kwargs, the message naming the field and what it allows)
    ((2 ** 63,), {}, r"user must be an int user_id or None: an int \(not a bool\) in \[-2\*\*63, 2\*\*63 - 1\]"),
    ((2 ** 64,), {}, r"user must be an int user_id or None: .*got 18446744073709551616"),
    ((-(2 ** 63) - 1,), {}, r"user must be an int user_id or None"),
    ((np.uint64(2 ** 64 - 1),), {}, r"user must be an int user_id or None"),
    ((True,), {}, r"user must be .*not a bool.*got True"),
    ((1.0,), {}, r"user must be .*got 1.0"),
    ((1,), {"exclude": [2 ** 70]}, r"exclude\[0\] must be a pin id: an int .*got 1180591620717411303424"),
    ((1,), {"exclude": [5, "a"]}, r"exclude\[1\] must be a pin id: .*got 'a'"),
    ((1,), {"exclude": [1.5]}, r"exclude\[0\] must be a pin id"),
    ((1,), {"exclude": [False]}, r"exclude\[0\] must be a pin id: an int \(not a bool\)"),
    ((1,), {"exclude": "103"}, r"exclude must be a sequence of int64 pin ids .*got str"),
    ((1,), {"exclude": 103}, r"exclude must be a sequence of int64 pin ids .*got int"),
    ((1,), {"exclude": np.array([1.0, 2.0])}, r"exclude must be .*got a 1-d float64 array"),
    ((1,), {"exclude": np.array([2 ** 64 - 1], np.uint64)}, r"exclude must be .* in int64 range"),
    ((1,), {"exclude": np.array(5, object)}, r"exclude must be .*got a 0-d object array"),
    ((1,), {"exclude": np.array([[5]], object)}, r"exclude must be .*got a 2-d object array"),
    ((1, {"now": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))}), {},
     r"context\['now'\] = .* is outside the datetime range in UTC"),
    ((1, "str"), {}, r"context must be a mapping of \['surface', .*'now'\] to values \(or None\), got str"),
    ((1, 5), {}, r"context must be a mapping of .*got int 5"),
    ((1, {1: "x", "y": 2}), {}, r"unknown context keys \['y', 1\]"),
    ((1, {"hour": True}), {}, r"context\['hour'\] must be an int in \[0, 23\] \(not a bool\), got True"),
    ((1, {"day_of_week": np.True_}), {}, r"context\['day_of_week'\] must be an int in \[1, 7\]"),
    ((1, {"hour": 9.0}), {}, r"context\['hour'\] must be an int"),
    ((1, {"surface": 3}), {}, r"context\['surface'\] must be a string or None, got 3"),
    ((None,), {"query": np.array(["a"] * D)}, rf"query must be a \({D},\) or \(Q, {D}\) array of finite real numbers.*dtype <U1"),
    ((None,), {"query": np.ones(D, bool)}, r"query must be .*dtype bool"),
    ((None,), {"query": np.ones(D - 1)}, rf"query must be .*got shape \({D - 1},\)"),
    ((None,), {"query": np.ones((2, 2, D))}, r"query must be .*got shape \(2, 2, 8\)"),
    ((None,), {"query": np.ones((0, D))}, r"query must be .*Q >= 1.*got shape \(0, 8\)"),
    ((None,), {"query": [[1.0] * D, [1.0]]}, r"query must be .*inhomogeneous"),
    ((None,), {"query": np.r_[np.nan, np.ones(D - 1)]}, r"query must be .*rows \[0\] hold NaN or inf"),
    ((None,), {"query": np.stack([np.ones(D), np.full(D, np.inf)])}, r"query must be .*rows \[1\] hold NaN or inf"),
    ((None,), {"query": np.full(D, 1e300)}, r"query must be .*beyond float32"),
    ((1,), {"k": True}, r"k must be an int >= 1 \(not a bool\), got True"),
    ((1,), {"k": np.int64(0)}, r"k must be an int >= 1"),
    ((1,), {"k": "5"}, r"k must be an int >= 1"),
    ((1, {"now": dt.datetime(1990, 1, 10, tzinfo=dt.UTC)}), {},
     r"context\['now'\] = 1990-01-10T00:00:00\+00:00 is before the snapshot's cut-off"),
    ((1, {"now": pd.NaT}), {}, r"context\['now'\] must be a datetime, got NaT"),
    ((1,), {"recent": [(5, "save", pd.NaT)]}, r"ts must be a time, got NaT"),
    ((1,), {"timings": []}, r"timings must be a dict .* got list"),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), BAD_REQUESTS)
def test_a_malformed_request_is_refused_naming_the_field(bundle, args, kwargs, message):
    r = rec(bundle)
    with pytest.raises(RequestError, match=message) as raised:
        r.recommend(*args, **kwargs)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, TypeError)
    if "exclude" in kwargs or "query" in kwargs:  # candidates() validates them the same way
        with pytest.raises(RequestError, match=message):
            r.candidates(*args, **{k: v for k, v in kwargs.items() if k != "k"})


def test_valid_requests_with_numpy_ints_none_and_int64_bounds(bundle):
    r = rec(bundle)
    want = r.recommend(2, CONTEXT, k=5)
    ctx = {**CONTEXT, "hour": np.int64(9), "day_of_week": np.int8(3)}
    assert r.recommend(np.int64(2), ctx, k=np.int32(5)) == r.recommend(np.uint8(2), CONTEXT, k=5) == want
    cold = r.recommend(None, CONTEXT, k=5)
    assert len(cold) == 5 and not {x.channel for x in cold} & {"ann", "category"}
    for user in (2 ** 63 - 1, -(2 ** 63), -1, np.uint64(7)):  # valid int64 ids nobody has: cold start
        assert r.recommend(user, CONTEXT, k=5) == cold
    shown = [x.pin_id for x in want[:2]]
    for exclude in (shown, tuple(shown), set(shown), np.array(shown, np.int32), np.array(shown, np.uint64),
                    np.array(shown, object), [np.int64(p) for p in shown], [*shown, 2 ** 63 - 1, -(2 ** 63)]):
        out = [x.pin_id for x in r.recommend(2, CONTEXT, k=5, exclude=exclude)]
        assert not set(out) & set(shown) and out[:3] == [x.pin_id for x in want[2:5]]
    q = embeddings()[5]
    by_query = r.candidates(None, query=q).of("ann")
    for same in (q.astype(np.float64), q.tolist(), q[None]):
        assert np.array_equal(r.candidates(None, query=same).of("ann")[:3], by_query[:3])
    assert r.candidates(None, query=np.arange(D)).of("ann").size > 0  # an int query is a real vector


def test_config_validation():
    with pytest.raises(ValueError, match="recommend.channels"):
        RecommendConfig(channels=("ann", "popular"))
    with pytest.raises(ValueError, match="recommend.channels"):
        RecommendConfig(channels=("ann", "ann"))
    with pytest.raises(ValueError, match="ann_candidates"):
        RecommendConfig(ann_candidates=0)
    with pytest.raises(ValueError, match=r"recommend.quotas .*unknown channels \['popular'\]"):
        RecommendConfig(quotas={"popular": 3})
    with pytest.raises(ValueError, match=r"bad counts \{'ann': -1\}"):
        RecommendConfig(quotas={"ann": -1})
    with pytest.raises(ValueError, match="mmr_lambda"):
        RecommendConfig(mmr_lambda=1.5)
    with pytest.raises(ValueError, match="trending_by"):
        RecommendConfig(trending_by="saves_30d")
    for field, value, message in (("ann_candidates", None, "must be int >= 1, got None"),
                                  ("ann_candidates", 1.5, "must be an integer >= 1, got 1.5"),
                                  ("ann_candidates", "5", "must be a number, got '5'"),
                                  ("fresh_candidates", 2.5, "must be an integer"),
                                  ("ranker_threads", 2.0, "must be an integer"),
                                  ("category_cap", None, "must be int >= 0, got None"),
                                  ("rrf_k", float("inf"), "must be a finite number"),
                                  ("mmr_lambda", float("nan"), "must be a finite number"),
                                  ("quotas", None, "recommend.quotas must map channels"),
                                  ("trending_by", 5, "trending_by must be a pin feature column")):
        with pytest.raises(ValueError, match=rf"recommend.{field} {message}" if field != "quotas" and
                           field != "trending_by" else message):
            RecommendConfig(**{field: value})
    assert RecommendConfig(quotas={"ann": np.int64(3)}, ann_candidates=np.int64(7)).quotas == {"ann": 3}


def test_channels_unset_leave_out_what_the_bundle_cannot_serve(bundle):
    # this bundle serves every channel but two_tower and cf (test_two_tower.py / test_cf_channel.py ship them)
    assert Recommender(bundle).channels == tuple(c for c in CHANNELS if c not in ("two_tower", "cf"))
    no_trending = RecommendConfig(trending_by="pin__no_such_feature")
    assert Recommender(bundle, no_trending).channels == ("ann", "fresh")
    with pytest.raises(ValueError, match=r"names \['trending'\], which this bundle cannot serve: trending: the "
                                         r"feature snapshot's pin view has no 'pin__no_such_feature'"):
        Recommender(bundle, dataclasses.replace(no_trending, channels=("ann", "trending")))
    text = RecommendConfig(trending_by="pin__category", channels=("ann", "trending"))  # a string column
    with pytest.raises(ValueError, match=r"trending: recommend.trending_by 'pin__category' is string, not a number"):
        Recommender(bundle, text)


def test_a_bundle_without_embeddings(tmp_path):
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c", with_embeddings=False), metrics(), LINEAGE,
            version="v1", now=T0, blessing=GATE)
    b = load(store.uri, "homefeed")
    with pytest.raises(ValueError, match=r"recommend.channels names \['ann'\], which this bundle cannot serve: "
                                         r"ann: bundle homefeed/v1 carries no extra/pin_embeddings.npy"):
        Recommender(b, RecommendConfig(channels=("ann", "fresh")))
    with pytest.raises(ValueError, match="carries no extra/pin_embeddings.npy: set recommend.mmr_lambda=1"):
        Recommender(b, RecommendConfig(mmr_lambda=0.5))
    auto = Recommender(b)  # channels unset: what the bundle can serve
    assert auto.channels == ("category", "trending", "fresh")
    r = Recommender(b, RecommendConfig(channels=("trending", "fresh")))
    assert r.channels == ("trending", "fresh")
    assert r.recommend(1, CONTEXT, k=5) and r.candidates(1).of("ann").size == 0
    assert [x.pin_id for x in auto.recommend(1, CONTEXT, k=5)] == \
        [x.pin_id for x in Recommender(b, RecommendConfig(channels=("category", "trending", "fresh"))).recommend(
            1, CONTEXT, k=5)]
    assert r.candidates(None, query=embeddings()[5]).of("ann").size > 0


def test_from_loader_follows_refresh(published, tmp_path):
    store = published[0]
    loader = Loader(store.uri, "homefeed")
    follow = Recommender.from_loader(loader)
    first = follow.recommend(2, CONTEXT, k=5)
    assert follow.current().bundle.version == "v1" and follow.current() is follow.current()
    files = write_candidate(tmp_path / "c2")
    publish(store, "homefeed", files, metrics(recall=0.31), LINEAGE, version="v2", now=T0, blessing=GATE)
    assert loader.refresh()
    assert follow.current().bundle.version == "v2" and follow.recommend(2, CONTEXT, k=5) == first


def _empty_encoder(folder):
    files = write_candidate(folder)
    (folder / "encoder.json").write_text("{}")
    return files


def _nan_embeddings(folder):
    files = write_candidate(folder)
    x = embeddings().copy()
    x[3] = np.nan
    np.save(folder / "pin_embeddings.npy", x, allow_pickle=False)
    return files


def _all_blocked(folder):
    files = write_candidate(folder)
    pins = pq.read_table(folder / "pins.parquet")
    pq.write_table(pins.set_column(pins.schema.get_field_index("blocked"), "blocked",
                                   pa.array([True] * pins.num_rows)), folder / "pins.parquet")
    return files


CANNOT_SERVE = {  # a version the loader accepts but Recommender cannot build
    "no pin_embeddings": (lambda folder: write_candidate(folder, with_embeddings=False),
                          (r"cannot serve channels \['ann'\] that v1 serves: ann: bundle homefeed/v2 carries no "
                           r"extra/pin_embeddings.npy")),
    "encoder {}": (_empty_encoder, r"not a pinrec encoder"),
    "NaN embedding": (_nan_embeddings, r"pin_embeddings.npy holds 1 row\(s\) with NaN or inf"),
    "every pin blocked": (_all_blocked, r"has no pin it may serve"),
}


@pytest.mark.parametrize("case", sorted(CANNOT_SERVE))
def test_a_refresh_to_a_version_that_cannot_serve_keeps_the_old_one(tmp_path, monkeypatch, case):
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c1"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    loader = Loader(store.uri, "homefeed")
    follow = Recommender.from_loader(loader)
    before = follow.recommend(2, CONTEXT, k=5)
    built = []
    build = Recommender.__init__

    def counting(self, bundle, *args, **kwargs):
        built.append(bundle.version)
        build(self, bundle, *args, **kwargs)

    monkeypatch.setattr(Recommender, "__init__", counting)
    write, message = CANNOT_SERVE[case]
    publish(store, "homefeed", write(tmp_path / "c2"), metrics(recall=0.31), LINEAGE, version="v2", now=T0,
            blessing=GATE)
    assert load(store.uri, "homefeed").version == "v2"  # the loader accepts it
    for attempt in (1, 2):
        with pytest.raises(BundleError, match=rf"refusing homefeed/v2: it cannot serve \(ValueError: .*{message}"):
            loader.refresh()
        assert loader.version == "v1" and loader.failed_refreshes == attempt
        assert follow.recommend(2, CONTEXT, k=5) == before  # the old version keeps serving
    assert built == ["v2"]  # refused once; not rebuilt while the channel points to it
    publish(store, "homefeed", write_candidate(tmp_path / "c3"), metrics(recall=0.32), LINEAGE, version="v3", now=T0,
            blessing=GATE)
    assert loader.refresh() is True and loader.version == "v3" and built == ["v2", "v3"]
    assert follow.recommend(2, CONTEXT, k=5) == before and follow.current().bundle is loader.bundle
    assert built == ["v2", "v3"]  # the recommender the refresh built and probed serves: no rebuild
    del follow
    gc.collect()
    publish(store, "homefeed", write_candidate(tmp_path / "c4"), metrics(recall=0.33), LINEAGE, version="v4", now=T0,
            blessing=GATE)
    assert loader.refresh() is True and built == ["v2", "v3"]  # the loader held its check weakly


def test_an_empty_user_category_view_serves_every_value_as_missing(tmp_path):
    # a snapshot without any user x category row (a quiet last day): the fast path indexed an empty array
    files = write_candidate(tmp_path / "c")
    path = tmp_path / "c" / snapshot_file_name("user_category")
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0).replace_schema_metadata(table.schema.metadata), path)
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", files, metrics(), LINEAGE, version="v1", now=T0, blessing=GATE)
    empty = Recommender(load(store.uri, "homefeed"))
    assert empty._frames.features.view("user_category").num_rows == 0
    full = Recommender(load(published_store(tmp_path), "homefeed"))
    # user 3 has no user x category row in either bundle: the same feed
    assert empty.recommend(3, CONTEXT, k=5) == full.recommend(3, CONTEXT, k=5)
    assert len(empty.recommend(1, CONTEXT, k=5)) == 5


def published_store(tmp_path):
    store = Store(str(tmp_path / "full"))
    publish(store, "homefeed", write_candidate(tmp_path / "f"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    return store.uri


def test_a_version_serving_fewer_channels_is_refused_before_the_first_request_too(tmp_path):
    store = Store(str(tmp_path / "store"))
    publish(store, "homefeed", write_candidate(tmp_path / "c1"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    loader = Loader(store.uri, "homefeed")
    follow = Recommender.from_loader(loader)  # no request yet
    publish(store, "homefeed", write_candidate(tmp_path / "c2", with_embeddings=False), metrics(recall=0.31), LINEAGE,
            version="v2", now=T0, blessing=GATE)
    with pytest.raises(BundleError, match=r"cannot serve channels \['ann'\] that v1 serves"):
        loader.refresh()
    assert loader.version == "v1" and "ann" in follow.current().channels


def test_the_probe_asks_a_cold_and_a_known_user_and_refuses_non_finite_scores(bundle, monkeypatch):
    r = rec(bundle)
    asked, answer = [], r.recommend

    def recording(user, **kwargs):
        asked.append(user)
        return answer(user, **kwargs)

    monkeypatch.setattr(r, "recommend", recording)
    r.probe()
    assert asked == [None, 1]  # user 1: the first of the snapshot with saves
    nan = dataclasses.replace(answer(1, k=1)[0], score=float("nan"))
    monkeypatch.setattr(r, "recommend", lambda user, **kwargs: [nan])
    with pytest.raises(ValueError, match=r"homefeed/v1: the probe request for user None got .*scores must be finite"):
        r.probe()
    monkeypatch.setattr(r, "recommend", lambda user, **kwargs: [])  # every feed empty: nothing to serve
    with pytest.raises(ValueError, match=r"homefeed/v1: no probe request \(users \[None, 1\]\) got a recommendation"):
        r.probe()


def test_recommend_needs_only_the_base_install(published):
    script = BLOCKER + textwrap.dedent(f"""
        from pinrec.export.serving.loader import load
        from pinrec.export.serving.recommend import Recommender
        rec = Recommender(load({published[0].uri!r}, "homefeed", version="v1"))
        out = rec.recommend(2, {{"surface": "home_feed"}}, k=3)
        print(len(out), sorted(m for m in BLOCKED if m in sys.modules))
    """)
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3 []"


#: Every public name recommend.py defined or re-exported before the split, and the module that defines it now.
HOME = {
    "RecommendConfig": recommend_config, "Recommender": recommender, "LoaderRecommender": recommender,
    "STAGES": recommender, "Recommendation": ranking_stage, "EMBEDDINGS_FILE": bundle_extras,
    "CHANNELS": candidates, "Candidates": candidates, "CONTEXT": serving_encoding,
    "EMBEDDING_COLUMNS": embedding_features, "RequestError": serving_request,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(recommend.__all__) == sorted(set(HOME) - {"EMBEDDINGS_FILE"})  # __all__ as before the split
    for name, module in HOME.items():
        assert getattr(recommend, name) is module.__dict__[name], name
        if callable(module.__dict__[name]):
            assert module.__dict__[name].__module__ == module.__name__, name
