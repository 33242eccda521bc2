"""The ranker job's inputs: the negative rate from the weights, the checks on a ready frame, the
columns a spec needs."""
from __future__ import annotations

import pandas as pd
import pytest

from pinrec.export.encoding import training_set_spec
from pinrec.jobs.ranking.ranker_inputs import (
    KEYS,
    infer_negative_rate,
    needed_columns,
    read_training_set,
)

TASKS = ("save", "closeup")


def test_negative_rate_follows_from_the_weights_of_negatives():
    frame = pd.DataFrame({"save": [1, 0, 0, 0], "closeup": [1, 1, 0, 0], "sample_weight": [1.0, 1.0, 4.0, 4.0]})
    assert infer_negative_rate(frame, TASKS) == 0.25
    assert infer_negative_rate(frame.iloc[:2], TASKS) == 1.0  # no negative row: nothing was sampled


def test_read_training_set_checks_a_frame():
    frame = pd.DataFrame({"a": [1], "split": ["train"]})
    out, meta = read_training_set(frame, None, ["split", "a"])
    assert list(out.columns) == ["split", "a"] and meta == {}
    with pytest.raises(ValueError, match=r"lacks columns \['b'\]"):
        read_training_set(frame, None, ["a", "b"])
    with pytest.raises(ValueError, match="SparkSession"):
        read_training_set(object(), None, ["a"])


def test_needed_columns_lists_each_feature_once_then_labels_and_keys():
    spec = training_set_spec()
    cols = needed_columns(spec, TASKS)
    assert len(cols) == len(set(cols)) and cols[-len(TASKS) - len(KEYS):] == [*TASKS, *KEYS]
    assert spec.position in cols and all(f.name in cols for f in spec.features if not hasattr(f, "left"))


@pytest.mark.spark
def test_read_training_set_goes_by_the_newest_build(spark, tmp_path):
    """Days 5-8 built, then a backfill of days 1-4: the ranker trains on days 1-2, validates on 3 and
    tests on 4, not also on test day 8 with day 4's test rows before train days 5-6."""
    import datetime as dt

    from pinrec.jobs.io.catalog import Catalog

    for days in ((5, 6, 7, 8), (1, 2, 3, 4)):
        rows = [(f"e{d}", dt.date(2026, 1, d), split) for d, split in zip(days, ("train", "train", "validation", "test"))]
        Catalog(spark, str(tmp_path)).write("training_set", spark.createDataFrame(
            rows, "event_id string, dt date, split string"), days=[r[1] for r in rows])
    frame, meta = read_training_set(spark, str(tmp_path), ["event_id", "split"])
    assert frame.to_dict("list") == {"event_id": ["e1", "e2", "e3", "e4"],
                                     "split": ["train", "train", "validation", "test"]}
    assert meta["training_set_version"] == 1
