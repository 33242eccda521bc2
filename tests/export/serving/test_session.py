"""export/serving/session.py: session actions validated, merged into the recent lists, excluded, and moving the feed."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import Loader, load
from pinrec.export.serving.recommend import RecommendConfig, Recommender, RequestError
from pinrec.export.serving.session import (
    SESSION_ACTIONS,
    check_recent,
    list_caps,
    merged,
)
from pinrec.export.serving.store import Store
from pinrec.export.serving.view_snapshot import ViewSnapshot
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import (
    BLOCKED,
    CATS,
    CONTEXT,
    CUTOFF,
    GATE,
    NSFW,
    PIN_IDS,
    USER_CLOSEUPS,
    USER_SAVES,
    N,
    embeddings,
    view_table,
    write_candidate,
)

P = [int(p) for p in PIN_IDS]
NOW = CUTOFF + dt.timedelta(minutes=5)
CTX = {**CONTEXT, "now": NOW}
US = 1_000_000


def us(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


# ---------------------------------------------------------------- validation and merge (no bundle)
def test_valid_actions_are_ordered_newest_first_and_deduplicated():
    t = us(NOW)
    s = check_recent([(P[1], "save", NOW - dt.timedelta(seconds=30)),            # aware datetime
                      (P[2], "closeup", (NOW - dt.timedelta(seconds=20)).replace(tzinfo=None)),  # naive = UTC
                      (P[3], "save", (t - 10 * US) / US),                        # float epoch seconds
                      (np.int64(P[1]), "save", (t - 5 * US) // US),              # int epoch seconds, again
                      (P[4], "save", (t - 5 * US) // US)], t)                    # same time: later element first
    assert SESSION_ACTIONS == ("closeup", "save")
    assert s.by_action["save"].tolist() == [P[4], P[1], P[3]]
    assert s.by_action["closeup"].tolist() == [P[2]]
    assert s.pins.tolist() == [P[4], P[1], P[3], P[2]] and len(s) == 4
    assert len(check_recent([], t)) == 0 and len(check_recent(None, t)) == 0


@pytest.mark.parametrize("recent, message", [
    ("save", r"recent must be a list of \(pin_id, action, ts\) with action in \['closeup', 'save'\], got str"),
    ({P[0]: "save"}, "recent must be a list"),
    ([(P[0], "save")], r"recent\[0\] = .*each action must be a \(pin_id, action, ts\) tuple"),
    ([(P[0], "save", NOW), "x"], r"recent\[1\] = 'x'"),
    ([(True, "save", NOW)], r"recent\[0\] .*pin_id must be an int64 pin id \(not a bool\), got True"),
    ([(1.5, "save", NOW)], "pin_id must be an int64 pin id"),
    ([(2 ** 63, "save", NOW)], "pin_id must be an int64 pin id"),
    ([(P[0], "click", NOW)], r"action must be one of \['closeup', 'save'\] .*got 'click'"),
    ([(P[0], "Save", NOW)], "action must be one of"),
    ([(P[0], "save", "2026-01-10")], r"ts must be a datetime \(naive = UTC\) or epoch seconds"),
    ([(P[0], "save", us(NOW) // 1000)], "not milliseconds"),          # epoch milliseconds
    ([(P[0], "save", float("nan"))], "ts must be a datetime"),
    ([(P[0], "save", True)], "ts must be a datetime"),
    ([(P[0], "save", -1)], "ts must be a datetime"),
    ([(P[0], "save", dt.datetime.min)], r"recent\[0\] .*ts must be at or after 1970-01-01 UTC"),  # an unset field
    ([(P[0], "save", dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC))], "at or after 1970-01-01"),
    ([(P[0], "save", NOW + dt.timedelta(seconds=1))], r"recent\[0\] .*after the request's now \(2026-01-10T00:05:00"),
])
def test_malformed_recent_is_refused_naming_the_element(recent, message):
    with pytest.raises(RequestError, match=message):
        check_recent(recent, us(NOW))


@pytest.mark.parametrize("ts", [10 ** 400, dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                                dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=1)))],
                         ids=["10**400", "year 1 at UTC+1", "year 9999 at UTC-1"])
def test_times_beyond_any_range_are_request_errors(ts):
    with pytest.raises(RequestError, match=r"recent\[0\] .*ts"):
        check_recent([(P[0], "save", ts)], None)


def test_a_float_ts_from_the_clock_that_gives_now_is_not_after_now():
    # time.time() readings taken as now and as the action's ts: both must land on the same microsecond
    # (round(ts * 1e6) was one µs later than datetime.fromtimestamp for ~6 % of them, e.g. the first)
    rng = np.random.default_rng(0)
    for t in [1768003476.0423315, *(1768003200.0 + rng.uniform(0, 86400, 2000))]:
        now = dt.datetime.fromtimestamp(t, dt.UTC)
        assert check_recent([(P[0], "save", t)], us(now)).pins.tolist() == [P[0]], t
    assert check_recent([(P[0], "save", np.float64(1.5))], 1_500_000).pins.tolist() == [P[0]]
    with pytest.raises(RequestError, match="after the request's now"):
        check_recent([(P[0], "save", 1.500001)], 1_500_000)


def test_without_now_the_times_are_not_compared():
    later = NOW + dt.timedelta(days=3)
    assert check_recent([(P[0], "save", later)], None).pins.tolist() == [P[0]]
    with pytest.raises(RequestError, match="after the request's now"):
        check_recent([(P[0], "save", later)], us(NOW))


def test_merged_puts_the_session_first_once_each_and_caps():
    snap = np.array([P[1], P[2], P[3]], np.int64)
    assert merged(np.array([P[9], P[2]]), snap, 10).tolist() == [P[9], P[2], P[1], P[3]]
    assert merged(np.array([P[9], P[8]]), snap, 3).tolist() == [P[9], P[8], P[1]]
    assert merged(np.zeros(0, np.int64), snap, 1) is snap  # no session: the snapshot's list as it is


def test_list_caps_are_the_snapshot_longest_lists_at_least_the_floor():
    from pinrec.schemas.features import FEATURE_VIEWS

    view = ViewSnapshot(view_table(FEATURE_VIEWS[0], {"user_id": [1, 2, 3]},
                                   {"top_category": [None] * 3, "last_saved_pins": [[1, 2, 3, 4, 5, 6, 7], None, [1]],
                                    "last_closeup_pins": [[], [], [2]]}))
    assert list_caps(view, 5) == {"user__last_saved_pins": 7, "user__last_closeup_pins": 5}


# ---------------------------------------------------------------- through recommend() on the tiny bundle
class Generic:
    """The bundle's snapshot behind a plain ``lookup``: the recommender takes the generic path."""

    def __init__(self, snapshot: FeatureSnapshot) -> None:
        self.snapshot = snapshot

    def lookup(self, view, keys, now=None):
        return self.snapshot.lookup(view, keys, now)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A store with the tiny bundle whose ranker reads the PinSage user embeddings of the saves and closeups."""
    root = tmp_path_factory.mktemp("session")
    store = Store(str(root / "store"))
    publish(store, "homefeed", write_candidate(root / "c", embedding_features=True), metrics(), LINEAGE,
            version="v1", now=T0, blessing=GATE)
    return store


@pytest.fixture(scope="module")
def bundle(published):
    return load(published.uri, "homefeed")


def rec(bundle, **kwargs) -> Recommender:
    return Recommender(bundle, RecommendConfig(**kwargs))


def test_session_actions_join_the_recent_lists_on_both_feature_paths(bundle):
    fast = rec(bundle)
    generic = Recommender(bundle, fast.config, features=Generic(fast.features))
    recent = [(P[50], "save", NOW - dt.timedelta(seconds=9)), (P[20], "save", NOW - dt.timedelta(seconds=5)),
              (P[10], "closeup", NOW - dt.timedelta(seconds=1)), (P[33], "closeup", NOW - dt.timedelta(seconds=2))]
    assert USER_SAVES[2] == [PIN_IDS[10], PIN_IDS[20], PIN_IDS[30]] and USER_CLOSEUPS[2] == [PIN_IDS[40], PIN_IDS[10]]
    for r in (fast, generic):
        req = r._request(2, CTX, recent)
        # session first (newest first), then the snapshot's; P[20] once, at its session position
        assert req.saves.tolist() == [P[20], P[50], P[10], P[30]]
        assert req.closeups.tolist() == [P[10], P[33], P[40]]
        assert req.session.tolist() == [P[10], P[33], P[20], P[50]]
        plain = r._request(2, CTX)
        assert plain.saves.tolist() == [P[10], P[20], P[30]] and plain.closeups.tolist() == [P[40], P[10]]
        assert plain.session.tolist() == []
    # capped as the snapshot caps them: its longest saves list (3) is under ann_queries (5), so 5
    many = [(P[i], "save", NOW - dt.timedelta(seconds=i)) for i in (41, 42, 43, 44)]
    assert fast._request(2, CTX, many).saves.tolist() == [P[41], P[42], P[43], P[44], P[10]]
    assert rec(bundle, ann_queries=1)._request(2, CTX, many).saves.tolist() == [P[41], P[42], P[43]]


def test_the_ann_channel_queries_the_session_saves_first(bundle):
    r = rec(bundle, channels=("ann",), ann_candidates=12)
    got = r.candidates(2, CTX, recent=[(P[50], "save", NOW)])
    # the same as the ANN channel over saves [P[50], P[10], P[20], P[30]] given as query embeddings
    x = embeddings()
    want = r.candidates(None, CTX, query=x[[50, 10, 20, 30]], exclude=[P[50], P[10], P[20], P[30]])
    assert got.pin_ids.tolist() == want.pin_ids.tolist() and len(got) >= 8
    assert got.pin_ids.tolist() != r.candidates(2, CTX).pin_ids.tolist()


def test_session_pins_are_never_returned(bundle):
    r = rec(bundle, category_cap=0)
    recent = [(P[i], a, NOW) for i, a in ((0, "save"), (1, "closeup"), (2, "save"), (3, "closeup"))]
    for user in (2, 99, None):
        every = {x.pin_id for x in r.recommend(user, CTX, k=N)}
        with_session = {x.pin_id for x in r.recommend(user, CTX, k=N, recent=recent)}
        assert {P[0], P[1], P[2], P[3]} & every  # they would be served otherwise
        assert not {P[0], P[1], P[2], P[3]} & with_session and with_session
        assert not {P[0], P[1], P[2], P[3]} & set(r.candidates(user, CTX, recent=recent).pin_ids.tolist())


def test_a_long_session_keeps_the_users_own_saves_out(bundle):
    """The merged list is capped for the channels that read it; the filter still drops every save of the
    snapshot (user 2's P[10], P[20], P[30]), not only those the cap kept."""
    r = rec(bundle, channels=("trending",), trending_candidates=N, category_cap=0)
    served = {x.pin_id for x in r.recommend(2, CTX, k=N)}
    assert not {P[10], P[20], P[30]} & served and len(served) > 30
    many = [(P[i], "save", NOW - dt.timedelta(seconds=i)) for i in (41, 42, 43, 44)]
    assert r._request(2, CTX, many).saves.tolist() == [P[41], P[42], P[43], P[44], P[10]]  # P[20], P[30] cut
    with_session = {x.pin_id for x in r.recommend(2, CTX, k=N, recent=many)}
    assert not {P[10], P[20], P[30], P[41], P[42], P[43], P[44]} & with_session and with_session
    assert with_session == served - {P[41], P[42], P[43], P[44]}


def test_an_unknown_user_is_served_from_a_session_save(bundle):
    r = rec(bundle)
    plain = r.candidates(None, CTX)
    assert plain.of("ann").size == 0 and plain.of("category").size == 0
    cand = r.candidates(None, CTX, recent=[(P[6], "save", NOW)])
    assert cand.of("ann").size > 0
    # the category channel serves the session pin's category (the user has no top category)
    assert {CATS[P.index(p)] for p in cand.of("category").tolist()} == {CATS[6]}
    out = r.recommend(None, CTX, k=20, recent=[(P[6], "save", NOW)])
    assert out and {c for x in out for c in x.channels} & {"ann", "category"}


def test_the_ranker_still_reads_the_snapshot_lists(bundle):
    """Training/serving parity: a pin's scores are the same with and without the session."""
    r = rec(bundle, category_cap=0)
    base = {x.pin_id: (x.score, x.p) for x in r.recommend(2, CTX, k=N)}
    recent = [(P[50], "save", NOW), (P[33], "closeup", NOW)]
    now = {x.pin_id: (x.score, x.p) for x in r.recommend(2, CTX, k=N, recent=recent)}
    shared = set(base) & set(now)
    assert len(shared) > 20 and all(base[p] == now[p] for p in shared)


def test_loader_recommender_passes_recent(published):
    follow = Recommender.from_loader(Loader(published.uri, "homefeed"), RecommendConfig(category_cap=0))
    recent = [(P[0], "save", NOW)]
    assert P[0] in {x.pin_id for x in follow.recommend(None, CTX, k=N)}
    assert P[0] not in {x.pin_id for x in follow.recommend(None, CTX, k=N, recent=recent)}
    assert follow.candidates(None, CTX, recent=recent).of("ann").size > 0
    with pytest.raises(RequestError, match="after the request's now"):
        follow.recommend(None, CTX, recent=[(P[0], "save", NOW + dt.timedelta(seconds=1))])


@pytest.mark.parametrize("user", [None, 2])
def test_a_session_save_moves_the_feed_towards_the_saved_pin(bundle, user):
    """Each eligible pin X in turn as the session's one save: the top 10's mean cosine with X's PinSage
    embedding (and, for the unknown user, the share of X's category) against the same request without
    it, averaged over X. Few trending/fresh pins so that the candidates are not the whole catalogue."""
    r = rec(bundle, ann_candidates=8, trending_candidates=5, fresh_candidates=5)
    x = embeddings()
    sim, share = [], []
    for i in np.flatnonzero(~(NSFW | BLOCKED)):
        before = r.recommend(user, CTX, k=10)
        after = r.recommend(user, CTX, k=10, recent=[(P[i], "save", NOW - dt.timedelta(seconds=3))])
        sim.append(np.mean([x[P.index(o.pin_id)] @ x[i] for o in after]) -
                   np.mean([x[P.index(o.pin_id)] @ x[i] for o in before]))
        share.append(np.mean([o.category == CATS[i] for o in after]) - np.mean([o.category == CATS[i] for o in before]))
    # measured: +0.147 (unknown user) and +0.148 (user 2) mean cosine; +0.129 category share (unknown user)
    assert np.mean(sim) > 0.1
    if user is None:
        assert np.mean(share) > 0.1
