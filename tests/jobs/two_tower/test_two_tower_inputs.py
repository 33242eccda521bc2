"""The two-tower job's pure inputs: engaged pairs, lists as embedding rows, encoders fitted on train."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.two_tower.two_tower_inputs import (
    columns,
    list_rows,
    pin_spec,
    two_tower_inputs,
    user_spec,
)

IDS = np.array([10, 20, 30, 40], np.int64)  # the embedded pins; pin 99 has no embedding
VECTORS = np.arange(8, dtype=np.float32).reshape(4, 2) + 1


def frame() -> pd.DataFrame:
    rows = [  # split, save, closeup, pin, saves, closeups, surface
        ("train", 1, 0, 10, [20, 99, 30], [], "home_feed"),
        ("train", 0, 1, 20, [10], None, "search"),  # its pin-view row is missing
        ("train", 0, 0, 30, [10], [], "home_feed"),  # not engaged
        ("train", 1, 1, 99, [10], [], "home_feed"),  # no embedding
        ("validation", 1, 0, 30, [40, 10], [20], "board"),  # a surface train never saw
        ("test", 0, 1, 40, [], [], "search"),
    ]
    out = {c: [None] * len(rows) for c in columns()}
    out.update({"event_id": [f"e{i}" for i in range(len(rows))], "split": [r[0] for r in rows],
                "save": [r[1] for r in rows], "closeup": [r[2] for r in rows], "pin_id": [r[3] for r in rows],
                "user__last_saved_pins": [r[4] for r in rows], "user__last_closeup_pins": [r[5] for r in rows],
                "surface": [r[6] for r in rows], "user__missing": [False] * len(rows),
                "pin__missing": [False, True, False, False, False, False], "pin__category": ["a", "b", "a", "a", "c", "b"],
                "pin__age_days": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    return pd.DataFrame(out)


def test_list_rows_keep_slots_and_mark_unknown_pins():
    got = list_rows([[20, 99, 30, 10], None, [], [40]], IDS, 3)
    np.testing.assert_array_equal(got, [[1, -1, 2], [-1, -1, -1], [-1, -1, -1], [3, -1, -1]])


def test_inputs_take_engaged_pairs_of_embedded_pins():
    pins = frame()[[f.name for f in pin_spec().features]].iloc[:3].assign(pin_id=[10, 20, 30])
    got = two_tower_inputs(frame(), pins, IDS, VECTORS, length=2)
    train, val = got.splits["train"], got.splits["validation"]
    assert len(train) == 2 and got.dropped == 1  # the unengaged row is no pair; pin 99 is dropped
    np.testing.assert_array_equal(train.pins.numpy(), [0, 1])
    np.testing.assert_array_equal(train.saves.numpy(), [[1, -1], [0, -1]])
    # no training pair has a closeup list: read as empty everywhere (as serving will)
    assert got.lists == ("user__last_saved_pins",)
    np.testing.assert_array_equal(val.closeups.numpy(), [[-1, -1]])
    # fitted on train only: validation's surface 'board' and category 'c' are out of vocabulary (0)
    surface = got.user_encoder.categorical_names.index("surface")
    assert val.user_categorical[0, surface] == 0 and train.user_categorical[:, surface].min() > 0
    assert val.pin_categorical[0, 0] == 0
    # the pin table: every embedded pin, pin 40 without a pin-view row flagged missing
    assert len(got.pins) == 4 and np.array_equal(got.pins.embeddings.numpy(), VECTORS)
    missing = got.pin_encoder.dense_names.index("pin__missing")
    np.testing.assert_array_equal(got.pins.dense[:, missing].numpy(), [0, 0, 0, 1])


def test_a_split_without_pairs_is_named():
    f = frame()
    with pytest.raises(ValueError, match=r"split\(s\) \['test'\]"):
        two_tower_inputs(f[f["split"] != "test"], f[["pin_id"]], IDS, VECTORS, length=2)


def test_specs_read_context_user_and_pin_view_columns():
    user = [f.name for f in user_spec().features]
    assert user[:6] == ["surface", "device", "country", "hour", "day_of_week", "user__top_category"]
    assert "user__saves_30d" in user and "user__missing" in user and not any(n.startswith("pin__") for n in user)
    assert [f.name for f in pin_spec().features][:2] == ["pin__category", "pin__age_days"]


def test_features_the_training_pairs_never_show_are_left_out():
    pins = frame()[[f.name for f in pin_spec().features]].iloc[:3].assign(pin_id=[10, 20, 30])
    got = two_tower_inputs(frame(), pins, IDS, VECTORS, length=2)
    user = [f.name for f in got.user_encoder.spec.features]
    assert "user__saves_30d" not in user and "user__missing" not in user  # null / constant in every training pair
    assert user == ["surface"]  # the only user-side column with values in this frame
    assert [f.name for f in got.pin_encoder.spec.features] == ["pin__category", "pin__age_days", "pin__missing"]
    # no pin feature at all in training (the tiny world's first day): the pin tower reads the embedding alone
    got = two_tower_inputs(frame().assign(pin__category=None, pin__age_days=None, pin__missing=True), pins, IDS,
                           VECTORS, length=2)
    assert got.pins.dense.shape == (4, 0) and got.pins.categorical.shape == (4, 0)
    assert got.splits["test"].pin_dense.shape == (1, 0)
    with pytest.raises(ValueError, match="no context or user feature has a value"):
        two_tower_inputs(frame().assign(surface=None), pins, IDS, VECTORS, length=2)
