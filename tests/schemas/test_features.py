"""Feature declarations: the flags drift monitoring relies on are validated and set where meant."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.schemas.features import FEATURE_VIEWS, MAX_TTL, Feature, FeatureView


def test_cumulative_counts_are_flagged_and_validated():
    cumulative = [v.column(f.name) for v in FEATURE_VIEWS for f in v.features if f.cumulative]
    assert cumulative == ["pin__age_days", "pin__board_count"]
    with pytest.raises(ValueError, match="cumulative must be a bool"):
        Feature("x", "int64", cumulative="yes")
    with pytest.raises(ValueError, match="all-time count has window_days 0"):
        Feature("x", "int64", window_days=30, cumulative=True)
    with pytest.raises(ValueError, match="window_days"):
        Feature("x", "int64", window_days=-1)


def test_ttl_must_be_a_bounded_timedelta_naming_the_view():
    feature = (Feature("x", "int64"),)
    with pytest.raises(TypeError, match=r"feature view 'v': ttl must be a datetime.timedelta .* got int 3600"):
        FeatureView("v", ("user_id",), feature, ttl=3600)
    # 8.6e19 us, past int64 in the join's t - ttl: refused here, not an overflow at lookup time
    with pytest.raises(ValueError, match=r"feature view 'v': ttl must be .* at most 36525 days, got 999999999 days"):
        FeatureView("v", ("user_id",), feature, ttl=dt.timedelta(days=999_999_999))
    with pytest.raises(ValueError, match="at most 36525 days"):
        FeatureView("v", ("user_id",), feature, ttl=MAX_TTL + dt.timedelta(seconds=1))
    with pytest.raises(ValueError, match="positive whole number of seconds"):
        FeatureView("v", ("user_id",), feature, ttl=dt.timedelta(milliseconds=1500))
    assert FeatureView("v", ("user_id",), feature, ttl=MAX_TTL).ttl == dt.timedelta(days=36_525)


def test_entities_are_distinct_and_never_a_time_column():
    feature = (Feature("x", "int64"),)
    with pytest.raises(ValueError, match=r"feature view 'v': entities must be distinct columns, got \['user_id'\]"):
        FeatureView("v", ("user_id", "user_id"), feature, ttl=dt.timedelta(days=1))
    with pytest.raises(ValueError, match=r"feature view 'v': entity \['ts'\] is also its feature_ts/created_ts"):
        FeatureView("v", ("user_id", "ts"), feature, ttl=dt.timedelta(days=1), feature_ts="ts", created_ts="ts")
    with pytest.raises(ValueError, match=r"entity \['created_ts'\]"):
        FeatureView("v", ("created_ts",), feature, ttl=dt.timedelta(days=1))
    # one column for both times is a legitimate declaration: known as soon as valid
    view = FeatureView("v", ("user_id",), feature, ttl=dt.timedelta(days=1), feature_ts="ts", created_ts="ts")
    assert (view.feature_ts, view.created_ts) == ("ts", "ts")
