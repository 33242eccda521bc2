"""Feature declarations: the flags drift monitoring relies on are validated and set where meant."""
from __future__ import annotations

import pytest

from pinrec.schemas.features import FEATURE_VIEWS, Feature


def test_cumulative_counts_are_flagged_and_validated():
    cumulative = [v.column(f.name) for v in FEATURE_VIEWS for f in v.features if f.cumulative]
    assert cumulative == ["pin__board_count"]
    with pytest.raises(ValueError, match="cumulative must be a bool"):
        Feature("x", "int64", cumulative="yes")
    with pytest.raises(ValueError, match="all-time count has window_days 0"):
        Feature("x", "int64", window_days=30, cumulative=True)
    with pytest.raises(ValueError, match="window_days"):
        Feature("x", "int64", window_days=-1)
