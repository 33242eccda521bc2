"""Which training-set columns drift compares: read from the schemas; ids, derived time columns and
all-time counts never."""
from __future__ import annotations

from pinrec.jobs.monitoring.columns import (
    categorical_feature_columns,
    feature_windows,
    numeric_feature_columns,
)

#: the columns of the demo's training_set Delta table (2026-12-07)
TRAINING_SET = [
    "pin_id", "event_id", "user_id", "ts", "session_id", "position", "surface", "device", "country", "closeup", "save",
    "sample_weight", "category", "hour", "day_of_week", "user__impressions_1d", "user__impressions_7d",
    "user__impressions_30d", "user__closeups_1d", "user__closeups_7d", "user__closeups_30d", "user__saves_1d",
    "user__saves_7d", "user__saves_30d", "user__closeup_rate_30d", "user__save_rate_30d", "user__top_category",
    "user__top_category_share", "user__days_since_last_save", "user__last_saved_pins", "user__last_closeup_pins",
    "user__feature_ts", "user__missing", "pin__category", "pin__age_days", "pin__impressions_30d",
    "pin__closeups_30d", "pin__saves_30d", "pin__closeup_rate_30d", "pin__save_rate_30d", "pin__board_count",
    "pin__feature_ts", "pin__missing", "user_category__impressions_30d", "user_category__closeups_30d",
    "user_category__closeup_rate_30d", "user_category__feature_ts", "user_category__missing", "split", "dt"]


def test_categorical_features_come_from_the_schemas_and_exclude_ids():
    found = categorical_feature_columns(TRAINING_SET)
    assert found == ["user__top_category", "pin__category", "country", "category", "surface", "device"]
    assert not {"user_id", "pin_id", "event_id", "session_id", "split", "hour", "day_of_week"} & set(found)
    assert categorical_feature_columns(["surface", "user_id", "x"]) == ["surface"]  # only what the table carries


def test_numeric_features_leave_out_all_time_counts_and_labels():
    numeric = numeric_feature_columns(TRAINING_SET)
    assert numeric[:3] == ["user__impressions_1d", "user__impressions_7d", "user__impressions_30d"]
    assert len(numeric) == 21 and not {"pin__board_count", "pin__age_days"} & set(numeric)
    assert not set(numeric) & {"position", "closeup", "save", "sample_weight", "user__top_category"}
    assert numeric_feature_columns(["user__saves_7d", "user__top_category", "pin__age_days", "closeup", "x",
                                    "pin__board_count", "pin__closeup_rate_30d"]) == ["user__saves_7d",
                                                                                   "pin__closeup_rate_30d"]


def test_windows_give_view_features_a_warm_up_and_raw_columns_none():
    windows = feature_windows()
    assert (windows["user__saves_30d"], windows["pin__board_count"], windows["user__top_category"]) == (30, 0, 30)
    assert windows["pin__category"] == 0  # a view's feature: no value on the first day
    assert (windows["surface"], windows["category"], windows["country"]) == (None, None, None)
