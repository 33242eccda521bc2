"""Point-in-time join: exact cases, a brute-force reference on random histories, no leakage."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.pit_join import FeatureTableError, point_in_time_join
from schemas.features import Feature, FeatureView

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 1, 1)
VIEW = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(hours=10))
SPINE_SCHEMA = "event_id string, user_id bigint, ts timestamp"
FEATURE_SCHEMA = "user_id bigint, feature_ts timestamp, created_ts timestamp, saves bigint"


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def run(spark, spine_rows, feature_rows, view=VIEW):
    spine = spark.createDataFrame(spine_rows, SPINE_SCHEMA)
    features = spark.createDataFrame(feature_rows, FEATURE_SCHEMA)
    out = point_in_time_join(spine, features, view).collect()
    return {r["event_id"]: (r["u__saves"], r["u__feature_ts"], r["u__missing"]) for r in out}


def reference(spine_rows, feature_rows, ttl: dt.timedelta):
    """Brute force: for each event, scan every feature row."""
    out = {}
    for event_id, key, t in spine_rows:
        known = [f for f in feature_rows
                 if key is not None and f[0] == key and f[1] <= t and f[2] <= t and f[1] >= t - ttl]
        if known:
            best = max(known, key=lambda f: f[1])
            out[event_id] = (best[3], best[1], False)
        else:
            out[event_id] = (None, None, True)
    return out


def test_exact_cases(spark):
    features = [
        (1, h(0), h(0), 10),
        (1, h(5), h(5), 50),
        (1, h(6), h(9), 60),    # written late: unknown before h(9)
        (2, h(0), h(0), 7),
        (None, h(0), h(0), 99),  # keyless feature rows are ignored
    ]
    spine = [
        ("before-any", 1, h(-1)),
        ("equal-ts", 1, h(5)),         # feature_ts == t counts
        ("late-not-yet", 1, h(8)),     # h(6) row not written until h(9)
        ("late-known", 1, h(9)),
        ("ttl-edge", 2, h(10)),        # exactly ttl old: still fresh
        ("ttl-expired", 2, h(10.5)),
        ("unknown-user", 3, h(1)),
        ("null-user", None, h(1)),
    ]
    got = run(spark, spine, features)
    assert got == {
        "before-any": (None, None, True),
        "equal-ts": (50, h(5), False),
        "late-not-yet": (50, h(5), False),
        "late-known": (60, h(6), False),
        "ttl-edge": (7, h(0), False),
        "ttl-expired": (None, None, True),
        "unknown-user": (None, None, True),
        "null-user": (None, None, True),
    }


def test_a_late_old_value_does_not_shadow_a_newer_known_one(spark):
    features = [(1, h(8), h(8), 80), (1, h(5), h(9), 50)]  # the older value arrives last
    assert run(spark, [("e", 1, h(9.5))], features) == {"e": (80, h(8), False)}


def test_feature_rows_from_the_future_change_nothing(spark):
    spine = [(f"e{i}", i % 3, h(i)) for i in range(12)]
    past = [(k, h(t), h(t), 100 * k + t) for k in range(3) for t in range(0, 12, 3)]
    future = [(k, h(t), h(t), -1) for k in range(3) for t in range(12, 20)]
    late_written = [(k, h(t + 0.5), h(50), -2) for k in range(3) for t in range(0, 12, 3)]
    assert run(spark, spine, past) == run(spark, spine, past + future + late_written)


def test_bad_inputs(spark):
    with pytest.raises(FeatureTableError, match=r"duplicate \(user_id, feature_ts\) rows, e.g. \(1, "):
        run(spark, [("e", 1, h(1))], [(1, h(0), h(0), 1), (1, h(0), h(0), 2)])
    with pytest.raises(FeatureTableError, match="null 'ts'"):
        run(spark, [("e", 1, None)], [(1, h(0), h(0), 1)])
    with pytest.raises(ValueError, match="ttl must be positive"):
        FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(0))
    with pytest.raises(FeatureTableError, match="lacks columns"):
        point_in_time_join(spark.createDataFrame([("e", 1, h(1))], SPINE_SCHEMA),
                           spark.createDataFrame([(1, h(0))], "user_id bigint, feature_ts timestamp"), VIEW)


# Small integer hours on few keys make equal timestamps, TTL edges and hot keys common.
hours = st.integers(min_value=0, max_value=30)
keys = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@st.composite
def histories(draw):
    n_features = draw(st.integers(min_value=0, max_value=25))
    seen, feature_rows = set(), []
    for i in range(n_features):
        key = draw(st.integers(min_value=0, max_value=3))
        fts = draw(hours)
        if (key, fts) in seen:
            continue
        seen.add((key, fts))
        lateness = draw(st.sampled_from([0, 0, 0, 1, 5]))
        feature_rows.append((key, h(fts), h(fts + lateness), i))
    spine_rows = [(f"e{i}", draw(keys), h(draw(hours))) for i in range(draw(st.integers(min_value=1, max_value=25)))]
    ttl = dt.timedelta(hours=draw(st.sampled_from([1, 4, 12])))
    return spine_rows, feature_rows, ttl


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
def test_matches_brute_force_on_random_histories(spark, history):
    spine_rows, feature_rows, ttl = history
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=ttl)
    assert run(spark, spine_rows, feature_rows, view) == reference(spine_rows, feature_rows, ttl)


def test_composite_entity_keys(spark):
    view = FeatureView("uc", ("user_id", "category"), (Feature("rate", "float64"),), ttl=dt.timedelta(days=1))
    spine = spark.createDataFrame([("e1", 1, "art", h(5)), ("e2", 1, "food", h(5)), ("e3", None, "art", h(5))],
                                  "event_id string, user_id bigint, category string, ts timestamp")
    features = spark.createDataFrame([(1, "art", h(1), h(1), 0.5), (1, "food", h(6), h(6), 0.9)],
                                     "user_id bigint, category string, feature_ts timestamp, created_ts timestamp, "
                                     "rate double")
    got = {r["event_id"]: (r["uc__rate"], r["uc__missing"]) for r in point_in_time_join(spine, features, view).collect()}
    assert got == {"e1": (0.5, False), "e2": (None, True), "e3": (None, True)}
