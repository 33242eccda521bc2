"""The two-tower channel on a tiny published bundle: ONNX user embedding = torch, candidates = brute force."""
from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch

from pinrec.export.build.ann_build import build_index
from pinrec.export.build.onnx_two_tower import export_user_tower
from pinrec.export.build.publish import publish
from pinrec.export.encoding import FeatureEncoder
from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import load
from pinrec.export.serving.recommend import RecommendConfig, Recommender
from pinrec.export.serving.store import Store
from pinrec.export.serving.two_tower import (
    INDEX_FILE,
    PREFIX,
    SPEC_FILE,
    USER_TOWER_FILE,
    TwoTowerSpec,
    list_inputs,
)
from pinrec.jobs.two_tower.two_tower_inputs import user_spec
from pinrec.models.two_tower import UserTower
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import (
    BLOCKED,
    CONTEXT,
    CUTOFF,
    GATE,
    NSFW,
    PIN_IDS,
    USER_CLOSEUPS,
    USER_SAVES,
    D,
    N,
    embeddings,
    write_candidate,
)

torch.set_num_threads(1)
L, OUT = 3, 4
PIN_OUT = torch.nn.functional.normalize(torch.randn(N, OUT, generator=torch.Generator().manual_seed(9)), dim=1).numpy()


def two_tower_files(folder, snapshot: FeatureSnapshot):
    """A random user tower (its encoder fitted on the snapshot's users), its spec and an index of PIN_OUT."""
    users = pa.array(sorted(USER_SAVES), pa.int64())
    rows = snapshot.lookup("user", users)
    frame = {**{c: rows.column(c) for c in rows.column_names}, **{c: pa.array([v] * len(users)) for c, v in CONTEXT.items()},
             "hour": pa.array([9] * len(users)), "day_of_week": pa.array([3] * len(users))}
    encoder = FeatureEncoder(user_spec()).fit(frame)
    torch.manual_seed(0)
    tower = UserTower(encoder.cardinalities, len(encoder.dense_names), D, L, out_channels=OUT, hidden_channels=8)
    export_user_tower(tower, folder / USER_TOWER_FILE)
    (folder / SPEC_FILE).write_text(TwoTowerSpec(encoder.to_dict(), L, D, OUT, "emb-v1", "two-tower-test", 0.1).to_json())
    build_index(PIN_OUT, PIN_IDS, PIN_OUT[:5], IndexConfig(metric="ip", k=5, shards=2, device="cpu"), folder / "i")
    for f in sorted((folder / "i").iterdir()):
        shutil.move(f, folder / (INDEX_FILE if f.name == "index.json" else PREFIX + f.name))
    names = [USER_TOWER_FILE, SPEC_FILE, INDEX_FILE, *(p.name for p in sorted(folder.glob(PREFIX + "*.faiss")))]
    return tower, encoder, tuple(str(folder / n) for n in names)


@pytest.fixture(scope="module")
def towered(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_tower")
    files = write_candidate(root / "candidate")
    snapshot = FeatureSnapshot.open([p for p in files.extras if p.endswith(".parquet")])
    tower, encoder, extras = two_tower_files(root / "candidate", snapshot)
    store = Store(str(root / "store"))
    publish(store, "homefeed", dataclasses.replace(files, extras=files.extras + extras), metrics(), LINEAGE,
            version="v1", now=T0, blessing=GATE)
    publish(store, "plain", files, metrics(), LINEAGE, version="v1", now=T0, blessing=GATE)
    return load(store.uri, "homefeed"), load(store.uri, "plain"), tower, encoder


def torch_user_embedding(towered, user: int, context: dict) -> np.ndarray:
    """The user tower in torch on inputs built here from the test's own tables."""
    bundle, _, tower, encoder = towered
    snap_row = FeatureSnapshot.from_bundle(bundle).lookup("user", pa.array([user], pa.int64()))
    frame = {**{c: snap_row.column(c) for c in snap_row.column_names}, **{c: pa.array([v]) for c, v in context.items()}}
    batch = encoder.transform(frame)
    rows = lambda ids: (np.searchsorted(PIN_IDS, ids), np.isin(ids, PIN_IDS))
    s, sm = list_inputs(np.array(USER_SAVES[user], np.int64), L, rows, embeddings())
    c, cm = list_inputs(np.array(USER_CLOSEUPS[user], np.int64), L, rows, embeddings())
    with torch.no_grad():
        out = tower(torch.from_numpy(batch.categorical), torch.from_numpy(batch.dense), torch.from_numpy(s[None]),
                    torch.from_numpy(sm[None]), torch.from_numpy(c[None]), torch.from_numpy(cm[None]))
    return out.numpy()


@pytest.mark.parametrize("user", [1, 2, 3])
def test_onnx_user_embedding_equals_torch(towered, user):
    bundle = towered[0]
    context = {**CONTEXT, "hour": 9, "day_of_week": 3}
    rec = Recommender(bundle)
    req = rec._request(user, context)
    got = rec._two_tower.user.embed({c: rec._frames.user_row(req).column(c) if c.startswith("user__")
                                     else pa.array([context[c]]) for c in rec._two_tower.user.columns},
                                    req.saves, np.array(USER_CLOSEUPS[user], np.int64))
    np.testing.assert_allclose(got, torch_user_embedding(towered, user, context), atol=1e-5)


def test_channel_candidates_equal_brute_force_top_k(towered):
    bundle = towered[0]
    context = {**CONTEXT, "hour": 9, "day_of_week": 3}
    rec = Recommender(bundle, RecommendConfig(channels=("two_tower",), two_tower_candidates=12))
    assert "two_tower" in Recommender(bundle).channels
    for user in (1, 2):
        query = torch_user_embedding(towered, user, context)[0]
        top = PIN_IDS[np.lexsort((PIN_IDS, -(PIN_OUT @ query)))][:12]
        keep = ~np.isin(top, PIN_IDS[NSFW | BLOCKED]) & ~np.isin(top, USER_SAVES[user])
        cand = rec.candidates(user, context)
        assert cand.pin_ids.tolist() == top[keep].tolist()
        assert set(cand.channel_names()) == {"two_tower"}
    out = Recommender(bundle).recommend(2, context, k=20)
    assert any("two_tower" in r.channels for r in out)


def test_an_unknown_user_gets_two_tower_candidates_only_from_session_pins(towered):
    bundle = towered[0]
    context = {**CONTEXT, "now": CUTOFF}
    rec = Recommender(bundle, RecommendConfig(channels=("two_tower",), two_tower_candidates=12))
    for unknown in (None, 99):
        assert len(rec.candidates(unknown, context)) == 0  # nothing known: the cold-start channels serve
        saved = rec.candidates(unknown, context, recent=[(int(PIN_IDS[5]), "save", CUTOFF - dt.timedelta(seconds=5))])
        assert 0 < len(saved) <= 12 and set(saved.channel_names()) == {"two_tower"}  # flagged pins filtered
    assert len(rec.candidates(1, context)) > 0


def test_a_bundle_without_the_files_does_not_serve_the_channel(towered):
    plain = towered[1]
    assert "two_tower" not in Recommender(plain).channels
    with pytest.raises(ValueError, match=r"names \['two_tower'\].*carries no extra/two_tower_user.onnx"):
        Recommender(plain, RecommendConfig(channels=("ann", "two_tower")))


def test_spec_refuses_a_foreign_file():
    with pytest.raises(ValueError, match="not a two-tower spec"):
        TwoTowerSpec.from_dict({"format": "pinrec.encoder/1"})
    with pytest.raises(ValueError, match=r"lacks \['model_version'"):
        TwoTowerSpec.from_dict({"format": "pinrec.two_tower/1", "encoder": {}, "list_length": 1, "embedding_dim": 2,
                                "dim": 2, "embedding_version": "e"})


def test_a_non_finite_user_embedding_leaves_the_channel_out_of_that_request(towered, monkeypatch, caplog):
    bundle = towered[0]
    context = {**CONTEXT, "hour": 9, "day_of_week": 3}
    rec = Recommender(bundle, RecommendConfig(channels=("two_tower", "trending")))
    assert "two_tower" in rec.candidates(1, context).channel_names()
    good = rec._two_tower.user.embed
    monkeypatch.setattr(rec._two_tower.user, "embed", lambda *a: np.where(np.arange(OUT) == 3, np.nan, good(*a)))
    for _ in range(3):
        cand = rec.candidates(1, context)
        assert len(cand) > 0 and "two_tower" not in cand.channel_names()
    assert rec._two_tower.nonfinite == 3
    assert [r.message for r in caplog.records].count(
        "two-tower channel: the user tower gave a non-finite embedding (2 requests so far); serving this request "
        "without two-tower candidates") == 1
    assert all(np.isfinite(r.score) for r in rec.recommend(1, context, k=5))
