"""Tests of :mod:`pinrec.jobs.retrieval.retrieval_protocols` on tiny inline logs: the leave-one-out split, its
negatives (never interacted, reproducible, reusable), same-board pairs and ranks by hand, and
latent agreement."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.retrieval.baselines import ItemEmbeddings
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_eval import evaluate_retrieval
from pinrec.jobs.retrieval.retrieval_protocols import (
    item_to_item_ranks,
    latent_agreement,
    leave_one_out,
    same_board_pairs,
)
from tests.support.logs import EDGES, THETA, angles, clustered_log, log_of


def test_split_holds_out_exactly_each_users_latest_pin():
    log = log_of([(1, 10, 0), (1, 11, 2), (1, 12, 1),
                  (2, 10, 5), (2, 13, 5), (2, 11, 3),   # tie at h=5: a seeded hash picks 10 or 13
                  (3, 14, 0), (3, 14, 9), (3, 10, 4),   # repeat of pin 14: its first interaction counts
                  (4, 12, 1)])                          # a single pin: trains, not evaluated
    held = {}
    for seed in range(20):
        split = leave_one_out(log, num_negatives=1, seed=seed)
        assert split.notes == {"users_skipped_one_pin": 1}  # user 4: said in the report, not silently dropped
        (user1, pin1), (user2, pin2), (user3, pin3) = split.test[["user_id", "pin_id"]].values.tolist()
        assert (user1, pin1, user2, user3, pin3) == (1, 11, 2, 3, 10) and pin2 in (10, 13)
        held.setdefault(pin2, seed)
        train = set(map(tuple, split.train[["user_id", "pin_id"]].values.tolist()))
        assert train == {(1, 10), (1, 12), (2, 23 - pin2), (2, 11), (3, 14), (4, 12)}
        assert split.catalogue.tolist() == [10, 11, 12, 13, 14]
    assert sorted(held) == [10, 13]  # both tied pins get held out, for some seed
    assert leave_one_out(log, 1, seed=held[13]).test["pin_id"][1] == 13  # and a seed always picks the same


def test_negatives_avoid_interacted_pins_and_are_reproducible():
    log = clustered_log()
    split = leave_one_out(log, num_negatives=99, seed=3)
    seen = log.groupby("user_id")["pin_id"].agg(set)
    for user, negatives in zip(split.test["user_id"], split.test["negatives"]):
        assert len(negatives) == len(set(negatives)) == 99
        assert not set(negatives) & seen[user] and set(negatives) <= set(split.catalogue.tolist())
    again = leave_one_out(log, num_negatives=99, seed=3)
    pd.testing.assert_frame_equal(split.test, again.test)
    assert split.test["negatives"].tolist() != leave_one_out(log, 99, seed=4).test["negatives"].tolist()
    # a user's negatives do not depend on the other users
    alone = leave_one_out(log[log["user_id"] == 1005], 5, seed=3, catalogue=split.catalogue)
    assert alone.test["negatives"][0] == leave_one_out(log, 5, seed=3).test.set_index("user_id")["negatives"][1005]
    with pytest.raises(ValueError, match=r"the catalogue holds \d+ pins: 400 negatives and the held-out pin do not "
                                         r"fit; lower retrieval_eval.num_negatives"):
        leave_one_out(log, num_negatives=400, seed=3)


def test_a_user_who_met_almost_every_pin_is_skipped_and_counted():
    """One heavy user (a user who rated nearly every item) no longer aborts the whole evaluation."""
    log = clustered_log()
    catalogue = np.unique(log["pin_id"])
    heavy = pd.DataFrame({"user_id": 999_999, "pin_id": catalogue[:-3], "ts": log["ts"].min()})
    split = leave_one_out(pd.concat([log, heavy], ignore_index=True), num_negatives=5, seed=3)
    assert 999_999 not in set(split.test["user_id"]) and split.notes == {"users_skipped_one_pin": 0,
                                                                          "users_without_enough_negatives": 1}
    assert len(split.test) == log["user_id"].nunique()


def test_stored_negatives_are_reused_and_checked(tmp_path):
    log = clustered_log()
    report = evaluate_retrieval(log, cfg=RetrievalEvalConfig(baselines=("popularity",)))
    report.write(tmp_path)
    stored = pd.read_parquet(tmp_path / "negatives.parquet")
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["model"] == "popularity"
    again = leave_one_out(log, 99, seed=12345, negatives=stored)
    assert again.test["negatives"].tolist() == report.negatives["negatives"].tolist()
    # the user's own pin among the negatives (the NCF ML-1M file has 156 such lines): dropped and counted
    tampered = stored.assign(negatives=[[n[0]] * 98 + [int(p)] for n, p in zip(stored["negatives"], stored["pin_id"])])
    cleaned = leave_one_out(log, 99, negatives=tampered)
    assert cleaned.test["negatives"].tolist() == [[n[0]] for n in stored["negatives"]]
    assert cleaned.notes["negatives_dropped_own_pins"] == len(stored)
    with pytest.raises(ValueError, match="not in the catalogue"):
        leave_one_out(log, 99, negatives=stored.assign(negatives=[[10**9]] * len(stored)))
    with pytest.raises(ValueError, match="do not match"):
        leave_one_out(log[log["pin_id"] != report.negatives["pin_id"][0]], 99, negatives=stored)


def test_same_board_pairs_and_ranks_by_hand():
    pairs = same_board_pairs(EDGES)
    assert pairs[["board_id", "query", "target"]].values.tolist() == [[1, 11, 12], [2, 20, 21], [2, 20, 22]]
    assert pairs["exclude"].tolist() == [[10, 11], [20], [20]]
    catalogue = EDGES["pin_id"].to_numpy()
    # query 11 (0.1): 30 (0.3) is nearer than 12 (0.5); 10 and 11 are excluded -> rank 1;
    # query 20 (2.0): 21 is nearest -> 0; 22 (1.0 away) has only 21 nearer -> 1
    assert item_to_item_ranks(pairs, angles(THETA), catalogue).tolist() == [1, 0, 1]
    without_30 = angles({p: t for p, t in THETA.items() if p != 30})
    assert item_to_item_ranks(pairs, without_30, catalogue).tolist() == [0, 0, 1]


def test_latent_agreement_is_one_for_a_rotation_and_low_for_noise():
    rng = np.random.default_rng(0)
    truth = ItemEmbeddings(np.arange(200), rng.normal(size=(200, 8)))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    same = latent_agreement(ItemEmbeddings(truth.ids, 3.0 * truth.vectors @ rotation), truth, 2000, 50, k=5)
    assert same["spearman"] == pytest.approx(1.0) and same["overlap@5"] == 1.0
    noise = latent_agreement(ItemEmbeddings(truth.ids, rng.normal(size=(200, 8))), truth, 2000, 50, k=5)
    assert abs(noise["spearman"]) < 0.15 and noise["overlap@5"] < 0.2
