"""Daily feature tables on a tiny inline history: exact windows, smoothing, as-known-at timing."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.config import FeatureConfig
from pinrec.jobs.features.features import compute_features

pytestmark = pytest.mark.spark

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def t(day: dt.date, hour: float) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=hour)


@pytest.fixture()
def history(spark):
    impressions = spark.createDataFrame([
        ("i1", 1, 100, t(D1, 9), D1), ("i2", 1, 101, t(D1, 10), D1), ("i3", 1, 100, t(D2, 9), D2),
        ("i4", 2, 101, t(D2, 9), D2),
    ], "event_id string, user_id bigint, pin_id bigint, ts timestamp, dt date")
    actions = spark.createDataFrame([
        ("a1", "i1", 1, 100, "closeup", t(D1, 9.01), None, D1),
        ("a2", "i1", 1, 100, "save", t(D1, 9.5), 7, D1),
        ("a3", "i3", 1, 100, "closeup", t(D2, 9.01), None, D2),
        ("a4", "i2", 1, 101, "closeup", t(D2, 0.5), None, D2),   # a closeup of D1's impression made on D2
    ], "event_id string, impression_id string, user_id bigint, pin_id bigint, type string, ts timestamp, "
       "board_id bigint, dt date")
    pins = spark.createDataFrame([
        (100, "art", t(D1, 0)), (101, "food", t(D1, 12)), (102, "art", t(D2, 12)),
    ], "pin_id bigint, category string, created_at timestamp")
    edges = spark.createDataFrame([(100, 7, t(D1, 9.5), D1), (100, 8, t(D2, 1), D2)],
                                  "pin_id bigint, board_id bigint, saved_at timestamp, dt date")
    return impressions, actions, pins, edges


def rows(df, *keys):
    return {tuple(r[k] for k in keys): r.asDict() for r in df.collect()}


def test_user_features_count_actions_by_their_own_time(spark, history):
    cfg = FeatureConfig(prior_strength=2.0, publish_delay_s=600, last_closeup_pins=2)
    tables = compute_features(*history, [D1, D2], cfg)
    user = rows(tables.user, "user_id", "dt")
    u1d1 = user[(1, D1)]
    assert (u1d1["impressions_1d"], u1d1["closeups_1d"], u1d1["saves_1d"]) == (2, 1, 1)
    assert u1d1["feature_ts"] == t(D2, 0) and u1d1["created_ts"] == t(D2, 0) + dt.timedelta(minutes=10)
    # global rate on D1 = 1 closeup / 2 impressions; smoothed (1 + 2 * 0.5) / (2 + 2) = 0.5
    assert u1d1["closeup_rate_30d"] == pytest.approx(0.5)
    assert u1d1["last_saved_pins"] == [100] and u1d1["last_closeup_pins"] == [100]
    assert u1d1["days_since_last_save"] == pytest.approx(14.5 / 24)
    assert (u1d1["top_category"], u1d1["top_category_share"]) == ("art", 1.0)
    u1d2 = user[(1, D2)]
    assert (u1d2["impressions_1d"], u1d2["closeups_1d"], u1d2["impressions_7d"], u1d2["closeups_30d"]) == (1, 2, 3, 3)
    assert (u1d2["top_category"], u1d2["top_category_share"]) == ("art", pytest.approx(2 / 3))
    # closeups by their own time, newest first, cut at 2: a3 (D2 9:01, pin 100), a4 (D2 0:30, pin 101)
    assert u1d2["last_closeup_pins"] == [100, 101]
    assert (2, D1) not in user  # no activity yet: no row, the join reports it missing
    assert user[(2, D2)]["closeups_30d"] == 0 and user[(2, D2)]["last_saved_pins"] is None
    assert user[(2, D2)]["last_closeup_pins"] is None


def test_pin_and_cross_features(spark, history):
    tables = compute_features(*history, [D1, D2], FeatureConfig(prior_strength=2.0))
    pin = rows(tables.pin, "pin_id", "dt")
    assert set(pin) == {(100, D1), (101, D1), (100, D2), (101, D2), (102, D2)}  # 102 exists from D2 on
    assert pin[(100, D1)]["board_count"] == 1 and pin[(100, D2)]["board_count"] == 2
    assert pin[(101, D1)]["age_days"] == pytest.approx(0.5)
    assert (pin[(100, D2)]["impressions_30d"], pin[(100, D2)]["closeups_30d"], pin[(100, D2)]["saves_30d"]) == (2, 2, 1)
    assert pin[(102, D2)]["category"] == "art" and pin[(102, D2)]["impressions_30d"] == 0
    cross = rows(tables.user_category, "user_id", "category", "dt")
    assert (cross[(1, "food", D2)]["impressions_30d"], cross[(1, "food", D2)]["closeups_30d"]) == (1, 1)
    assert (cross[(1, "art", D2)]["impressions_30d"], cross[(1, "art", D2)]["closeups_30d"]) == (2, 2)


def test_a_recomputed_day_keeps_its_times_and_its_new_value_is_known_from_created_ts(spark, history):
    """A day rebuilt after a late event of that day was ingested: same feature_ts and created_ts
    (fixed by the day, not by the rebuild), the new value; the join then attaches it from
    created_ts on, and nothing of the day before it (docs/features.md: "known" is by event time)."""
    from pyspark.sql import functions as F

    from pinrec.jobs.features.pit_join import point_in_time_join
    from pinrec.schemas.features import USER_FEATURES

    impressions, actions, pins, edges = history
    cfg = FeatureConfig(publish_delay_s=600)
    first = rows(compute_features(impressions, actions, pins, edges, [D1], cfg).user, "user_id")[(1,)]
    late = spark.createDataFrame([("a5", "i2", 1, 101, "closeup", t(D1, 23.5), None, D1)], actions.schema)
    table = compute_features(impressions, actions.unionByName(late), pins, edges, [D1], cfg).user
    again = rows(table, "user_id")[(1,)]
    assert (first["closeups_1d"], again["closeups_1d"]) == (1, 2)
    assert (again["feature_ts"], again["created_ts"]) == (first["feature_ts"], first["created_ts"]) \
        == (t(D2, 0), t(D2, 0) + dt.timedelta(minutes=10))
    spine = spark.createDataFrame([("before", 1, t(D2, 0.1)), ("at", 1, t(D2, 0) + dt.timedelta(minutes=10))],
                                  "event_id string, user_id bigint, ts timestamp")
    joined = point_in_time_join(spine, table, USER_FEATURES).select("event_id", "user__closeups_1d", "user__missing")
    assert sorted(tuple(r) for r in joined.orderBy(F.col("event_id")).collect()) == [("at", 2, False), ("before", None, True)]


@pytest.mark.slow
def test_rebuilding_a_day_replaces_only_that_day(spark, tiny_world):
    from pinrec.jobs.features.features import build_features

    cfg, result = tiny_world  # the demo already built every day once
    path = f"{cfg.storage.warehouse}/features_user"
    before = {r["dt"]: r["count"] for r in spark.read.format("delta").load(path).groupBy("dt").count().collect()}
    last = max(result.landing.days)
    written = build_features(spark, cfg.storage.warehouse, [last], cfg.features)
    after = {r["dt"]: r["count"] for r in spark.read.format("delta").load(path).groupBy("dt").count().collect()}
    assert after == before
    assert written["user"] == before[last]


def test_a_feature_added_to_a_view_becomes_a_new_column_of_the_table(spark, tmp_path):
    """A warehouse built before a view gained a feature: rebuilding a day adds the column
    instead of failing the write; the days not rebuilt read it as null."""
    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog(spark, str(tmp_path))
    path = catalog.path("features_pin")
    old = spark.createDataFrame([(1, 0.5, D1), (1, 0.6, D2)], "pin_id bigint, closeup_rate_30d double, dt date")
    old.write.format("delta").partitionBy("dt").save(path)
    new = spark.createDataFrame([(1, 0.7, 1.2, D2)],
                                "pin_id bigint, closeup_rate_30d double, closeup_coec_30d double, dt date")
    with pytest.raises(Exception, match="(?i)schema|metadata"):
        catalog.write("features_pin", new, days=[D2])  # without add_columns a new column fails the write
    catalog.write("features_pin", new, days=[D2], add_columns=True)
    got = {r["dt"]: (r["closeup_rate_30d"], r["closeup_coec_30d"]) for r in spark.read.format("delta").load(path).collect()}
    assert got == {D1: (0.5, None), D2: (0.7, 1.2)}


def test_a_day_without_impressions_in_its_window_is_refused_and_nothing_is_written(spark, tmp_path):
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog(spark, str(tmp_path))
    catalog.write("impressions", spark.createDataFrame([("i1", 1, 100, t(D1, 9), D1)],
                                                       "event_id string, user_id bigint, pin_id bigint, "
                                                       "ts timestamp, dt date"), days=[D1])
    before, after = dt.date(2025, 12, 31), D1 + dt.timedelta(days=30)  # the day before; just past the window
    with pytest.raises(FileNotFoundError, match=rf"no impressions were ingested in the 30 days up to "
                                                rf"\['{before}', '{after}'\].*run `pinrec ingest`"):
        build_features(spark, catalog, [before, D2, after], FeatureConfig())
    assert not catalog.exists("features_user") and not catalog.exists("features_pin")
