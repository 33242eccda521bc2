"""The categorical PSI's sampling noise (days simulated from the window) and the gate's limit built on it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pinrec.export.build.blessing import BlessingConfig, category_psi_limit, evaluate
from pinrec.jobs.monitoring.category_drift import (
    SamplingNoise,
    category_shift,
    compare_categories,
    sampling_psi,
)
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.monitoring.drift import drift_report
from pinrec.schemas.manifest import Metrics

NOISE = SamplingNoise(resamples=400, quantile=0.99, seed=3)
CHI2_99_3DOF = 11.345  # chi-square quantile: n PSI ~ chi2(K - 1) for a sample of n from K buckets


def test_rows_as_draws_give_the_chi_square_level():
    """Every row its own user: a day of 1000 rows drawn from 4 equal buckets. For small shifts the PSI is about
    the chi-square statistic over n (sum (a - e)^2 / e), n PSI ~ chi2(3): its 99th percentile about 11.3 / 1000."""
    buckets = np.repeat(np.arange(4), 10_000)
    noise = sampling_psi(buckets, None, None, draws=1000, bucket_count=6, floor=1e-4, noise=NOISE)
    assert noise == pytest.approx(CHI2_99_3DOF / 1000, rel=0.25)


def test_users_that_come_and_go_carry_the_noise_of_their_number_not_of_their_rows():
    """200 users, each active on one of 4 days with 50 rows of its own category (a user-level column): a day of
    50 users is a sample of ~50, not of 2,500 rows, so its noise is ~50 times the row draw's."""
    users = np.repeat(np.arange(200), 50)
    days = np.repeat(np.arange(200) % 4, 50)
    buckets = np.repeat(np.arange(200) % 4, 50)
    by_user = sampling_psi(buckets, users, days, draws=50, bucket_count=6, floor=1e-4, noise=NOISE)
    by_row = sampling_psi(buckets, None, None, draws=2500, bucket_count=6, floor=1e-4, noise=NOISE)
    assert by_user == pytest.approx(CHI2_99_3DOF / 50, rel=0.25)
    assert by_row == pytest.approx(CHI2_99_3DOF / 2500, rel=0.25)


def test_users_active_every_day_are_in_every_simulated_day():
    """Every user on every day with the same rows: the next day holds the same users, so a day simulated with
    as many users has the window's mix exactly (noise 0), where a draw of users with replacement would not."""
    users = np.tile(np.repeat(np.arange(30), 10), 3)
    days = np.repeat(np.arange(3), 300)
    buckets = np.tile(np.repeat(np.arange(30) % 5, 10), 3)
    assert sampling_psi(buckets, users, days, draws=30, bucket_count=7, floor=1e-4, noise=NOISE) == 0.0
    assert sampling_psi(buckets, users, days, draws=10, bucket_count=7, floor=1e-4, noise=NOISE) > 0.1


def test_noise_rides_with_the_shift_and_reads_user_and_day_from_the_frames():
    ref = pd.DataFrame({"user_id": np.repeat(np.arange(40), 5), "dt": np.repeat(np.arange(40) % 2, 5),
                        "c": np.repeat(np.array(["a", "b", "c", "d"])[np.arange(40) % 4], 5)})
    cur = pd.DataFrame({"user_id": np.repeat(np.arange(10), 5), "c": ["a"] * 50})
    shift = category_shift(ref, cur, ["c"], noise=NOISE, group="user_id")["c"]
    rows = compare_categories(ref["c"], cur["c"], noise=NOISE)  # no users: 50 rows are 50 draws
    assert shift.noise_psi > 3 * rows.noise_psi > 0
    assert compare_categories(ref["c"], cur["c"]).noise_psi is None
    with pytest.raises(ValueError, match="resamples must be >= 1 and quantile in"):
        SamplingNoise(resamples=0)


def test_drift_metrics_carry_the_noise_and_config_can_turn_it_off():
    ref = pd.DataFrame({"category": ["a", "b", "c", "d"] * 25, "save": [0, 1] * 50, "sample_weight": 1.0})
    cur = pd.DataFrame({"category": ["a", "b"] * 100, "save": [0, 1] * 100, "sample_weight": 1.0})
    on = drift_report(ref, cur, [], MonitoringConfig(tasks=("save",)), day="2026-01-08", reference_name="train",
                      categorical=["category"])
    noise = on.drift_metrics()["category_psi_noise.category"]  # no user_id: 200 rows as draws
    assert noise == pytest.approx(CHI2_99_3DOF / 200, rel=0.25) and f"(noise {noise:.3f})" in on.render()
    off = drift_report(ref, cur, [], MonitoringConfig(tasks=("save",), noise_resamples=0), day="2026-01-08",
                       reference_name="train", categorical=["category"])
    assert "category_psi_noise.category" not in off.drift_metrics()
    assert off.categories["category"].noise_psi is None


def test_the_limit_is_the_larger_of_the_floor_and_the_scaled_noise():
    assert category_psi_limit(0.25, 3.0, 0.05) == 0.25
    assert category_psi_limit(0.25, 3.0, 0.5) == pytest.approx(1.5)
    assert category_psi_limit(0.25, 3.0, None) == 0.25  # noise not measured: the fixed limit
    assert category_psi_limit(None, 3.0, 0.5) == pytest.approx(1.5) and category_psi_limit(None, 3.0, None) is None
    assert category_psi_limit(0.25, None, 0.5) == 0.25 and category_psi_limit(None, None, 0.5) is None
    assert (BlessingConfig().max_category_psi, BlessingConfig().category_psi_noise_factor) == (0.25, 3.0)


def test_the_gate_judges_each_column_by_its_own_noise():
    """A day of few users (noise 0.6): a PSI of 1.2 is within 3 x noise; a broken mapping (PSI 17) is not. A day
    of many users (noise 0.01): the floor 0.25 applies."""
    base = Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1.0, latency_p99_ms=2.0)
    few = dataclasses.replace(base, drift={"category_psi.country": 1.2, "category_psi_noise.country": 0.6,
                                           "category_psi.category": 17.0, "category_psi_noise.category": 0.6})
    verdict = evaluate(few, None, BlessingConfig())
    assert verdict.reasons == ("category PSI[category] 17.0000 > maximum 1.8000 (3 x its sampling noise 0.6000)",)
    many = dataclasses.replace(base, drift={"category_psi.country": 0.3, "category_psi_noise.country": 0.01})
    assert evaluate(many, None, BlessingConfig()).reasons == ("category PSI[country] 0.3000 > maximum 0.2500",)
    assert evaluate(many, None, BlessingConfig(max_category_psi=None)).reasons == (
        "category PSI[country] 0.3000 > maximum 0.0300 (3 x its sampling noise 0.0100)",)  # the noise limit alone
    assert evaluate(many, None, BlessingConfig(max_category_psi=None, category_psi_noise_factor=None)).blessed


def test_a_score_psi_is_judged_by_its_own_sampling_noise():
    """A newest day of 4 users drawn from the training window's own scores reads a PSI far above 0.25 from
    sampling alone (a MovieLens sample's 14-rating day read 3.33): its noise lets it pass; a day of 400 users
    whose scores all moved to the top decile fails at the fixed 0.25."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"user_id": np.repeat(np.arange(200), 10), "dt": np.repeat(np.arange(200) % 4, 10),
                        "save": 0, "sample_weight": 1.0})
    scores_ref = rng.random(len(ref))
    small = pd.DataFrame({"user_id": np.repeat([1, 2, 3, 4], 3), "save": 0, "sample_weight": 1.0})
    report = drift_report(ref, small, [], MonitoringConfig(tasks=("save",)), day="2026-01-08", reference_name="train",
                          scores_reference={"save": scores_ref}, scores_current={"save": scores_ref[:12]})
    metrics = report.drift_metrics()
    assert metrics["score_psi.save"] > 0.25 and metrics["score_psi_noise.save"] > metrics["score_psi.save"] / 3
    assert "(noise " in report.render()
    base = Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1.0, latency_p99_ms=2.0)
    assert evaluate(dataclasses.replace(base, drift=metrics), None, BlessingConfig()).blessed
    fixed = evaluate(dataclasses.replace(base, drift=metrics), None, BlessingConfig(score_psi_noise_factor=None))
    assert fixed.reasons == (f"score PSI[save] {metrics['score_psi.save']:.4f} > maximum 0.2500",)
    big = pd.DataFrame({"user_id": np.repeat(np.arange(400), 5), "save": 0, "sample_weight": 1.0})
    moved = drift_report(ref, big, [], MonitoringConfig(tasks=("save",)), day="2026-01-08", reference_name="train",
                         scores_reference={"save": scores_ref}, scores_current={"save": 0.9 + rng.random(2000) / 10})
    shifted = moved.drift_metrics()
    assert shifted["score_psi_noise.save"] < 0.05 and shifted["score_psi.save"] > 0.25
    assert evaluate(dataclasses.replace(base, drift=shifted), None, BlessingConfig()).reasons == (
        f"score PSI[save] {shifted['score_psi.save']:.4f} > maximum 0.2500",)
