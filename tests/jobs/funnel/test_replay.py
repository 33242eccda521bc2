"""The funnel replay on a stand-in Recommender whose lists are written out, so every number is known."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from pinrec.export.serving.recommend import RecommendConfig
from pinrec.jobs.funnel.replay import DayEvents, prerank_variant, replay, true_top_pins

# per channel, the candidate list each user gets from that channel alone (its own order)
LISTS = {"ann": {1: [10, 11, 12, 13], 2: [20, 21]}, "trending": {1: [12, 30, 31], 2: [30, 20, 32]}}
CATEGORY = {10: "a", 11: "a", 12: "b", 13: "b", 20: "a", 21: "c", 30: "b", 31: "c", 32: "c"}
EMBEDDING = {10: [1.0, 0.0], 12: [0.0, 1.0], 20: [1.0, 0.0], 30: [1.0, 0.0]}  # others: no embedding


class StandIn:
    """What replay uses of a Recommender: channels, candidates(), recommend(), embeddings, pins."""

    def __init__(self, config: RecommendConfig, calls: list) -> None:
        self.config, self.calls = config, calls
        self.channels = config.channels or ("ann", "trending")
        ids = np.array(sorted(CATEGORY), np.int64)
        self.embeddings = np.array([EMBEDDING.get(int(p), [0.0, 0.0]) for p in ids], np.float32)
        self.pins = SimpleNamespace(rows=lambda q: (np.searchsorted(ids, q), np.isin(q, ids)))

    def _merged(self, user: int) -> list[int]:
        out: list[int] = []
        for c in self.channels:
            out += [p for p in LISTS[c][user] if p not in out]
        return out

    def candidates(self, user, context):
        self.calls.append((user, dict(context)))
        return SimpleNamespace(pin_ids=np.array(self._merged(user), np.int64))

    def recommend(self, user, context, k):
        merged = self._merged(user)
        top = merged[:k] if not getattr(self.config, "prerank_keep", 0) else merged[-1:]  # a poor pre-ranker
        first = {p: next(c for c in self.channels if p in LISTS[c][user]) for p in top}
        return [SimpleNamespace(pin_id=p, channel=first[p], category=CATEGORY[p]) for p in top]


EVENTS = DayEvents.of([1, 1, 1, 2, 2, 3], [12, 31, 40, 21, 20, 99], ["save", "save", "closeup", "closeup", "save",
                                                                    "click"],
                      contexts={1: {"surface": "home_feed", "device": "ios", "country": "US"}})


def test_day_events_keep_saves_and_closeups_by_user():
    assert EVENTS.saves == {1: frozenset({12, 31}), 2: frozenset({20})}
    assert EVENTS.closeups == {1: frozenset({40}), 2: frozenset({21})}  # user 3 only clicked: not replayed


def test_replay_measures_each_channel_alone_the_merge_and_the_served_list():
    calls: list = []
    report = replay(lambda c: StandIn(c, calls), RecommendConfig(), EVENTS, day="2026-01-07", k=2, cutoffs=(1, 3))
    m = report.metrics
    assert report.users == 2 and report.channels == ("ann", "trending") and m["users"] == 2.0
    # merged: user 1 [10, 11, 12, 13, 30, 31] saves {12, 31}; user 2 [20, 21, 30, 32] saves {20}
    assert m["candidates.merged.recall@1.saves"] == pytest.approx((0 + 1) / 2)
    assert m["candidates.merged.recall@3.saves"] == pytest.approx((0.5 + 1) / 2)
    assert m["candidates.merged.recall@3.closeups"] == pytest.approx((0 + 1) / 2)  # 40 never; 21 at 1
    # alone, trending ranks user 1's save 12 first and 31 third
    assert m["candidates.trending.recall@1.saves"] == pytest.approx((0.5 + 0) / 2)
    assert m["candidates.trending.recall@3.saves"] == pytest.approx((1.0 + 1.0) / 2)
    assert m["candidates.ann.recall@3.saves"] == pytest.approx((0.5 + 1.0) / 2)
    # served top-2: user 1 [10, 11] (no save), user 2 [20, 21] (save at 0)
    assert (m["served.hr@2"], m["served.ndcg@2"], m["served.recall@2.saves"]) == (0.5, 0.5, 0.5)
    assert m["served.share.ann"] == 1.0 and m["served.share.trending"] == 0.0
    # only user 2's served pins both have an embedding: 20 [1, 0] and 21 none -> no pair; user 1: 10 only
    assert "served.cosine" not in m
    assert m["served.category_entropy"] == pytest.approx((0.0 + 1.0) / 2)  # [a, a]; [a, c]
    assert not any(k.startswith("served_without_prerank") for k in m)
    # the first impression's context reaches the request; a user without one asks with none
    assert (1, {"surface": "home_feed", "device": "ios", "country": "US"}) in calls and (2, {}) in calls
    assert "saves@3" in report.render() and "HR@2 0.5000" in report.render()
    assert "  trending                        0.2500        1.0000" in report.render()


def test_served_cosine_and_truth_recall():
    report = replay(lambda c: StandIn(c, []), RecommendConfig(), EVENTS, day="d", k=4, cutoffs=(2,),
                    truth={1: np.array([31, 13]), 2: np.array([32])})
    m = report.metrics
    # user 1 served [10, 11, 12, 13]: embeddings 10 [1, 0], 12 [0, 1] -> one pair, cosine 0
    # user 2 served [20, 21, 30, 32]: 20 and 30 both [1, 0] -> cosine 1
    assert m["served.cosine"] == pytest.approx(0.5)
    assert m["candidates.merged.truth_recall@2"] == pytest.approx(0.0)
    assert m["served.truth_recall@4"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["candidates.ann.truth_recall@2"] == 0.0


def test_replay_refuses_a_day_without_saves_and_bad_cut_offs():
    empty = DayEvents.of([1], [5], ["closeup"])
    with pytest.raises(ValueError, match="no user saved a pin on d"):
        replay(lambda c: StandIn(c, []), RecommendConfig(), empty, day="d")
    with pytest.raises(ValueError, match="cut-off must be >= 1"):
        replay(lambda c: StandIn(c, []), RecommendConfig(), EVENTS, day="d", cutoffs=(0,))


@dataclasses.dataclass(frozen=True)
class WithPrerank:
    """A RecommendConfig as the pre-ranker's branch will have it: ``prerank_keep`` 0 = off."""

    channels: tuple[str, ...] | None = None
    prerank_keep: int = 0


def test_a_pre_ranker_is_replayed_with_and_without_it():
    assert prerank_variant(RecommendConfig()) is None  # no pre-ranker field yet on this branch
    assert prerank_variant(WithPrerank()) is None  # off already
    assert prerank_variant(WithPrerank(prerank_keep=200)) == WithPrerank(prerank_keep=0)
    report = replay(lambda c: StandIn(c, []), WithPrerank(prerank_keep=200), EVENTS, day="d", k=2, cutoffs=(3,))
    m = report.metrics  # the stand-in's pre-ranker keeps the last candidate: user 1 [31] (a save), user 2 [32]
    assert m["served.recall@2.saves"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["served_without_prerank.recall@2.saves"] == pytest.approx((0.0 + 1.0) / 2)  # [10, 11]; [20, 21]
    assert m["served.hr@2"] == 0.5 and m["served_without_prerank.ndcg@2"] == 0.5
    assert "served_without_prerank" in report.render()


def test_true_top_pins_rank_by_the_generators_relevance_ties_by_pin_id():
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    pins = np.array([[0.5, 0.5], [0.9, 0.0], [0.5, 0.5], [0.0, 1.0]])
    top = true_top_pins(np.array([7, 8]), users, np.array([104, 101, 102, 103]), pins, 2)
    assert top[7].tolist() == [101, 102] and top[8].tolist() == [103, 102]
    assert sorted(top) == [7, 8]
