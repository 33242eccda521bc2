"""Categorical drift: the PSI of the category mix and the unseen-category share, by hand; in the report and the gate."""
from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest

from pinrec.export.build.blessing import BlessingConfig, evaluate
from pinrec.jobs.monitoring.category_drift import (
    NULL,
    OTHER,
    category_shift,
    compare_categories,
)
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.monitoring.drift import drift_report
from pinrec.schemas.config_base import ConfigError
from pinrec.schemas.manifest import Metrics

REFERENCE = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2)


def test_an_identical_mix_has_psi_zero_and_nothing_unseen():
    same = compare_categories(REFERENCE, pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20))
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.unseen_share == 0.0
    assert same.buckets == ("a", "b", "c", OTHER, NULL) and same.share_reference == (0.5, 0.3, 0.2, 0.0, 0.0)


def test_a_mix_shift_gives_the_hand_computed_psi_and_unseen_share():
    """Top 2 of the reference (a 0.5, b 0.3), "other" 0.2 (c), null 0; the day: a 0.2, b 0.2, other 0.4
    (c once, d three times), null 0.2. Of its 8 non-null rows, the 3 d's are unseen (c is rare, not new)."""
    current = pd.Series(["a", "a", "b", "b", "c", "d", "d", "d", None, float("nan")])
    shift = compare_categories(REFERENCE, current, max_categories=2, floor=1e-4, column="x")
    assert shift.buckets == ("a", "b", OTHER, NULL)
    assert shift.share_reference == (0.5, 0.3, 0.2, 0.0) and shift.share_current == (0.2, 0.2, 0.4, 0.2)
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.2 - 0.3) * math.log(0.2 / 0.3) \
        + (0.4 - 0.2) * math.log(0.4 / 0.2) + (0.2 - 1e-4) * math.log(0.2 / 1e-4)  # empty null bucket floored
    assert shift.psi == pytest.approx(expected, rel=1e-12) and shift.psi == pytest.approx(1.97348, abs=1e-5)
    assert shift.unseen_share == 3 / 8 and shift.unseen == ("d",)
    # integer codes are labels too; a day with no non-null value has no unseen share
    codes = compare_categories(pd.Series([1, 1, 2, 3]), pd.Series([None, None], dtype="object"))
    assert codes.unseen_share is None and codes.share_current[-1] == 1.0


def test_errors_name_the_column():
    frame = pd.DataFrame({"surface": ["home_feed"], "pins": [[1, 2]]})
    with pytest.raises(ValueError, match="column 'device' is not in the reference and current frame"):
        category_shift(frame, frame, ["device"])
    with pytest.raises(ValueError, match="column 'pins' holds unhashable values in the reference window"):
        category_shift(frame, frame, ["pins"])
    with pytest.raises(ValueError, match="column 'surface' has no rows in the current window"):
        category_shift(frame, frame.iloc[:0], ["surface"])


def _windows(newest: list[str]):
    ref = pd.DataFrame({"category": ["cat0", "cat1", "cat2", "cat3"] * 5, "save": [0, 1] * 10, "sample_weight": 1.0})
    cur = pd.DataFrame({"category": newest, "save": [0, 1] * (len(newest) // 2), "sample_weight": 1.0})
    return ref, cur


def test_an_all_unknown_day_fails_the_gate_naming_the_column():
    """A broken upstream mapping turns every category into "unknown": the numeric checks saw nothing; the
    gate, with its limits set, refuses it."""
    ref, cur = _windows(["unknown"] * 8)
    rep = drift_report(ref, cur, [], MonitoringConfig(tasks=("save",)), day="2026-01-08", reference_name="train",
                       categorical=["category"])
    psi = 4 * (1e-4 - 0.25) * math.log(1e-4 / 0.25) + (1 - 1e-4) * math.log(1 / 1e-4)  # 4 buckets emptied, "other" full
    metrics = rep.drift_metrics()
    noise = metrics["category_psi_noise.category"]  # 8 rows: a sample this small reaches several units of PSI
    assert metrics == {"category_psi.category": pytest.approx(psi), "unseen_category_share.category": 1.0,
                       "label_rate_shift.save": 0.0, "category_psi_noise.category": noise} and 1 < noise < psi / 3
    assert "top category PSI category=17.030" in rep.render()
    assert json.loads(json.dumps(rep.to_dict()))["categories"]["category"]["unseen"] == ["unknown"]
    candidate = Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1.0, latency_p99_ms=2.0, drift=metrics)
    verdict = evaluate(candidate, None, BlessingConfig(max_category_psi=0.25, category_psi_noise_factor=None,
                                                       max_unseen_category_share=0.2))
    assert not verdict.blessed
    assert verdict.reasons == (f"category PSI[category] {psi:.4f} > maximum 0.2500",
                               "unseen category share[category] 1.0000 > maximum 0.2000")
    assert evaluate(candidate, None, BlessingConfig()).reasons == (  # the default: above 3 x its noise too
        f"category PSI[category] {psi:.4f} > maximum {3 * noise:.4f} (3 x its sampling noise {noise:.4f})",)
    _, same = _windows(["cat0", "cat1", "cat2", "cat3"] * 2)
    steady = drift_report(ref, same, [], MonitoringConfig(tasks=("save",)), day="2026-01-08", reference_name="train",
                          categorical=["category"])
    assert steady.drift_metrics()["category_psi.category"] == pytest.approx(0.0, abs=1e-12)


def test_a_view_feature_warms_up_a_raw_column_does_not():
    """user__top_category (30-day window) waits for 30 days of history; pin__category (no window) skips the
    first day, when no view has a value; the impression's surface is known from the first day."""
    start = dt.date(2026, 1, 1)
    ref = pd.DataFrame({"dt": [start, start, start + dt.timedelta(days=1), start + dt.timedelta(days=1)],
                        "user__top_category": [None, None, "a", "b"], "pin__category": [None, None, "a", "a"],
                        "surface": ["search", "search", "home_feed", "home_feed"], "save": [0, 1, 0, 1],
                        "sample_weight": 1.0})
    cur = pd.DataFrame({"dt": [start + dt.timedelta(days=2)] * 2, "user__top_category": ["a", "b"],
                        "pin__category": ["a", "a"], "surface": ["home_feed", "search"], "save": [0, 1],
                        "sample_weight": 1.0})
    rep = drift_report(ref, cur, [], MonitoringConfig(tasks=("save",)), day="2026-01-03", reference_name="train",
                       history_start=start, windows={"user__top_category": 30, "pin__category": 0, "surface": None},
                       categorical=["user__top_category", "pin__category", "surface"])
    assert rep.warming_up == ("user__top_category",)
    assert rep.categories["pin__category"].psi == 0.0  # day 2 only: the first day's nulls are no reference
    assert rep.categories["surface"].share_reference[:2] == (0.5, 0.5)  # both days


def test_config_bounds_and_unknown_keys():
    assert MonitoringConfig().max_categories == 50
    with pytest.raises(ConfigError, match="max_categories"):
        MonitoringConfig(max_categories=0)
    with pytest.raises(ConfigError, match="max_categorie"):
        MonitoringConfig(max_categorie=10)
    assert BlessingConfig().max_unseen_category_share is None  # opt-in
    with pytest.raises(ConfigError, match="max_unseen_category_share"):
        BlessingConfig(max_unseen_category_share=1.5)
    with pytest.raises(ConfigError, match="max_category_ps"):
        BlessingConfig(max_category_ps=1.0)
