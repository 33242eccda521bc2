"""The point-in-time training set: labels, maturity, negatives, splits, no leakage, ground truth."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.config import TrainingSetConfig
from pinrec.jobs.features.training_set import (
    attribute_actions,
    build_training_frame,
    label_impressions,
    sample_negatives,
    split_column,
    split_days,
)
from tests.support.timezones import ZONES, driver_time_zone

pytestmark = pytest.mark.spark

T = dt.datetime(2026, 1, 1, 12)
IMP_SCHEMA = "event_id string, session_id string, ts timestamp"
ACT_SCHEMA = "impression_id string, type string, ts timestamp"


def test_labels_use_the_maturity_window_and_drop_immature_impressions(spark):
    impressions = spark.createDataFrame([
        ("i1", "s1", T), ("i2", "s1", T), ("i3", "s1", T + dt.timedelta(hours=5)),
    ], IMP_SCHEMA)
    actions = spark.createDataFrame([
        ("i1", "closeup", T + dt.timedelta(seconds=3)),
        ("i1", "save", T + dt.timedelta(hours=1)),    # delayed save inside the window: counts
        ("i2", "save", T + dt.timedelta(hours=3)),    # after the window: not a label
        ("i3", "closeup", T + dt.timedelta(hours=5, seconds=1)),
    ], ACT_SCHEMA)
    cutoff = T + dt.timedelta(hours=6)  # i3's 2-hour window closes at T+7h: immature
    got = {r["event_id"]: (r["closeup"], r["save"])
           for r in label_impressions(impressions, actions, cutoff, maturity_s=7200).collect()}
    assert got == {"i1": (1, 1), "i2": (0, 0)}


def test_label_window_boundaries_to_the_microsecond(spark):
    """An action counts from its impression's instant to ``maturity_s`` after it, both ends included;
    a microsecond before the impression or after the window it does not. An impression is kept when
    its window ends before the cut-off, left out when it ends at it: an action at the cut-off instant lies
    in the next day, not ingested yet, and could still make it positive."""
    us, m = dt.timedelta(microseconds=1), dt.timedelta(hours=2)
    cutoff = T + dt.timedelta(hours=6)
    impressions = spark.createDataFrame([
        ("at-start", "s1", T), ("at-end", "s1", T), ("before", "s1", T), ("after", "s1", T),
        ("ends-before-cutoff", "s1", cutoff - m - us), ("ends-at-cutoff", "s1", cutoff - m),
    ], IMP_SCHEMA)
    actions = spark.createDataFrame([
        ("at-start", "closeup", T), ("at-end", "save", T + m), ("before", "closeup", T - us),
        ("after", "save", T + m + us), ("ends-before-cutoff", "save", cutoff - us), ("ends-at-cutoff", "save", cutoff),
    ], ACT_SCHEMA)
    got = {r["event_id"]: (r["closeup"], r["save"])
           for r in label_impressions(impressions, actions, cutoff, maturity_s=int(m.total_seconds())).collect()}
    assert got == {"at-start": (1, 0), "at-end": (0, 1), "before": (0, 0), "after": (0, 0), "ends-before-cutoff": (0, 1)}


def test_actions_naming_only_their_session_label_the_latest_impression_before_them(spark):
    from pyspark.sql import functions as F

    from pinrec.schemas.features import Feature, FeatureView

    impressions = spark.createDataFrame([
        ("i1", 1, 10, "s1", T), ("i2", 1, 10, "s1", T + dt.timedelta(hours=1)), ("i3", 1, 20, "s1", T),
        ("i4", 1, 10, "s2", T),
    ], "event_id string, user_id bigint, pin_id bigint, session_id string, ts timestamp").withColumn("dt", F.to_date("ts"))
    act_schema = "event_id string, impression_id string, user_id bigint, pin_id bigint, session_id string, " \
                 "type string, ts timestamp"
    actions = spark.createDataFrame([
        ("a1", None, 1, 10, "s1", "closeup", T + dt.timedelta(minutes=30)),  # i1: i2 comes after it
        ("a2", None, 1, 10, "s1", "save", T + dt.timedelta(hours=1, minutes=5)),  # i2, the latest before it
        ("a3", None, 1, 20, "s1", "closeup", T - dt.timedelta(minutes=1)),  # before any impression: nothing
        ("a4", "i3", 1, 20, "s1", "save", T + dt.timedelta(minutes=10)),  # linked by its impression id
    ], act_schema)
    attributed = attribute_actions(actions, impressions)
    assert sorted((r["impression_id"], r["type"]) for r in attributed.collect()) == [
        ("i1", "closeup"), ("i2", "save"), ("i3", "save")]
    view = FeatureView("u", ("user_id",), (Feature("n", "int64"),), ttl=dt.timedelta(days=1))
    features = spark.createDataFrame([(1, T, T, 5)], "user_id bigint, feature_ts timestamp, created_ts timestamp, n bigint")
    pins = spark.createDataFrame([(10, "art"), (20, "food")], "pin_id bigint, category string")
    days = [T.date() - dt.timedelta(days=2), T.date() - dt.timedelta(days=1), T.date()]
    frame = build_training_frame(impressions, actions, pins, {"u": features}, days, T + dt.timedelta(hours=6),
                                 TrainingSetConfig(validation_days=1, test_days=1, maturity_s=7200), seed=7,
                                 views=(view,))
    got = {r["event_id"]: (r["closeup"], r["save"]) for r in frame.collect()}
    assert got == {"i1": (1, 0), "i2": (0, 1), "i3": (0, 1), "i4": (0, 0)}  # before: only i3 had a label


@pytest.mark.parametrize("zone", ZONES)
def test_label_maturity_holds_on_a_driver_in_any_time_zone(spark, zone):
    """The maturity cut-off is UTC wherever the driver runs: inputs from aware times, a naive cut-off."""
    def u(hours: float) -> dt.datetime:
        return (T + dt.timedelta(hours=hours)).replace(tzinfo=dt.UTC)

    with driver_time_zone(zone):
        impressions = spark.createDataFrame([("mature", "s1", u(0)), ("open", "s1", u(3))], IMP_SCHEMA)
        actions = spark.createDataFrame([("mature", "save", u(1)), ("open", "save", u(4))], ACT_SCHEMA)
        got = {r["event_id"]: r["save"] for r in
               label_impressions(impressions, actions, T + dt.timedelta(hours=4), maturity_s=7200).collect()}
    assert got == {"mature": 1}  # "open"'s window closes at T+5h, after the cut-off


def test_negatives_are_sampled_within_sessions_with_a_positive(spark):
    rows = [(f"p{i}", "s1", 1, 0) for i in range(5)] + [(f"n{i}", "s1", 0, 0) for i in range(2000)] \
        + [(f"q{i}", "s2", 0, 0) for i in range(50)]
    labelled = spark.createDataFrame(rows, "event_id string, session_id string, closeup int, save int")
    kept = sample_negatives(labelled, rate=0.25, seed=7).collect()
    ids = {r["event_id"] for r in kept}
    assert {f"p{i}" for i in range(5)} <= ids
    assert not any(i.startswith("q") for i in ids)  # a session without positives gives no negatives
    negatives = [r for r in kept if r["event_id"].startswith("n")]
    assert abs(len(negatives) - 500) < 4 * np.sqrt(2000 * 0.25 * 0.75)
    assert {r["sample_weight"] for r in negatives} == {4.0}
    again = {r["event_id"] for r in sample_negatives(labelled, rate=0.25, seed=7).collect()}
    assert again == ids  # deterministic


def test_split_is_temporal_and_refuses_too_few_days():
    days = [dt.date(2026, 1, d) for d in (3, 1, 2, 4)]
    one_each = TrainingSetConfig(validation_days=1, test_days=1)
    assert split_days(days, one_each) == {
        dt.date(2026, 1, 1): "train", dt.date(2026, 1, 2): "train",
        dt.date(2026, 1, 3): "validation", dt.date(2026, 1, 4): "test"}
    with pytest.raises(ValueError, match="still leave a training day"):
        split_days(days[:2], one_each)


def test_split_column_stays_flat_over_years_of_days(spark):
    # a 3-year log has ~1,000 event days: one nested `when` per day overflowed the JVM's stack
    days = [dt.date(2014, 1, 1) + dt.timedelta(days=i) for i in range(0, 6000, 2)]  # gaps: event days only
    splits = split_days(days, TrainingSetConfig(validation_days=2, test_days=3))
    frame = spark.createDataFrame([(d,) for d in days], "dt date").withColumn("split", split_column(splits))
    assert {r["dt"]: r["split"] for r in frame.collect()} == splits
    assert list(splits.values())[-6:] == ["train", "validation", "validation", "test", "test", "test"]


@pytest.fixture(scope="module")
def training_set(spark, tiny_world):
    cfg, result = tiny_world  # the demo built the features and the training set
    report = result.training_set
    frame = spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set").toPandas()
    return cfg, result, report, frame


def test_training_set_reproduces_the_generators_truth(training_set):
    cfg, _result, report, frame = training_set
    truth = pd.concat(pd.read_parquet(p) for p in Path(cfg.storage.landing, "_truth", "impressions").rglob("*.parquet"))
    joined = frame.merge(truth[["event_id", "exam_prob", "p_closeup", "closeup", "save"]], on="event_id",
                         suffixes=("", "_true"))
    assert len(joined) == len(frame) == report.rows > 0
    # Closeups follow within seconds: every label matches the drawn outcome exactly.
    assert (joined["closeup"] == joined["closeup_true"].astype(int)).all()
    # Saves may be delayed past the maturity window: never a false positive.
    assert (joined["save"] <= joined["save_true"].astype(int)).all()
    assert joined["save"].sum() >= 0.8 * joined["save_true"].sum()
    # The label rate per position follows the known position-bias curve.
    for position, g in joined.groupby("position"):
        expected = (g["exam_prob"] * g["p_closeup"]).mean()
        se = np.sqrt(expected * (1 - expected) / len(g))
        assert abs(g["closeup"].mean() - expected) < 4 * se + 1e-9, position
    top, bottom = joined[joined.position <= 3]["closeup"].mean(), joined[joined.position >= 15]["closeup"].mean()
    assert top > 1.5 * bottom


def test_training_set_has_no_leakage_and_is_split_by_day(training_set):
    cfg, _result, report, frame = training_set
    delay = pd.Timedelta(seconds=cfg.features.publish_delay_s)
    for view in ("user", "pin", "user_category"):
        known = frame[~frame[f"{view}__missing"]]
        assert len(known) > 0
        assert (known[f"{view}__feature_ts"] + delay <= known["ts"]).all()
        assert (known[f"{view}__feature_ts"] >= known["ts"] - pd.Timedelta(days=2)).all()
    # Day 1 has no earlier feature row: everything is missing there, nothing is borrowed from later.
    first = frame[frame["dt"] == min(frame["dt"])]
    assert first["user__missing"].all()
    days = sorted(frame["dt"].unique())
    assert [frame[frame.dt == d]["split"].unique().tolist() for d in days] == [["train"], ["validation"], ["test"]]
    assert report.immature_excluded > 0  # the last day's late impressions
    assert set(frame.columns) >= {"position", "device", "country", "surface", "hour", "day_of_week", "sample_weight"}


def test_training_set_records_lineage_in_the_delta_commit(spark, training_set):
    from delta.tables import DeltaTable

    cfg, _result, report, _frame = training_set
    commit = DeltaTable.forPath(spark, f"{cfg.storage.warehouse}/training_set").history(1).collect()[0]
    meta = json.loads(commit["userMetadata"])
    assert meta["negative_rate"] == 1.0
    assert meta["input_versions"]["impressions"] == report.input_versions["impressions"] is not None
    assert set(meta["input_versions"]) == {"impressions", "actions", "pins", "features_user", "features_pin",
                                           "features_user_category"}


def test_a_day_without_impressions_is_a_clear_error(spark, training_set):
    from pinrec.jobs.features.training_set import build_training_set

    cfg, _result, _report, _frame = training_set
    with pytest.raises(FileNotFoundError, match=r"no impressions were ingested for \['2027-01-01'\]"):
        build_training_set(spark, cfg.storage.warehouse, [dt.date(2027, 1, 1)], cfg.training, cfg.seed)


def test_an_empty_actions_table_is_a_clear_error(spark, tmp_path):
    """No actions: no cut-off to take from them (it was a TypeError, None + timedelta)."""
    from pinrec.jobs.features.training_set import build_training_set

    for name in ("impressions", "actions", "pins", "features_user", "features_pin", "features_user_category"):
        rows = [] if name == "actions" else [(1, dt.date(2026, 1, 1))]
        spark.createDataFrame(rows, "x bigint, dt date").write.format("delta").partitionBy("dt").save(
            str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match=r"no actions were ingested \(the actions table at .*actions is "
                                                r"empty\), so the label cut-off .* cannot be set"):
        build_training_set(spark, str(tmp_path), [dt.date(2026, 1, 1)],
                           TrainingSetConfig(validation_days=1, test_days=1), seed=7)


def test_a_day_whose_features_were_not_built_is_refused_not_a_set_without_features(spark, tmp_path):
    """features run for D1 only: D2's rows would silently carry no feature values."""
    from pinrec.jobs.features.training_set import build_training_set

    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    spark.createDataFrame([(dt.datetime(2026, 1, 1, 9), d1), (dt.datetime(2026, 1, 2, 9), d2)],
                          "ts timestamp, dt date").write.format("delta").partitionBy("dt").save(str(tmp_path / "impressions"))
    for name in ("actions", "pins", "features_user", "features_pin", "features_user_category"):
        days = (d1, d2) if name in ("actions", "pins", "features_pin") else (d1,)
        spark.createDataFrame([(1, d) for d in days], "x bigint, dt date").write.format("delta").partitionBy(
            "dt").save(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match=r"no features were built for some of these days \(\{'features_user': "
                                                r"\['2026-01-02'\], 'features_user_category': \['2026-01-02'\]\}\): "
                                                r"run `pinrec features` for those days first"):
        build_training_set(spark, str(tmp_path), [d1, d2], TrainingSetConfig(validation_days=1, test_days=1), seed=7)
    assert not (tmp_path / "training_set").exists()


def test_features_older_than_the_first_impression_by_the_ttl_are_left_out_and_nothing_changes(spark):
    """``first_ts`` prunes each view to ``feature_ts >= first_ts - ttl`` before the join: a row exactly at the
    boundary is still joined (fresh), an older one could only have been joined stale (missing) and is dropped."""
    from pyspark.sql import functions as F

    from pinrec.schemas.features import Feature, FeatureView

    ttl = dt.timedelta(hours=2)
    view = FeatureView("u", ("user_id",), (Feature("n", "int64"),), ttl=ttl)
    impressions = spark.createDataFrame([
        ("at-ttl", 1, 10, "s1", T), ("stale", 2, 10, "s2", T), ("later", 3, 10, "s3", T + dt.timedelta(hours=5)),
    ], "event_id string, user_id bigint, pin_id bigint, session_id string, ts timestamp").withColumn("dt", F.to_date("ts"))
    actions = spark.createDataFrame([], "event_id string, impression_id string, user_id bigint, pin_id bigint, "
                                        "session_id string, type string, ts timestamp")
    features = spark.createDataFrame([
        (1, T - ttl, T - ttl, 1),  # exactly at the boundary of the first impression: fresh for "at-ttl"
        (2, T - ttl - dt.timedelta(microseconds=1), T - ttl, 2),  # 1 us older: stale for "stale", pruned
        (3, T - ttl - dt.timedelta(hours=1), T - ttl, 3),  # pruned; stale for "later" too
        (3, T + dt.timedelta(hours=4), T + dt.timedelta(hours=4), 4),  # fresh for "later"
    ], "user_id bigint, feature_ts timestamp, created_ts timestamp, n bigint")
    pins = spark.createDataFrame([(10, "art")], "pin_id bigint, category string")
    days = [T.date() - dt.timedelta(days=2), T.date() - dt.timedelta(days=1), T.date()]
    cfg = TrainingSetConfig(validation_days=1, test_days=1, maturity_s=60)

    def joined(first_ts):
        frame = build_training_frame(impressions, actions, pins, {"u": features}, days, T + dt.timedelta(days=1),
                                     cfg, seed=7, views=(view,), first_ts=first_ts)
        return {r["event_id"]: (r["u__n"], r["u__missing"]) for r in frame.collect()}

    assert joined(T) == joined(None) == {"at-ttl": (1, False), "stale": (None, True), "later": (4, False)}
    # a first_ts past the boundary row would drop it: the bound is what keeps it
    assert joined(T + dt.timedelta(microseconds=1))["at-ttl"] == (None, True)
