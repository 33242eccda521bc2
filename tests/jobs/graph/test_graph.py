"""The Pin–Board graph: dedup, dense ids, time split, cold pins kept, feature vector layout."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from pinrec.jobs.graph.graph import build_graph, evaluation_start
from tests.support.timezones import ZONES, driver_time_zone

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 1, 1)


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_graph_build(spark):
    pins = spark.createDataFrame([
        (30, h(0), "art", [0.5, 0.25]), (10, h(0), "food", None), (20, h(1), "art", [1.0, 0.0]),
        (40, h(100), "art", None),  # created after the cut-off: not a node
    ], "pin_id bigint, created_at timestamp, category string, content_embedding array<float>")
    boards = spark.createDataFrame([(7, "art"), (8, "food")], "board_id bigint, topic string")
    edges = spark.createDataFrame([
        (30, 7, h(5)), (30, 7, h(2)),   # saved twice: the first save wins
        (20, 7, h(30)),                 # after eval_from: eval edge
        (10, 8, h(3)),
        (20, 8, h(60)),                 # after the cut-off: dropped
    ], "pin_id bigint, board_id bigint, saved_at timestamp")
    features = spark.createDataFrame([
        (30, h(24), h(25), 0.2, 0.1, 9, 1), (30, h(48), h(80), 0.9, 0.9, 99, 9),  # second not yet created
    ], "pin_id bigint, feature_ts timestamp, created_ts timestamp, closeup_rate_30d double, save_rate_30d double, "
       "impressions_30d bigint, board_count bigint")
    graph = build_graph(pins, boards, edges, features, cutoff=h(48), eval_from=h(24))

    assert graph.feature_names[:2] == ("category=art", "category=food")
    assert graph.feature_names[-3:] == ("has_content", "content_0", "content_1")
    nodes = {r["pin_id"]: r for r in graph.pin_nodes.collect()}
    assert {p: r["pin_idx"] for p, r in nodes.items()} == {10: 0, 20: 1, 30: 2}
    f30 = nodes[30]["features"]
    names = list(graph.feature_names)
    assert f30[names.index("category=art")] == 1.0 and f30[names.index("category=food")] == 0.0
    assert f30[names.index("closeup_rate_30d")] == pytest.approx(0.2)  # the h(48) row is not known yet
    assert f30[names.index("content_0")] == pytest.approx(0.5) and f30[names.index("has_content")] == 1.0
    assert nodes[10]["features"][names.index("has_content")] == 0.0
    assert nodes[10]["features"][names.index("closeup_rate_30d")] == 0.0  # no feature row: zeros
    edges_out = {(r["pin_id"], r["board_id"]): (r["pin_idx"], r["board_idx"], r["saved_at"], r["split"])
                 for r in graph.edges.collect()}
    assert edges_out == {(30, 7): (2, 0, h(2), "train"), (20, 7): (1, 0, h(30), "eval"),
                         (10, 8): (0, 1, h(3), "train")}
    assert {r["board_id"]: r["board_idx"] for r in graph.board_nodes.collect()} == {7: 0, 8: 1}
    with pytest.raises(ValueError, match="after the cut-off"):
        build_graph(pins, boards, edges, features, cutoff=h(1), eval_from=h(2))


def test_evaluation_edges_start_at_the_first_test_day():
    days = [dt.date(2026, 1, d) for d in (4, 1, 2, 3)]
    assert evaluation_start(days, 2) == dt.datetime(2026, 1, 3)
    assert evaluation_start(days, 0) == dt.datetime(2026, 1, 4)    # at least one day
    assert evaluation_start(days, 21) == dt.datetime(2026, 1, 2)   # never every day
    with pytest.raises(ValueError, match="at least 2 days"):
        evaluation_start(days[:1], 1)


@pytest.mark.parametrize("zone", ZONES)
def test_the_cut_offs_hold_on_a_driver_in_any_time_zone(spark, zone):
    """Naive cut-offs mean UTC: a driver in New York or Tokyo must not move them by its offset (PySpark
    reads a naive datetime in the local zone). Inputs are made from aware times, which it converts exactly."""
    def u(hours: float) -> dt.datetime:
        return h(hours).replace(tzinfo=dt.UTC)

    with driver_time_zone(zone):
        pins = spark.createDataFrame([(1, u(0), "art", None), (2, u(47), "art", None), (3, u(49), "art", None)],
                                     "pin_id bigint, created_at timestamp, category string, "
                                     "content_embedding array<float>")
        boards = spark.createDataFrame([(7, "art")], "board_id bigint, topic string")
        edges = spark.createDataFrame([(1, 7, u(23)), (2, 7, u(47.5)), (1, 8, u(25)), (2, 8, u(49))],
                                      "pin_id bigint, board_id bigint, saved_at timestamp")
        features = spark.createDataFrame([(1, u(24), u(24), 0.2, 0.1, 9, 1), (1, u(48), u(49), 0.9, 0.9, 99, 9)],
                                         "pin_id bigint, feature_ts timestamp, created_ts timestamp, "
                                         "closeup_rate_30d double, save_rate_30d double, impressions_30d bigint, "
                                         "board_count bigint")
        graph = build_graph(pins, boards, edges, features, cutoff=h(48), eval_from=h(24))
        nodes = {r["pin_id"]: r["features"] for r in graph.pin_nodes.collect()}
        names = list(graph.feature_names)
        split = {(r["pin_id"], r["board_id"]): r["split"] for r in graph.edges.collect()}
    assert sorted(nodes) == [1, 2]  # pin 3, created an hour after the cut-off, is not a node
    assert split == {(1, 7): "train", (2, 7): "eval", (1, 8): "eval"}  # (2, 8): saved after the cut-off
    assert nodes[1][names.index("closeup_rate_30d")] == pytest.approx(0.2)  # the row created after the cut-off: no
    assert nodes[2][names.index("log1p_age_days")] == pytest.approx(math.log1p(1 / 24), rel=1e-5)


def test_only_the_most_frequent_categories_get_a_feature_of_their_own(spark, monkeypatch):
    from pinrec.jobs.graph import graph as graph_module

    monkeypatch.setattr(graph_module, "MAX_CATEGORIES", 2)
    pins = spark.createDataFrame([(i, h(0), c, None) for i, c in enumerate(["b", "b", "a", "a", "a", "c", "d"], 1)],
                                 "pin_id bigint, created_at timestamp, category string, content_embedding array<float>")
    edges = spark.createDataFrame([(1, 7, h(2))], "pin_id bigint, board_id bigint, saved_at timestamp")
    features = spark.createDataFrame([], "pin_id bigint, feature_ts timestamp, created_ts timestamp, "
                                         "closeup_rate_30d double, save_rate_30d double, impressions_30d bigint, "
                                         "board_count bigint")
    boards = spark.createDataFrame([(7, "a")], "board_id bigint, topic string")
    graph = build_graph(pins, boards, edges, features, cutoff=h(48), eval_from=h(24))
    assert graph.feature_names[:3] == ("category=a", "category=b", "category=other")
    one_hot = {r["pin_id"]: r["features"][:3] for r in graph.pin_nodes.collect()}
    assert one_hot == {1: [0, 1, 0], 2: [0, 1, 0], 3: [1, 0, 0], 4: [1, 0, 0], 5: [1, 0, 0], 6: [0, 0, 1],
                       7: [0, 0, 1]}


def test_a_cut_off_before_any_pin_or_save_is_refused_not_an_empty_graph(spark):
    pins = spark.createDataFrame([(1, h(10), "art", None)], "pin_id bigint, created_at timestamp, category string, "
                                                             "content_embedding array<float>")
    boards = spark.createDataFrame([(7, "art")], "board_id bigint, topic string")
    edges = spark.createDataFrame([(1, 7, h(30))], "pin_id bigint, board_id bigint, saved_at timestamp")
    features = spark.createDataFrame([], "pin_id bigint, feature_ts timestamp, created_ts timestamp, "
                                         "closeup_rate_30d double, save_rate_30d double, impressions_30d bigint, "
                                         "board_count bigint")
    with pytest.raises(ValueError, match=r"no pin was created before the cut-off 2026-01-01 05:00:00.*`pinrec ingest`"):
        build_graph(pins, boards, edges, features, cutoff=h(5), eval_from=h(1))
    with pytest.raises(ValueError, match=r"no pin was saved to a board before the cut-off 2026-01-01 20:00:00"):
        build_graph(pins, boards, edges, features, cutoff=h(20), eval_from=h(15))
    no_boards = spark.createDataFrame([], "pin_id bigint, board_id bigint, saved_at timestamp")
    with pytest.raises(ValueError, match="would have no edges"):
        build_graph(pins, boards.limit(0), no_boards, features, cutoff=h(48), eval_from=h(24))
