"""Drift monitoring: PSI, feature shift and label rates on hand-checked data; the job on a tiny Delta table."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.monitoring.columns import feature_windows
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.monitoring.drift import (
    FeatureShift,
    drift_report,
    feature_shift,
    label_rates,
    psi,
)
from pinrec.jobs.monitoring.monitoring import monitor_drift


def test_psi_by_hand():
    ref = np.arange(100.0)  # quartile edges 24.75, 49.5, 74.25: 25 values per bin
    assert psi(ref, ref, bins=4) == 0.0
    cur = np.r_[np.zeros(50), np.full(50, 99.0)]  # half in the first bin, half in the last
    e, a = 0.25, np.array([0.5, 1e-4, 1e-4, 0.5])
    assert psi(ref, cur, bins=4) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-12)
    assert psi(ref, cur, bins=4) == pytest.approx(2 * 0.25 * math.log(2) + 2 * (1e-4 - 0.25) * math.log(4e-4))


def test_psi_grows_with_the_shift_and_tolerates_ties():
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 5, 20_000)
    small, large = psi(ref, rng.beta(2.2, 5, 20_000)), psi(ref, rng.beta(4, 4, 20_000))
    assert 0 < small < 0.1 and large > 0.25
    assert psi(np.zeros(100), np.ones(100)) == pytest.approx((1 - 1e-4) * math.log(1e4) * 2)  # one edge only
    with pytest.raises(ValueError, match="current sample is empty"):
        psi(ref, [])
    with pytest.raises(ValueError, match="NaN or infinite"):
        psi(ref, [0.1, float("nan")])


def test_feature_shift_by_hand():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, None], "n": pd.array([1, 1, 1, 1], "Int64"), "gone": [1.0, 2, 3, 4]})
    cur = pd.DataFrame({"x": [2.0, 4.0, None, None], "n": pd.array([1, 3, None, 1], "Int64"),
                        "gone": [None, None, None, None]})
    out = feature_shift(ref, cur, ["x", "n", "gone"])
    std = math.sqrt(2 / 3)
    assert out["x"] == FeatureShift(2.0, 3.0, pytest.approx(std), 1.0, 0.25, 0.5)
    assert out["x"].drift == pytest.approx(1 / std)  # the mean moved 1.22 reference stds
    assert out["x"].null_rate_shift == 0.25
    # constant reference: raw units; mean 1 -> 5/3, std 0 -> sqrt(8/9) (the larger); null rate 0 -> 1/4
    assert out["n"].drift == pytest.approx(math.sqrt(8 / 9)) and out["n"].null_rate_shift == 0.25
    assert out["gone"] == FeatureShift(2.5, None, pytest.approx(math.sqrt(1.25)), None, 0.0, 1.0)
    assert out["gone"].drift is None and out["gone"].null_rate_shift == 1.0  # no mean to compare; all null now
    with pytest.raises(ValueError, match="'y' is not in the reference and current frame"):
        feature_shift(ref, cur, ["y"])


def test_label_rates_undo_negative_sampling():
    frame = pd.DataFrame({"closeup": [1, 0, 0], "save": [0, 0, 1], "sample_weight": [1.0, 4.0, 1.0]})
    assert label_rates(frame, ("closeup", "save")) == {"closeup": 1 / 6, "save": 1 / 6}
    assert label_rates(frame, ("closeup",), weight=None) == {"closeup": 1 / 3}


def _windows():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"user__saves_7d": rng.poisson(3, 400).astype(float), "closeup": rng.integers(0, 2, 400),
                        "save": rng.integers(0, 2, 400), "sample_weight": 1.0})
    cur = pd.DataFrame({"user__saves_7d": rng.poisson(6, 100).astype(float), "closeup": rng.integers(0, 2, 100),
                        "save": np.zeros(100, int), "sample_weight": 1.0})
    scores_ref = {"closeup": rng.random(400), "save": rng.random(400)}
    scores_cur = {"closeup": rng.random(100) ** 3, "save": rng.random(100)}
    return ref, cur, scores_ref, scores_cur


def test_drift_report_feeds_the_manifest_and_respects_maturity():
    ref, cur, sr, sc = _windows()
    cfg = MonitoringConfig()
    rep = drift_report(ref, cur, ["user__saves_7d"], cfg, day="2026-01-08", reference_name="train",
                       scores_reference=sr, scores_current=sc)
    metrics = rep.drift_metrics()
    assert sorted(metrics) == ["feature_drift.user__saves_7d", "label_rate_shift.closeup", "label_rate_shift.save",
                               "null_rate_shift.user__saves_7d", "score_psi.closeup", "score_psi.save",
                               "score_psi_noise.closeup", "score_psi_noise.save"]
    assert metrics["score_psi_noise.closeup"] > 0  # 100 rows as draws (no user_id)
    assert metrics["null_rate_shift.user__saves_7d"] == 0.0
    assert metrics["score_psi.closeup"] == psi(sr["closeup"], sc["closeup"]) > 0.25 > metrics["score_psi.save"]
    assert metrics["label_rate_shift.save"] == pytest.approx(ref["save"].mean())
    assert json.loads(json.dumps(rep.to_dict()))["features"]["user__saves_7d"]["drift"] == \
        metrics["feature_drift.user__saves_7d"]
    open_window = drift_report(ref, cur, ["user__saves_7d"], cfg, day="2026-01-08", reference_name="train",
                               labels_mature=False)
    assert open_window.label_rate_current is None and open_window.score_psi == {}
    assert not any(k.startswith("label_rate_shift") for k in open_window.drift_metrics())
    assert "maturity window open" in open_window.render()
    with pytest.raises(ValueError, match="score tasks differ"):
        drift_report(ref, cur, [], cfg, day="d", reference_name="r", scores_reference=sr, scores_current={})


def test_windowed_features_and_scores_wait_for_a_complete_history():
    """A W-day count is compared only on reference days >= first day + W; scores only past the
    longest window; until then they are reported as warming up, not as drift."""
    start = dt.date(2026, 1, 1)
    days = [start + dt.timedelta(days=i) for i in range(10)]
    # the 7-day count grows while its window fills (days 0..6), then is stationary around 7
    ref = pd.DataFrame({"dt": days, "user__saves_7d": [min(i, 7) + 0.1 * (i % 2) for i in range(10)],
                        "pin__age_days": np.arange(10.0), "save": [0, 1] * 5, "sample_weight": 1.0})
    cur = pd.DataFrame({"dt": [dt.date(2026, 1, 11)] * 2, "user__saves_7d": [7.0, 7.1], "pin__age_days": [10.0, 10.0],
                        "save": [0, 1], "sample_weight": 1.0})
    cfg = MonitoringConfig(tasks=("save",))
    windows = {"user__saves_7d": 7}
    sr, sc = {"save": np.linspace(0, 1, 10)}, {"save": np.array([0.75, 0.95])}
    rep = drift_report(ref, cur, ["user__saves_7d", "pin__age_days"], cfg, day="2026-01-11", reference_name="train",
                       scores_reference=sr, scores_current=sc, history_start=start, windows=windows)
    # only days 7, 8, 9 (values 7.1, 7, 7.1) are a reference for the 7-day count: no drift
    assert rep.features["user__saves_7d"].mean_reference == pytest.approx((7.1 + 7 + 7.1) / 3)
    assert rep.features["user__saves_7d"].drift < 0.5
    naive = drift_report(ref, cur, ["user__saves_7d"], cfg, day="2026-01-11", reference_name="train")
    assert naive.features["user__saves_7d"].drift > 1.0  # what warm-up would have looked like as drift
    assert rep.features["pin__age_days"].mean_reference == 5.0  # no window: every day but the first (no values yet)
    # the score PSI uses the same three days (the longest window is 7)
    assert rep.score_psi["save"] == psi(sr["save"][7:], sc["save"]) and rep.warming_up == ()
    young = drift_report(ref[ref["dt"] < dt.date(2026, 1, 7)], cur, ["user__saves_7d", "pin__age_days"], cfg,
                         day="2026-01-11", reference_name="train", scores_reference={"save": sr["save"][:6]},
                         scores_current=sc, history_start=start, windows=windows)
    assert young.warming_up == ("user__saves_7d", "score:save") and young.score_psi == {}
    assert sorted(young.drift_metrics()) == ["feature_drift.pin__age_days", "label_rate_shift.save",
                                             "null_rate_shift.pin__age_days"]
    assert "in warm-up (not compared): 2 signal(s)" in young.render()
    assert feature_windows()["user__saves_30d"] == 30 and feature_windows()["pin__board_count"] == 0


def test_a_feature_going_fully_null_is_a_null_rate_shift_the_gate_fails():
    """A broken join leaves user__saves_7d fully null on the newest day: no mean to compare, a
    null-rate shift of 0.9 under its own key, over the default limit (as a drift score it was 0.9,
    under max_feature_drift 1.0: blessed)."""
    from pinrec.export.build.blessing import BlessingConfig, evaluate
    from pinrec.schemas.manifest import Metrics

    ref = pd.DataFrame({"user__saves_7d": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, None], "save": [0, 1] * 5,
                        "sample_weight": 1.0})
    cur = ref.assign(user__saves_7d=None)
    rep = drift_report(ref, cur, ["user__saves_7d"], MonitoringConfig(tasks=("save",)), day="2026-01-08",
                       reference_name="train")
    assert rep.drift_metrics() == {"null_rate_shift.user__saves_7d": pytest.approx(0.9), "label_rate_shift.save": 0.0}
    assert "top null-rate shift user__saves_7d=0.900" in rep.render()
    metrics = Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1.0, latency_p99_ms=2.0, drift=rep.drift_metrics())
    verdict = evaluate(metrics, None, BlessingConfig())
    assert not verdict.blessed
    assert verdict.reasons == ("null-rate shift[user__saves_7d] 0.9000 > maximum 0.5000",)


def test_the_first_day_of_history_is_no_reference_for_a_feature_without_a_window():
    """On the first ingested day no feature has a value yet: a reference of only that day is warm-up,
    not a null-rate shift of ~0.9 (what the 3-day test world's pin__age_days showed)."""
    start = dt.date(2026, 1, 5)
    ref = pd.DataFrame({"dt": [start] * 4, "pin__age_days": [math.nan] * 4, "save": [0, 1, 0, 1], "sample_weight": 1.0})
    cur = pd.DataFrame({"dt": [dt.date(2026, 1, 7)] * 4, "pin__age_days": [1.0, 2.0, 3.0, None], "save": [0, 1, 0, 1],
                        "sample_weight": 1.0})
    cfg = MonitoringConfig(tasks=("save",))
    rep = drift_report(ref, cur, ["pin__age_days"], cfg, day="2026-01-07", reference_name="train", history_start=start,
                       windows={}, scores_reference={"save": np.ones(4)}, scores_current={"save": np.ones(4)})
    assert rep.features == {} and rep.warming_up == ("pin__age_days", "score:save") and rep.score_psi == {}
    later = drift_report(pd.concat([ref, ref.assign(dt=dt.date(2026, 1, 6), pin__age_days=[1.0, 2.0, math.nan, math.nan])]),
                         cur, ["pin__age_days"], cfg, day="2026-01-07", reference_name="train", history_start=start,
                         windows={})
    assert later.features["pin__age_days"].null_rate_reference == 0.5  # day 2 only
    assert later.drift_metrics()["null_rate_shift.pin__age_days"] == 0.25


def test_an_infinite_feature_value_is_refused_not_dropped():
    """An inf in the newest day made the drift inf, and drift_metrics left the feature out of the
    manifest, the gate and the report without a word."""
    ref = pd.DataFrame({"user__saves_7d": [1.0, 2.0, 3.0], "save": [0, 1, 0], "sample_weight": 1.0})
    cur = ref.assign(user__saves_7d=[1.0, math.inf, None])
    cfg = MonitoringConfig(tasks=("save",))
    with pytest.raises(ValueError, match=r"column 'user__saves_7d' has 1 infinite value\(s\) in the current window"):
        drift_report(ref, cur, ["user__saves_7d"], cfg, day="2026-01-08", reference_name="train")
    with pytest.raises(ValueError, match="'pin__age_days' has 2 infinite value.* reference window"):
        feature_shift(pd.DataFrame({"pin__age_days": [-math.inf, math.inf]}), cur.assign(pin__age_days=1.0),
                      ["pin__age_days"])
    report = drift_report(ref, ref, ["user__saves_7d"], cfg, day="2026-01-08", reference_name="train")
    broken = dataclasses.replace(report, score_psi={"save": math.inf})
    with pytest.raises(ValueError, match=r"drift metrics must be finite, got \{'score_psi.save': inf\}"):
        broken.drift_metrics()


def test_config_validation():
    with pytest.raises(ValueError, match="psi_bins"):
        MonitoringConfig(psi_bins=1)
    with pytest.raises(ValueError, match="psi_floor"):
        MonitoringConfig(psi_floor=0.5)


@pytest.mark.spark
def test_the_job_reads_the_training_set_and_logs_to_mlflow(spark, tmp_path):
    import mlflow

    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]
    rng = np.random.default_rng(3)
    rows = []
    for i, (d, split, lam) in enumerate(zip(days, ("train", "validation", "test"), (3.0, 3.0, 9.0))):
        for j in range(40):
            surface = "search" if j % (2 if i < 2 else 4) else "home_feed"  # half search, then a quarter
            rows.append((f"e{i}-{j}", float(rng.poisson(lam)), float(j % 9) if j % 10 else None, int(j % 4 == 0),
                         int(j % 8 == 0), 1.0, surface, split, d))
    schema = ("event_id string, user__saves_7d double, pin__age_days double, closeup int, save int, "
              "sample_weight double, surface string, split string, dt date")
    warehouse = tmp_path / "warehouse"
    meta = {"days": [d.isoformat() for d in days], "cutoff": "2026-01-08T00:00:00"}
    (spark.createDataFrame(rows, schema).write.format("delta").option("userMetadata", json.dumps(meta))
     .partitionBy("dt").save(str(warehouse / "training_set")))
    cfg = MonitoringConfig(psi_bins=4)

    def scorer(frame):
        return {"closeup": frame["user__saves_7d"].to_numpy() / 20, "save": np.full(len(frame), 0.1)}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = monitor_drift(spark, str(warehouse), cfg, maturity_s=6 * 3600, scores=scorer, tracking_uri=uri)
    assert (report.day, report.reference, report.reference_rows, report.current_rows) == \
        ("2026-01-07", "train 2026-01-05..2026-01-05", 40, 40)
    ref = pd.DataFrame(rows[:40], columns=[c.split()[0] for c in schema.split(", ")])
    cur = pd.DataFrame(rows[80:], columns=ref.columns)
    # the pin's age grows with history by construction: never compared (schemas/features.py, cumulative)
    expected = drift_report(ref, cur, ["user__saves_7d"], cfg, day="2026-01-07",
                            reference_name=report.reference, scores_reference=scorer(ref), scores_current=scorer(cur),
                            labels_mature=False, categorical=["surface"])  # cut-off 01-08 < 01-08 06:00: immature
    assert report.drift_metrics() == pytest.approx(expected.drift_metrics())
    # home_feed 0.5 -> 0.25, search 0.5 -> 0.75
    assert report.categories["surface"].psi == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert report.label_rate_current is None and report.score_psi["closeup"] > 0.25
    run = mlflow.MlflowClient(uri).get_run(report.mlflow_run_id)
    assert run.data.metrics["score_psi.closeup"] == pytest.approx(report.score_psi["closeup"])
    assert run.data.metrics["feature_drift.user__saves_7d"] == pytest.approx(
        report.features["user__saves_7d"].drift)
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(report.mlflow_run_id, "plots")}
    assert run.data.metrics["category_psi.surface"] == pytest.approx(report.categories["surface"].psi)
    assert artifacts == {"plots/score_psi.png", "plots/feature_drift.png", "plots/category_psi.png"}
    mature = monitor_drift(spark, str(warehouse), cfg, maturity_s=0, day=dt.date(2026, 1, 7))
    assert mature.label_rate_current == {"closeup": 0.25, "save": 0.125}
