"""The cf channel: the user's ALS factor searched in the bundle's exact inner-product index of pin factors."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.serving.cf_channel import CfChannel, factor_table
from pinrec.export.serving.loader import load
from pinrec.export.serving.recommend import RecommendConfig, Recommender
from pinrec.export.serving.store import Store
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import (
    BLOCKED,
    BLOCKER,
    CONTEXT,
    GATE,
    NSFW,
    PIN_IDS,
    USER_SAVES,
    write_candidate,
)

F = 4
ITEMS = PIN_IDS[::2]  # the pins engaged with before the cf cut-off: every other pin of the bundle
FACTOR_USERS = np.array([1, 2, 7], np.int64)  # snapshot users 1 and 2 (not 3), and 7 whom the snapshot lacks


def item_factors() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((len(ITEMS), F)).astype(np.float32)


def user_factors() -> np.ndarray:
    return np.random.default_rng(12).standard_normal((len(FACTOR_USERS), F)).astype(np.float32)


def write_cf(folder, items=ITEMS, item_f=None, users=FACTOR_USERS, user_f=None, metric=faiss.METRIC_INNER_PRODUCT):
    """The three cf files (as the cf job writes them) in ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    item_f = item_factors() if item_f is None else item_f
    index = faiss.IndexIDMap(faiss.IndexFlatIP(F) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(F))
    index.add_with_ids(item_f, items)
    faiss.write_index(index, str(folder / "cf_items.faiss"))
    pq.write_table(factor_table(items, item_f, "pin_id"), folder / "cf_items.parquet")
    pq.write_table(factor_table(users, user_factors() if user_f is None else user_f, "user_id"),
                   folder / "cf_users.parquet")
    return tuple(str(folder / n) for n in ("cf_items.faiss", "cf_items.parquet", "cf_users.parquet"))


def publish_with(root, extras, version="v1"):
    store = Store(str(root / "store"))
    files = write_candidate(root / "candidate")
    publish(store, "homefeed", dataclasses.replace(files, extras=files.extras + tuple(extras)), metrics(), LINEAGE,
            version=version, now=T0, blessing=GATE)
    return load(store.uri, "homefeed", version=version)


@pytest.fixture(scope="module")
def cf_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cf")
    publish_with(root, write_cf(root / "cf"))
    return str(root / "store")


@pytest.fixture(scope="module")
def cf_bundle(cf_store):
    return load(cf_store, "homefeed", version="v1")


def brute_force(user: int, k: int) -> list[int]:
    scores = item_factors() @ user_factors()[list(FACTOR_USERS).index(user)]
    return ITEMS[np.argsort(-scores)][:k].tolist()


def test_cf_candidates_are_the_brute_force_top_k_of_user_dot_items(cf_bundle, tmp_path):
    channel = CfChannel(*write_cf(tmp_path))
    for user in FACTOR_USERS.tolist():
        assert channel.search(user, 7).tolist() == brute_force(user, 7)
        assert channel.search(user, 1000).tolist() == brute_force(user, len(ITEMS))  # at most the catalogue
    rec = Recommender(cf_bundle, RecommendConfig(channels=("cf",), cf_candidates=12))
    flagged = set(PIN_IDS[NSFW | BLOCKED].tolist()) | {int(p) for p in USER_SAVES[2]}
    cand = rec.candidates(2, CONTEXT)  # the merge then drops flagged pins and the user's own saves
    assert cand.pin_ids.tolist() == [p for p in brute_force(2, 12) if p not in flagged]
    assert set(cand.channel_names()) == {"cf"}
    out = rec.recommend(2, CONTEXT, k=5)
    assert len(out) == 5 and {r.channel for r in out} == {"cf"} and {r.pin_id for r in out} <= set(cand.pin_ids)


def test_users_without_a_factor_get_nothing_from_cf_and_the_others_fill_in(cf_bundle):
    rec = Recommender(cf_bundle)
    assert rec.channels == ("ann", "cf", "category", "trending", "fresh")  # the bundle serves them all
    assert rec.candidates(1, CONTEXT).of("cf").size > 0
    for user in (3, 99, None):  # in the snapshot without a factor; unknown; anonymous
        assert rec.candidates(user, CONTEXT).of("cf").size == 0
        out = rec.recommend(user, CONTEXT, k=5)
        assert len(out) == 5 and not any("cf" in r.channels for r in out)
    # user 7 has a factor but no features: cf still proposes pins (the ranker sees a missing user)
    assert rec.candidates(7, CONTEXT).of("cf").size > 0


def test_cf_quota_and_priority(cf_bundle):
    rec = Recommender(cf_bundle, RecommendConfig(channels=("cf", "fresh"), quotas={"cf": 3}))
    cand = rec.candidates(1, CONTEXT)
    assert cand.channel_names()[:3] == ["cf"] * 3 and cand.channel_names().count("cf") == 3


def test_a_bundle_without_the_cf_files_leaves_the_channel_out_or_refuses_it(tmp_path):
    plain = publish_with(tmp_path / "plain", [])
    assert "cf" not in Recommender(plain).channels
    with pytest.raises(ValueError, match=r"names \['cf'\], which this bundle cannot serve: cf: bundle homefeed/v1 "
                                         r"carries no extra/cf_items.faiss, extra/cf_items.parquet, "
                                         r"extra/cf_users.parquet"):
        Recommender(plain, RecommendConfig(channels=("ann", "cf")))
    partial = publish_with(tmp_path / "partial", write_cf(tmp_path / "cf")[2:])  # the user factors only
    with pytest.raises(ValueError, match=r"cf: bundle homefeed/v1 carries no extra/cf_items.faiss, "
                                         r"extra/cf_items.parquet \(drop them"):
        Recommender(partial, RecommendConfig(channels=("cf",)))


def test_files_that_disagree_are_refused(tmp_path):
    items, users = str(tmp_path / "ok" / "cf_items.parquet"), str(tmp_path / "ok" / "cf_users.parquet")
    index = write_cf(tmp_path / "ok")[0]
    other = write_cf(tmp_path / "other", items=ITEMS + 1)[0]
    with pytest.raises(ValueError, match="must hold exactly the pins of"):
        CfChannel(other, items, users)
    l2 = write_cf(tmp_path / "l2", metric=faiss.METRIC_L2)[0]
    with pytest.raises(ValueError, match="must be an inner-product index"):
        CfChannel(l2, items, users)
    narrow = write_cf(tmp_path / "narrow", user_f=np.ones((3, 2), np.float32))[2]
    with pytest.raises(ValueError, match="has 2 factors"):
        CfChannel(index, items, narrow)
    unsorted = write_cf(tmp_path / "unsorted", users=FACTOR_USERS[::-1])[2]
    with pytest.raises(ValueError, match="user_id must be sorted and unique"):
        CfChannel(index, items, unsorted)
    nan = write_cf(tmp_path / "nan", user_f=np.full((3, F), np.nan, np.float32))[2]
    with pytest.raises(ValueError, match="NaN or inf"):
        CfChannel(index, items, nan)


def test_the_cf_channel_needs_only_the_base_install(cf_store):
    script = BLOCKER + textwrap.dedent(f"""
        from pinrec.export.serving.loader import load
        from pinrec.export.serving.recommend import Recommender
        rec = Recommender(load({cf_store!r}, "homefeed", version="v1"))
        print(rec.candidates(1).of("cf").size > 0, sorted(m for m in BLOCKED if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True []"
