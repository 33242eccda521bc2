"""Point-in-time join: exact cases, a brute-force reference on random histories, no leakage, on
three paths (the shuffle with a window or with validity intervals and a hash join, and the broadcast
lookup);
several views at once."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinrec.jobs.features.pit_join import (
    FeatureTableError,
    point_in_time_join,
    point_in_time_join_many,
)
from pinrec.schemas.features import Feature, FeatureView

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 1, 1)
VIEW = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(hours=10))
SPINE_SCHEMA = "event_id string, user_id bigint, ts timestamp"
FEATURE_SCHEMA = "user_id bigint, feature_ts timestamp, created_ts timestamp, saves bigint"
PATHS = {  # the join's arguments forcing each path
    "window": {"broadcast_max_bytes": 0, "shuffle_join": "window"},
    "interval": {"broadcast_max_bytes": 0, "shuffle_join": "interval"},
    "broadcast": {"broadcast_max_bytes": float("inf")},
}


@pytest.fixture(params=sorted(PATHS))
def path(request):
    return request.param


def plan_of(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def run(spark, spine_rows, feature_rows, view=VIEW, path="window", validate=True):
    spine = spark.createDataFrame(spine_rows, SPINE_SCHEMA)
    features = spark.createDataFrame(feature_rows, FEATURE_SCHEMA)
    df = point_in_time_join(spine, features, view, validate=validate, **PATHS[path])
    plan = plan_of(df)
    assert ("MapInArrow" in plan, "Exchange" in plan) == {"window": (False, True), "interval": (False, True),
                                                          "broadcast": (True, False)}[path]
    out = df.collect()
    return {r["event_id"]: (r["u__saves"], r["u__feature_ts"], r["u__missing"]) for r in out}


def reference(spine_rows, feature_rows, ttl: dt.timedelta):
    """Brute force: for each event, scan every feature row. Of the rows known at t the greatest
    (feature_ts, created_ts) wins; rows equal in both, the greatest value (null lowest)."""
    out = {}
    for event_id, key, t in spine_rows:
        known = [f for f in feature_rows
                 if key is not None and f[0] == key and f[1] <= t and f[2] <= t and f[1] >= t - ttl]
        if known:
            best = max(known, key=lambda f: (f[1], f[2], f[3] is not None, f[3] or 0))
            out[event_id] = (best[3], best[1], False)
        else:
            out[event_id] = (None, None, True)
    return out


def test_exact_cases(spark, path):
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
    got = run(spark, spine, features, path=path)
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


def test_a_late_old_value_does_not_shadow_a_newer_known_one(spark, path):
    features = [(1, h(8), h(8), 80), (1, h(5), h(9), 50)]  # the older value arrives last
    assert run(spark, [("e", 1, h(9.5))], features, path=path) == {"e": (80, h(8), False)}


def test_feature_rows_from_the_future_change_nothing(spark, path):
    spine = [(f"e{i}", i % 3, h(i)) for i in range(12)]
    past = [(k, h(t), h(t), 100 * k + t) for k in range(3) for t in range(0, 12, 3)]
    future = [(k, h(t), h(t), -1) for k in range(3) for t in range(12, 20)]
    late_written = [(k, h(t + 0.5), h(50), -2) for k in range(3) for t in range(0, 12, 3)]
    assert run(spark, spine, past, path=path) == run(spark, spine, past + future + late_written, path=path)


US = dt.timedelta(microseconds=1)


def test_microsecond_edges_and_values_written_before_they_are_valid(spark, path):
    """Every boundary holds to the microsecond, also before 1970 (negative epochs): a value is known
    from max(feature_ts, created_ts) on, inclusive; fresh up to feature_ts + ttl, inclusive. A row
    written before it is valid (created_ts < feature_ts) is known at its feature_ts, not earlier."""
    f = h(0) + dt.timedelta(microseconds=123457)
    old = dt.datetime(1960, 5, 5, 3, 4, 5, 6)
    ttl = VIEW.ttl
    features = [
        (1, f, f, 1),
        (2, f, f + 7 * US, 2),                          # written 7 us after it is valid
        (3, f + US, f - dt.timedelta(hours=1), 3),      # written an hour before it is valid
        (4, old, old + US, 4), (4, old + ttl, old + ttl, 5),
    ]
    spine = [
        ("1-before", 1, f - US), ("1-at", 1, f), ("1-ttl", 1, f + ttl), ("1-ttl+1us", 1, f + ttl + US),
        ("2-at-fts", 2, f), ("2-before-cts", 2, f + 6 * US), ("2-at-cts", 2, f + 7 * US),
        ("3-at-cts", 3, f - dt.timedelta(hours=1)), ("3-before-fts", 3, f), ("3-at-fts", 3, f + US),
        ("4-at-fts", 4, old), ("4-at-cts", 4, old + US), ("4-next", 4, old + ttl), ("4-ttl+1us", 4, old + 2 * ttl + US),
    ]
    got = run(spark, spine, features, path=path)
    assert got == {
        "1-before": (None, None, True), "1-at": (1, f, False), "1-ttl": (1, f, False),
        "1-ttl+1us": (None, None, True),
        "2-at-fts": (None, None, True), "2-before-cts": (None, None, True), "2-at-cts": (2, f, False),
        "3-at-cts": (None, None, True), "3-before-fts": (None, None, True), "3-at-fts": (3, f + US, False),
        "4-at-fts": (None, None, True), "4-at-cts": (4, old, False), "4-next": (5, old + ttl, False),
        "4-ttl+1us": (None, None, True),
    }
    assert got == reference(spine, features, ttl)


def test_bad_inputs(spark):
    with pytest.raises(FeatureTableError, match=r"duplicate \(user_id, feature_ts\) rows, e.g. \(1, "):
        run(spark, [("e", 1, h(1))], [(1, h(0), h(0), 1), (1, h(0), h(0), 2)])
    with pytest.raises(FeatureTableError, match="null 'ts'"):
        run(spark, [("e", 1, None)], [(1, h(0), h(0), 1)])
    for ttl in (dt.timedelta(0), dt.timedelta(hours=10, milliseconds=500), dt.timedelta(microseconds=5)):
        with pytest.raises(ValueError, match="ttl must be a positive whole number of seconds"):
            FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=ttl)
    with pytest.raises(FeatureTableError, match="lacks columns"):
        point_in_time_join(spark.createDataFrame([("e", 1, h(1))], SPINE_SCHEMA),
                           spark.createDataFrame([(1, h(0))], "user_id bigint, feature_ts timestamp"), VIEW)


def test_rows_the_join_ignores_are_not_refused_as_duplicates(spark, path):
    """Keyless rows and rows without a feature_ts are ignored by every path, so two of them with the same
    (key, feature_ts) are no duplicate to refuse."""
    features = [(1, h(0), h(0), 1), (None, h(0), h(0), 2), (None, h(0), h(0), 3), (2, None, h(0), 4),
                (2, None, h(0), 5)]
    assert run(spark, [("e", 1, h(1)), ("f", 2, h(1))], features, path=path) == {
        "e": (1, h(0), False), "f": (None, None, True)}


def test_a_spine_key_narrower_than_the_feature_key(spark, path):
    """An int spine key against a bigint feature table holding ids beyond int: each path answers."""
    spine = spark.createDataFrame([("e", 1, h(5)), ("f", 2, h(5))], "event_id string, user_id int, ts timestamp")
    features = spark.createDataFrame([(1, h(1), h(1), 4), (2 ** 40, h(1), h(1), 5), (2 ** 32 + 2, h(1), h(1), 6)],
                                     FEATURE_SCHEMA)
    out = point_in_time_join(spine, features, VIEW, **PATHS[path]).collect()
    assert sorted((r["event_id"], r["u__saves"]) for r in out) == [("e", 4), ("f", None)]


def test_a_view_whose_created_ts_is_its_feature_ts(spark, path):
    """One column for both times (a value known as soon as valid): every path answers alike."""
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(hours=10),
                       feature_ts="valid_at", created_ts="valid_at")
    features = spark.createDataFrame([(1, h(0), 10), (1, h(5), 50), (2, h(0), 7)],
                                     "user_id bigint, valid_at timestamp, saves bigint")
    spine = spark.createDataFrame([("a", 1, h(4)), ("b", 1, h(5)), ("c", 2, h(11))], SPINE_SCHEMA)
    out = point_in_time_join(spine, features, view, **PATHS[path]).collect()
    assert {r["event_id"]: (r["u__saves"], r["u__feature_ts"], r["u__missing"]) for r in out} == {
        "a": (10, h(0), False), "b": (50, h(5), False), "c": (None, None, True)}


def test_column_types_are_checked_where_the_join_starts(spark):
    """Mismatched types are refused naming the view and column (the window path's union would cast
    them: "007" would meet 7, "abc" fail mid-job); int against bigint and a date spine still join."""
    features = spark.createDataFrame([(7, h(0), h(0), 5)], FEATURE_SCHEMA)
    strings = spark.createDataFrame([("e", "007", h(1))], "event_id string, user_id string, ts timestamp")
    with pytest.raises(FeatureTableError, match=r"feature view 'u': key column 'user_id' is string in the spine but "
                                                r"bigint in the feature table"):
        point_in_time_join(strings, features, VIEW)
    epochs = spark.createDataFrame([("e", 7, 3600)], "event_id string, user_id bigint, ts bigint")
    with pytest.raises(FeatureTableError, match=r"spine time column 'ts' is bigint; use timestamp, timestamp_ntz, date"):
        point_in_time_join(epochs, features, VIEW)
    text_times = spark.createDataFrame([(7, "2026-01-01", h(0), 5)],
                                       "user_id bigint, feature_ts string, created_ts timestamp, saves bigint")
    with pytest.raises(FeatureTableError, match=r"feature view 'u': time column 'feature_ts' is string"):
        point_in_time_join(spark.createDataFrame([("e", 7, h(1))], SPINE_SCHEMA), text_times, VIEW)
    days = spark.createDataFrame([("e", 7, T0.date())], "event_id string, user_id int, ts date")
    assert [(r["event_id"], r["u__saves"]) for r in point_in_time_join(days, features, VIEW).collect()] == [("e", 5)]


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
def test_matches_brute_force_on_random_histories(spark, path, history):
    spine_rows, feature_rows, ttl = history
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=ttl)
    assert run(spark, spine_rows, feature_rows, view, path) == reference(spine_rows, feature_rows, ttl)


# --- duplicate (key, feature_ts) rows, validate=False ----------------------------------------

# Two versions of user 1's h(1) value: 10 written at once, 5 written at h(3). Before h(3) only 10
# is known; from h(3) on the later version replaces it.
SIX_ROWS_FEATURES = [(1, h(0), h(0), 1), (1, h(1), h(3), 5), (1, h(1), h(1), 10)]
SIX_ROWS_SPINE = [("before", 1, h(0.5)), ("between", 1, h(2)), ("at-rewrite", 1, h(3))]


@pytest.mark.parametrize("reverse", [False, True], ids=["late-row-first", "late-row-last"])
def test_duplicate_feature_ts_each_event_sees_only_what_was_known(spark, path, reverse):
    features = SIX_ROWS_FEATURES[::-1] if reverse else SIX_ROWS_FEATURES
    got = run(spark, SIX_ROWS_SPINE, features, path=path, validate=False)
    assert got == {"before": (1, h(0), False), "between": (10, h(1), False), "at-rewrite": (5, h(1), False)}
    assert got == reference(SIX_ROWS_SPINE, features, VIEW.ttl)


def test_exact_duplicate_rows_take_the_greatest_value(spark, path):
    """Rows equal in key, feature_ts and created_ts: both paths take Spark's max of the values."""
    features = [(1, h(1), h(1), 3), (1, h(1), h(1), None), (1, h(1), h(1), 7), (1, h(1), h(1), 5),
                (2, h(1), h(1), None), (2, h(1), h(1), None)]
    got = run(spark, [("e1", 1, h(2)), ("e2", 2, h(2))], features, path=path, validate=False)
    assert got == {"e1": (7, h(1), False), "e2": (None, h(1), False)}


@st.composite
def histories_with_duplicates(draw):
    """Like :func:`histories`, with rewrites: further rows for an earlier (key, feature_ts), written
    at the same or another time, with small values (equal rows and nulls happen)."""
    feature_rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        if feature_rows and draw(st.booleans()):
            key, fts = draw(st.sampled_from(feature_rows))[:2]
        else:
            key, fts = draw(st.integers(min_value=0, max_value=3)), h(draw(hours))
        created = fts + dt.timedelta(hours=draw(st.sampled_from([0, 0, 1, 2, 5])))
        feature_rows.append((key, fts, created, draw(st.one_of(st.none(), st.integers(min_value=-2, max_value=2)))))
    spine_rows = [(f"e{i}", draw(keys), h(draw(hours))) for i in range(draw(st.integers(min_value=1, max_value=25)))]
    ttl = dt.timedelta(hours=draw(st.sampled_from([1, 4, 12])))
    return spine_rows, feature_rows, ttl


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories_with_duplicates())
def test_matches_brute_force_with_duplicate_rows(spark, path, history):
    spine_rows, feature_rows, ttl = history
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=ttl)
    got = run(spark, spine_rows, feature_rows, view, path, validate=False)
    assert got == reference(spine_rows, feature_rows, ttl)


@pytest.mark.parametrize("rows_per_bucket", [8, 1])
def test_interval_path_narrows_the_buckets_of_a_hot_key(spark, monkeypatch, rows_per_bucket):
    """A key updated every few minutes under a 12-hour TTL (hundreds of rows per bucket) gets finer
    buckets (level > 0) and still answers as the brute force, beside sparse keys; with one row per
    bucket allowed, nearly every key has a level."""
    import random

    from pinrec.jobs.features import pit_interval

    monkeypatch.setattr(pit_interval, "ROWS_PER_BUCKET", rows_per_bucket)
    rng = random.Random(3)
    ttl = dt.timedelta(hours=12)
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=ttl)
    feature_rows = [(1, T0 + dt.timedelta(minutes=5 * i), T0 + dt.timedelta(minutes=5 * i + rng.choice([0, 0, 7])), i)
                    for i in range(400)]  # 400 rows in 33 h
    feature_rows += [(k, h(f := rng.randrange(40)), h(f + rng.choice([0, 1])), 1000 + k) for k in (2, 3, 4)
                     for _ in range(3)]
    feature_rows = list({(k, f): (k, f, c, v) for k, f, c, v in feature_rows}.values())
    spine_rows = [(f"e{i}", rng.choice([1, 1, 2, 3, 4, 5, None]), T0 + dt.timedelta(minutes=rng.randrange(60 * 50)))
                  for i in range(120)]
    features = spark.createDataFrame(feature_rows, FEATURE_SCHEMA)
    hot = {r[0]: r[1] for r in pit_interval.levels([(features, view)], pit_interval.bucket_width(view),
                                                   features.schema["user_id"].dataType).collect()}
    assert hot[1] >= 2 and (len(hot) > 1) == (rows_per_bucket == 1)
    got = run(spark, spine_rows, feature_rows, view, path="interval")
    assert got == reference(spine_rows, feature_rows, ttl)
    assert sum(not missing for _, _, missing in got.values()) > 30


def test_spine_columns_named_like_the_paths_helpers_are_kept(spark, path):
    """Spine columns called value, next, start (or with the join's own prefixes refused by name)."""
    spine = spark.createDataFrame([("e", 1, h(5), "v", 2, 3)],
                                  "event_id string, user_id bigint, ts timestamp, value string, next int, start int")
    features = spark.createDataFrame([(1, h(1), h(1), 4)], FEATURE_SCHEMA)
    out = point_in_time_join(spine, features, VIEW, **PATHS[path]).collect()
    assert [(r["value"], r["next"], r["start"], r["u__saves"]) for r in out] == [("v", 2, 3, 4)]
    with pytest.raises(FeatureTableError, match="__pit_value"):
        point_in_time_join(spine.withColumnRenamed("value", "__pit_value"), features, VIEW, **PATHS[path])


def test_composite_entity_keys(spark, path):
    view = FeatureView("uc", ("user_id", "category"), (Feature("rate", "float64"),), ttl=dt.timedelta(days=1))
    spine = spark.createDataFrame([("e1", 1, "art", h(5)), ("e2", 1, "food", h(5)), ("e3", None, "art", h(5))],
                                  "event_id string, user_id bigint, category string, ts timestamp")
    features = spark.createDataFrame([(1, "art", h(1), h(1), 0.5), (1, "food", h(6), h(6), 0.9)],
                                     "user_id bigint, category string, feature_ts timestamp, created_ts timestamp, "
                                     "rate double")
    out = point_in_time_join(spine, features, view, **PATHS[path])
    got = {r["event_id"]: (r["uc__rate"], r["uc__missing"]) for r in out.collect()}
    assert got == {"e1": (0.5, False), "e2": (None, True), "e3": (None, True)}


# --- several views at once -------------------------------------------------------------------

USER = FeatureView("user", ("user_id",), (Feature("saves", "int64"), Feature("tags", "array<int64>")),
                   ttl=dt.timedelta(hours=10))
USER_CAT = FeatureView("user_cat", ("user_id", "category"), (Feature("rate", "float64"),), ttl=dt.timedelta(hours=10))
PIN = FeatureView("pin", ("pin_id",), (Feature("age", "float64"),), ttl=dt.timedelta(hours=10))
WIDE_SPINE = ("event_id string, user_id bigint, pin_id bigint, category string, ts timestamp, "
              "position int, weights array<double>, context map<string, string>, `dt.day` date")


def many_inputs(spark):
    spine = spark.createDataFrame([
        ("a", 1, 10, "art", h(5), 0, [0.5], {"k": "v"}, T0.date()),
        ("b", 1, 11, None, h(5), 1, None, None, T0.date()),   # null category: only user_cat misses
        ("c", None, 10, "art", h(5), 2, [], {}, T0.date()),   # null user: user and user_cat miss
        ("d", 2, None, "food", h(7), 3, [1.0], {"x": None}, T0.date()),
        ("e", 1, 10, "food", h(9.5), 4, None, None, None),
    ], WIDE_SPINE)
    user = spark.createDataFrame([(1, h(1), h(1), 10, [1, 2]), (1, h(8), h(9), 80, [8]), (2, h(6), h(6), 20, None),
                                  (None, h(0), h(0), 99, [9])],
                                 "user_id bigint, feature_ts timestamp, created_ts timestamp, saves bigint, tags array<bigint>")
    user_cat = spark.createDataFrame([(1, "art", h(2), h(2), 0.25), (1, "food", h(9), h(9.5), 0.75),
                                      (1, None, h(0), h(0), 9.0), (2, "food", h(8), h(8), 0.5)],
                                     "user_id bigint, category string, feature_ts timestamp, created_ts timestamp, rate double")
    pin = spark.createDataFrame([(10, h(4), h(4), 1.5), (11, h(6), h(6), 2.5)],
                                "pin_id bigint, feature_ts timestamp, created_ts timestamp, age double")
    return spine, [(user, USER), (user_cat, USER_CAT), (pin, PIN)]


def as_dict(df):
    return {r["event_id"]: r.asDict() for r in df.collect()}


def test_many_views_exact_cases_and_spine_columns_kept(spark, path):
    spine, joins = many_inputs(spark)
    df = point_in_time_join_many(spine, joins, **PATHS[path])
    assert df.columns == [*spine.columns, "user__saves", "user__tags", "user__feature_ts", "user__missing",
                          "user_cat__rate", "user_cat__feature_ts", "user_cat__missing",
                          "pin__age", "pin__feature_ts", "pin__missing"]
    assert df.schema[:len(spine.columns)] == spine.schema[:]
    got = {k: (v["user__saves"], v["user__tags"], v["user_cat__rate"], v["pin__age"], v["pin__missing"])
           for k, v in as_dict(df).items()}
    assert got == {
        "a": (10, [1, 2], 0.25, 1.5, False),
        "b": (10, [1, 2], None, None, True),     # pin 11 written at h(6) > h(5); no category
        "c": (None, None, None, 1.5, False),
        "d": (20, None, None, None, True),       # user 2's food row is from h(8) > h(7)
        "e": (80, [8], 0.75, 1.5, False),
    }
    original = {r["event_id"]: r.asDict() for r in spine.collect()}
    assert {k: {c: v[c] for c in spine.columns} for k, v in as_dict(df).items()} == original


def test_many_views_answer_when_only_some_output_columns_are_read(spark, path):
    """Reading a subset of the output (Spark then prunes the rest, nested fields included): the
    values read are the full result's."""
    spine, joins = many_inputs(spark)
    df = point_in_time_join_many(spine, joins, **PATHS[path])
    full = {k: (v["user__saves"], v["pin__missing"]) for k, v in as_dict(df).items()}
    some = {r["event_id"]: (r["user__saves"], r["pin__missing"]) for r in
            df.select("event_id", "user__saves", "pin__missing").collect()}
    assert some == full and full["a"] == (10, False)


def test_a_spine_drawn_from_the_feature_table_itself(spark, path):
    """The serving snapshot's shape: the spine is the feature table's own keys at a literal time
    (one source on both sides), an array feature, only found rows kept."""
    from pyspark.sql import functions as F

    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"), Feature("last", "array<int64>")),
                       ttl=dt.timedelta(hours=10))
    features = spark.createDataFrame([(1, h(1), h(1), 10, [1]), (1, h(5), h(5), 50, [5]), (2, h(0), h(0), 7, [])],
                                     "user_id bigint, feature_ts timestamp, created_ts timestamp, saves bigint, "
                                     "last array<bigint>")
    spine = features.select("user_id").distinct().withColumn("ts", F.lit(h(8)).cast("timestamp"))
    joined = point_in_time_join(spine, features, view, **PATHS[path])
    got = joined.where(~F.col("u__missing")).select("user_id", "u__saves", "u__last").collect()
    assert sorted(tuple(r) for r in got) == [(1, 50, [5]), (2, 7, [])]


def test_many_views_equal_chained_single_views_and_share_one_shuffle(spark):
    spine, joins = many_inputs(spark)
    chained = spine
    for features, view in joins:
        chained = point_in_time_join(chained, features, view, **PATHS["window"])
    expected = as_dict(chained)
    for kwargs in PATHS.values():
        df = point_in_time_join_many(spine, joins, **kwargs)
        assert as_dict(df) == expected
    # user and (user, category) share the shuffle by user_id; pin has its own
    plan = plan_of(point_in_time_join_many(spine, joins, **PATHS["window"]))
    assert plan.count("- Exchange ") == 2 and plan.count("Window [") == 3
    plan = plan_of(point_in_time_join_many(spine, joins, **PATHS["interval"]))
    assert plan.count("ShuffledHashJoin") == 3 and "MapInArrow" not in plan


def test_many_views_mixed_paths(spark):
    """A view with a key type the broadcast and interval paths do not take (boolean) takes the window path."""
    spine, joins = many_inputs(spark)
    flag = FeatureView("flag", ("is_new",), (Feature("boost", "float64"),), ttl=dt.timedelta(hours=10))
    spine = spine.withColumn("is_new", spine["position"] % 2 == 0)
    flags = spark.createDataFrame([(True, h(1), h(1), 2.0)], "is_new boolean, feature_ts timestamp, "
                                  "created_ts timestamp, boost double")
    for kwargs in (PATHS["broadcast"], PATHS["interval"]):
        df = point_in_time_join_many(spine, [*joins, (flags, flag)], **kwargs)
        plan = plan_of(df)
        if kwargs is PATHS["broadcast"]:
            assert "MapInArrow" in plan and plan.count("Window [") == 1
        else:  # a window per view over its feature rows, one over spine + flags
            assert plan.count("ShuffledHashJoin") == 3 and plan.count("Window [") == 4
        got = {k: (v["flag__boost"], v["user__saves"]) for k, v in as_dict(df).items()}
        assert got == {"a": (2.0, 10), "b": (None, 10), "c": (2.0, None), "d": (None, 20), "e": (2.0, 80)}


def test_views_sharing_their_first_entity_with_different_ttls(spark, path):
    """``user`` and ``(user, category)`` with TTLs of 1 h and 3 h (the interval path groups by TTL, the
    window path by first entity), and a second user view written late: each view keeps its own TTL
    and created_ts rule, against the brute-force reference per view."""
    from pyspark.sql import functions as F

    short = FeatureView("short", ("user_id",), (Feature("v", "int64"),), ttl=dt.timedelta(hours=1))
    by_cat = FeatureView("by_cat", ("user_id", "category"), (Feature("v", "int64"),), ttl=dt.timedelta(hours=3))
    late = FeatureView("late", ("user_id",), (Feature("v", "int64"),), ttl=dt.timedelta(hours=1))
    short_rows = [(1, h(0), h(0), 10), (1, h(2), h(2), 12), (2, h(0), h(0), 20)]
    cat_rows = [(1, "art", h(0), h(0), 100), (1, "food", h(1), h(1.5), 101), (2, "art", h(2), h(2), 200)]
    late_rows = [(1, h(1), h(1.75), 31), (2, h(0), h(0), 40)]
    spine_rows = [(f"e{i}", u, c, h(t)) for i, (u, c, t) in enumerate(
        [(1, "art", 0.5), (1, "art", 1), (1, "art", 1.5), (1, "food", 1.25), (1, "food", 1.5), (1, "art", 2.5),
         (1, "art", 3), (1, "art", 3.5), (2, "art", 1), (2, "art", 2), (2, "food", 2), (1, None, 2), (None, "art", 2)])]
    spine = spark.createDataFrame(spine_rows, "event_id string, user_id bigint, category string, ts timestamp")
    schema = "user_id bigint, feature_ts timestamp, created_ts timestamp, v bigint"
    joins = [(spark.createDataFrame(short_rows, schema), short),
             (spark.createDataFrame(cat_rows, "user_id bigint, category string, feature_ts timestamp, "
                                               "created_ts timestamp, v bigint"), by_cat),
             (spark.createDataFrame(late_rows, schema), late)]
    df = point_in_time_join_many(spine, joins, **PATHS[path])
    got = {r["event_id"]: {v: (r[f"{v}__v"], r[f"{v}__feature_ts"], r[f"{v}__missing"])
                           for v in ("short", "by_cat", "late")} for r in df.collect()}
    users = [(e, u, t) for e, u, _, t in spine_rows]
    pairs = [(e, None if u is None or c is None else (u, c), t) for e, u, c, t in spine_rows]
    expected = {"short": reference(users, short_rows, short.ttl), "late": reference(users, late_rows, late.ttl),
                "by_cat": reference(pairs, [((u, c), f, w, v) for u, c, f, w, v in cat_rows], by_cat.ttl)}
    assert got == {e: {v: expected[v][e] for v in expected} for e in got}
    assert got["e6"] == {"short": (12, h(2), False), "by_cat": (100, h(0), False), "late": (None, None, True)}
    assert got["e11"]["late"] == (31, h(1), False) and got["e4"]["by_cat"] == (101, h(1), False)
    assert got["e5"]["late"] == (None, None, True)  # known at h(1.75), 1.5 h old at h(2.5)
    assert df.where(F.col("by_cat__missing")).count() == 6


def test_many_views_bad_inputs(spark):
    spine, joins = many_inputs(spark)
    with pytest.raises(ValueError, match="names must be unique"):
        point_in_time_join_many(spine, [joins[0], joins[0]])
    with pytest.raises(ValueError, match="at least one"):
        point_in_time_join_many(spine, [])
    with pytest.raises(FeatureTableError, match="already has columns"):
        point_in_time_join_many(spine.withColumn("pin__age", spine["position"]), joins)


def test_a_spine_time_spark_knows_is_not_null_is_joined_without_a_null_check_job(spark):
    from pyspark.sql import functions as F

    features = spark.createDataFrame([(1, h(1), h(1), 5)], FEATURE_SCHEMA)
    spine = spark.createDataFrame([("a", 1), ("b", 2)], "event_id string, user_id bigint").withColumn(
        "ts", F.lit(h(2)).cast("timestamp"))  # a literal cut-off, as the serving snapshot's spine
    assert not spine.schema["ts"].nullable
    sc = spark.sparkContext
    sc.setJobGroup("pinrec-test-pit-literal", "planning the join")
    try:
        # the window path (the interval path runs one job at planning: whether any key is hot)
        joined = point_in_time_join(spine, features, VIEW, validate=False, **PATHS["window"])
    finally:
        sc.setJobGroup("", "")
    assert sc.statusTracker().getJobIdsForGroup("pinrec-test-pit-literal") == []  # nothing ran yet
    assert sorted((r["event_id"], r["u__saves"]) for r in joined.collect()) == [("a", 5), ("b", None)]
