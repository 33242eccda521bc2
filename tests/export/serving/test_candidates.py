"""export/serving/candidates.py: top-n, reciprocal-rank fusion, cold-start channels and the merge, on tiny inline data."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pinrec.export.serving.candidates import (
    ColdStart,
    PinCatalog,
    fuse_ranked,
    merge,
    top,
)


def test_top_is_a_stable_descending_sort():
    v = np.array([1.0, 3.0, 2.0, 3.0, 0.0])
    assert top(v, 3).tolist() == [1, 3, 2]  # ties by position
    assert top(v, 9).tolist() == [1, 3, 2, 0, 4] and top(v, 0).tolist() == []


def test_fuse_ranked_weights_queries_by_recency_and_rank():
    ids = np.array([[7, 5, -1], [5, 9, 7]])
    uniq, total = fuse_ranked(ids, recency_half_life=1.0, rrf_k=0.0)
    assert uniq.tolist() == [5, 7, 9]
    # w = (1, 0.5); 1 / (rank + 1)
    np.testing.assert_allclose(total, [1 / 2 + 0.5 / 1, 1 / 1 + 0.5 / 3, 0.5 / 2])


def test_pin_catalog_and_cold_start_channels():
    pins = pa.table({"pin_id": [10, 20, 30, 40], "category": ["a", None, "b", "a"],
                     "created_at": pa.array([1, 4, 3, 2], pa.timestamp("us", "UTC")),
                     "nsfw": [False, False, None, False], "blocked": [False, False, False, True]})
    cat = PinCatalog(pins)
    assert cat.category_names == ["a", "b", None] and cat.cat.tolist() == [0, 2, 1, 0]
    assert cat.eligible.tolist() == [True, True, False, False]  # null nsfw counts as flagged
    rows, found = cat.rows(np.array([30, 31, 10]))
    assert rows[found].tolist() == [2, 0] and found.tolist() == [True, False, True]
    cold = ColdStart(cat.eligible, cat.created_us, cutoff_us=2, fresh=1, trending=1, cat=cat.cat,
                     pin_rows=np.arange(4), score=np.array([5.0, 9.0, 10.0, np.nan]))
    assert cold.fresh(2).tolist() == [0] and cold.fresh(4).tolist() == [1]  # none created after now
    assert cold.trending.tolist() == [1] and cold.category(0, 5).tolist() == [0] and cold.category(None, 5).size == 0
    with pytest.raises(ValueError, match="sorted by unique pin_id"):
        PinCatalog(pins.take([1, 0, 2, 3]))
    # a null id became NaN in a float array, passed the order check and hid every later pin from lookups
    with pytest.raises(ValueError, match="1 null pin_id"):
        PinCatalog(pins.set_column(0, "pin_id", pa.array([10, 20, None, 40], pa.int64())))
    with pytest.raises(ValueError, match="pin_id must be an integer column, got double"):
        PinCatalog(pins.set_column(0, "pin_id", pa.array([10.0, 20.0, 30.0, 40.0])))


def test_merge_keeps_first_channel_every_source_and_filters():
    ids = np.array([10, 20, 30, 40])
    parts = {"ann": np.array([1, 0]), "trending": np.array([0, 2, 3]), "fresh": np.array([3])}
    cand = merge(parts, ["ann", "trending", "fresh"], np.array([True, True, True, False]), ids, np.array([20]))
    assert cand.pin_ids.tolist() == [10, 30] and cand.channel_names() == ["ann", "trending"]
    assert cand.of("trending").tolist() == [10, 30] and cand.of("ann").tolist() == [10]


def test_quotas_cap_what_each_channel_adds_and_let_a_later_channel_bring_a_cut_pin():
    ids = np.arange(10, 18) * 10  # rows 0..7
    eligible = np.ones(8, bool)
    eligible[7] = False
    parts = {"ann": np.array([0, 1, 2, 3]), "trending": np.array([3, 1, 4, 7, 5]), "fresh": np.array([6, 2])}
    order = ["ann", "trending", "fresh"]
    cand = merge(parts, order, eligible, ids, np.array([110]), quotas={"ann": 2, "trending": 2})
    # ann adds rows 0 and 2 (row 1 is dropped by id; row 3 is over ann's quota), trending adds 3 (cut from
    # ann, proposed here too) and 4 (1 was dropped, 7 is flagged; 5 is over the quota), fresh has none
    assert cand.pin_ids.tolist() == [100, 120, 130, 140, 160]
    assert cand.channel_names() == ["ann", "ann", "trending", "trending", "fresh"]
    assert cand.of("ann").tolist() == [100, 120, 130]  # every channel that proposed a kept pin
    assert cand.of("fresh").tolist() == [120, 160]
    # no quotas: the same as the vectorised merge; a zero quota shuts a channel's new pins out
    plain = merge(parts, order, eligible, ids, np.array([110]))
    unlimited = merge(parts, order, eligible, ids, np.array([110]), quotas={"ann": 99})
    assert unlimited.pin_ids.tolist() == plain.pin_ids.tolist() and unlimited.mask.tolist() == plain.mask.tolist()
    assert unlimited.channel.tolist() == plain.channel.tolist()
    assert merge(parts, order, eligible, ids, _EMPTY_IDS, quotas={"trending": 0}).channel_names() == \
        ["ann", "ann", "ann", "ann", "fresh"]


_EMPTY_IDS = np.zeros(0, np.int64)
