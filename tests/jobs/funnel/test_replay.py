"""The funnel replay on a stand-in Recommender whose lists are written out, so every number is known."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pinrec.export.serving.recommend import RecommendConfig
from pinrec.jobs.funnel.replay import DayEvents, replay, true_top_pins

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

    def prerank_scores(self, user, pin_ids, context):
        assert self.config.prerank_keep, "a Recommender opens its pre-ranker only with prerank_keep > 0"
        return np.asarray(pin_ids) % 10  # the stand-in's pre-ranker: the pin id's last digit

    def recommend(self, user, context, k):
        merged, keep = self._merged(user), self.config.prerank_keep
        if keep and len(merged) > keep:  # the best `keep` by score, ties by pin id, in candidate order
            best = set(sorted(merged, key=lambda p: (-(p % 10), p))[:keep])
            merged = [p for p in merged if p in best]
        top = merged[:k]
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
    assert not any(k.startswith("prerank") for k in m)  # no pre-ranker replayed (prerank_keep 0)
    # the first impression's context reaches the request; a user without one asks with none
    assert (1, {"surface": "home_feed", "device": "ios", "country": "US"}) in calls and (2, {}) in calls
    # 95 % intervals over the two users: served HR@2 [0, 1]: 1.96 * sd 0.7071 / sqrt(2) = 0.98
    assert m["ci95.served.hr@2"] == pytest.approx(0.98)
    assert m["ci95.candidates.merged.recall@3.saves"] == pytest.approx(1.96 * np.std([0.5, 1.0], ddof=1) / np.sqrt(2))
    assert "ci95.users" not in m and not any(k.startswith("ci95.served.share") for k in m)  # pooled: no interval
    table = report.render()
    assert "saves@3" in table and "HR@2 0.5000±0.9800" in table
    # trending alone: recall@1 of the saves [0.5, 0] -> 0.25 ± 0.49; recall@3 [1, 1] -> 1 ± 0
    assert f"  {'trending':<24}   0.2500±0.4900   1.0000±0.0000" in table


def test_a_user_served_nothing_counts_in_hr_but_not_in_the_diversity_figures(monkeypatch):
    monkeypatch.setitem(LISTS["ann"], 4, [])
    monkeypatch.setitem(LISTS["trending"], 4, [])
    events = DayEvents.of([2, 4], [20, 10], ["save", "save"])
    m = replay(lambda c: StandIn(c, []), RecommendConfig(), events, day="d", k=2, cutoffs=(1,)).metrics
    assert m["users"] == 2.0 and m["served.hr@2"] == 0.5  # user 2 served [20, 21]; user 4 nothing
    assert m["served.category_entropy"] == 1.0  # user 2's [a, c] alone: not averaged with an empty list


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


def test_the_pre_ranker_is_replayed_on_and_off_side_by_side():
    made: list = []

    def make(c):
        made.append(c.prerank_keep)
        return StandIn(c, [])

    report = replay(make, RecommendConfig(), EVENTS, day="d", k=2, cutoffs=(3,), prerank_keep=3)
    m = report.metrics
    # serving has it off: the configured Recommender is the off arm; the on arm is one more, at keep 3
    assert made == [0, 0, 0, 3] and m["prerank.keep"] == 3.0
    # on: user 1 [10, 11, 12, 13, 30, 31] scored by last digit keeps 13, 12, 11 -> [11, 12, 13]; user 2
    # [20, 21, 30, 32] keeps 32, 21, 20 (20 before 30 on the tie) -> [20, 21, 32]
    assert m["prerank.on.to_ranker.size"] == 3.0 and m["prerank.off.to_ranker.size"] == (6 + 4) / 2
    assert m["prerank.on.to_ranker.recall.saves"] == pytest.approx((0.5 + 1.0) / 2)  # 31 cut; 20 kept
    assert m["prerank.off.to_ranker.recall.saves"] == pytest.approx(1.0)
    assert m["prerank.on.to_ranker.recall.closeups"] == m["prerank.off.to_ranker.recall.closeups"] == 0.5
    # served top-2: on [11, 12] (save 12 second), [20, 21]; off [10, 11], [20, 21]
    ndcg_user1 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))  # two saves: the ideal list hits at 0 and 1
    assert (m["prerank.on.hr@2"], m["prerank.off.hr@2"]) == (1.0, 0.5)
    assert m["prerank.on.ndcg@2"] == pytest.approx((ndcg_user1 + 1.0) / 2) and m["prerank.off.ndcg@2"] == 0.5
    assert m["prerank.on.recall@2.saves"] == pytest.approx(0.75) and m["prerank.off.recall@2.saves"] == 0.5
    assert m["served.hr@2"] == m["prerank.off.hr@2"]  # served as configured: off
    # the change on - off per user, paired: HR [1, 0] -> 0.5 ± 0.98; the cut candidates [-3, -1]
    assert m["prerank.change.hr@2"] == 0.5 and m["ci95.prerank.change.hr@2"] == pytest.approx(0.98)
    assert m["prerank.change.to_ranker.size"] == -2.0
    assert m["ci95.prerank.on.hr@2"] == 0.0
    table = report.render()
    assert "pre-ranker, keep 3" in table and f"  {'on':<24}{'3.0±0.0':>16}{'0.7500±0.4900':>16}" in table
    # sizes [6, 4]: 5 ± 1.96 * 1.414 / sqrt(2)
    assert f"  {'on - off':<24}{'-2.0±2.0':>16}" in table and f"  {'off':<24}{'5.0±2.0':>16}" in table


def test_a_served_pre_ranker_is_the_on_arm_and_one_user_has_no_intervals():
    made: list = []

    def make(c):
        made.append(c.prerank_keep)
        return StandIn(c, [])

    report = replay(make, RecommendConfig(prerank_keep=3), EVENTS, day="d", k=2, cutoffs=(3,), prerank_keep=3,
                    max_users=1)
    m = report.metrics
    assert made == [3, 3, 3, 0]  # served, two channels alone, and the off arm
    assert m["served.hr@2"] == m["prerank.on.hr@2"] == 1.0 and m["prerank.off.hr@2"] == 0.0
    assert not any(k.startswith("ci95.") for k in m)  # one user: no interval
    assert "HR@2 1.0000," in report.render()
    with pytest.raises(ValueError, match="prerank_keep >= 0"):
        replay(make, RecommendConfig(), EVENTS, day="d", prerank_keep=-1)


def test_interval_and_pre_ranker_keys_stay_out_of_the_blessing_gate():
    from pinrec.export.build.blessing import BlessingConfig, evaluate
    from pinrec.schemas.manifest import Metrics

    m = replay(lambda c: StandIn(c, []), RecommendConfig(), EVENTS, day="d", k=2, cutoffs=(3,), prerank_keep=3).metrics
    worse = {k: (v + 1.0 if k.startswith("ci95.") else v - 1.0) if k.startswith(("ci95.", "prerank.")) else v
             for k, v in m.items()}

    def metrics(funnel):
        return Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1.0, latency_p99_ms=2.0, auc={"save": 0.7},
                       calibration_error={"save": 0.01}, funnel=funnel)

    # wider intervals and a worse pre-ranker arm (it is not what serves) do not fail the gate
    assert evaluate(metrics(worse), metrics(m), BlessingConfig(), "champion").blessed


def test_true_top_pins_rank_by_the_generators_relevance_ties_by_pin_id():
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    pins = np.array([[0.5, 0.5], [0.9, 0.0], [0.5, 0.5], [0.0, 1.0]])
    top = true_top_pins(np.array([7, 8]), users, np.array([104, 101, 102, 103]), pins, 2)
    assert top[7].tolist() == [101, 102] and top[8].tolist() == [103, 102]
    assert sorted(top) == [7, 8]
