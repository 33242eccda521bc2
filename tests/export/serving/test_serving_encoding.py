"""export/serving/serving_encoding.py: the precomputed (snapshot) path encodes exactly as the generic frame path."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import load
from pinrec.export.serving.recommend import RecommendConfig, Recommender
from pinrec.export.serving.serving_encoding import source
from pinrec.export.serving.store import Store
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import CONTEXT, CUTOFF, GATE, write_candidate


class Generic:
    """The bundle's snapshot behind a plain ``lookup``: the recommender takes the generic path."""

    def __init__(self, snapshot: FeatureSnapshot) -> None:
        self.snapshot = snapshot

    def lookup(self, view, keys, now=None):
        return self.snapshot.lookup(view, keys, now)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(fast, generic) recommenders over one bundle whose ranker reads every source: context,
    user, hashed ids, pin, embeddings, user x category and eq(category, user__top_category)."""
    root = tmp_path_factory.mktemp("serving_encoding")
    store = Store(str(root / "store"))
    publish(store, "homefeed", write_candidate(root / "c", ids=True, embedding_features=True), metrics(), LINEAGE,
            version="v1", now=T0, blessing=GATE)
    bundle = load(store.uri, "homefeed")
    cfg = RecommendConfig(category_cap=0)
    fast = Recommender(bundle, cfg)
    return fast, Recommender(bundle, cfg, features=Generic(fast.features))


def test_sources_and_which_parts_are_precomputed(pair):
    fast, generic = pair
    assert [source(c) for c in ("hour", "user__saves_7d", "user_id", "category", "pin__saves_30d", "pin_embedding",
                                "user_category__saves_30d")] == \
        ["context", "user", "request", "meta", "pin", "embedding", "uc"]
    assert set(fast._serving.parts) == {"context", "user", "request", "meta", "pin", "embedding", "uc", "cross"}
    assert set(fast._serving._fast) == {"context", "user", "uc", "cross", "embedding"}
    assert fast._serving._uc_keys is not None
    assert generic._serving._fast == {} and generic._users is None


# users 1, 2, 3 have user rows 1, 11 and 21 h old at the cut-off (TTL 2 days): at +30 h user 3's has
# expired, at +40 h user 2's too; (user, category) rows expire likewise; user 99 and None have none
@pytest.mark.parametrize("hours", [0, 10, 30, 40])
@pytest.mark.parametrize("user", [1, 2, 3, 99, None])
def test_fast_and_generic_paths_encode_bit_for_bit(pair, user, hours):
    fast, generic = pair
    now = CUTOFF + dt.timedelta(hours=hours)
    context = {**CONTEXT, "now": now, "device": "android", "country": "XX"}  # "XX": out of vocabulary
    rows = np.arange(len(fast._pin_ids))
    got = fast._serving.encode(fast._request(user, context), rows)
    batch = generic.encoder.transform(generic._frame(generic._request(user, context), rows))
    np.testing.assert_array_equal(got[0], batch.categorical)
    np.testing.assert_array_equal(got[1], batch.dense)
    gen = generic._serving.encode(generic._request(user, context), rows)
    np.testing.assert_array_equal(gen[0], batch.categorical)
    np.testing.assert_array_equal(gen[1], batch.dense)
    assert fast.recommend(user, context, k=30) == generic.recommend(user, context, k=30)


def test_expired_user_rows_encode_as_missing(pair):
    fast, _ = pair
    snap = fast.features
    missing = snap.lookup("user", pa.array([2, 3], pa.int64()), CUTOFF + dt.timedelta(hours=30))["user__missing"]
    assert missing.to_pylist() == [False, True]
    assert fast._request(3, {"now": CUTOFF + dt.timedelta(hours=30)}).user_pos == -1
    assert fast._request(3, {"now": CUTOFF}).user_pos >= 0
    assert len(fast._request(2, {"now": CUTOFF + dt.timedelta(hours=40)}).saves) == 0
    with pytest.raises(ValueError, match="cannot serve an earlier time"):
        fast.recommend(2, {"now": CUTOFF - dt.timedelta(hours=1)})
