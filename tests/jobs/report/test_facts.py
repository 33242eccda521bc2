import math

from pinrec.jobs.report.facts import funnel_recall, index_points, ranker_auc


def test_funnel_recall_groups_channels_by_cut_off_merged_last():
    funnel = {"candidates.merged.recall@500.saves": 0.6, "candidates.ann.recall@500.saves": 0.4,
              "candidates.cf.recall@50.saves": 0.1, "candidates.ann.recall@50.saves": 0.2,
              "candidates.ann.recall@50.closeups": 0.9, "served.hr@50": 0.3, "candidates.cf.recall@500.saves": math.nan}
    assert funnel_recall(funnel) == {"recall@50": {"cf": 0.1, "ann": 0.2},
                                     "recall@500": {"ann": 0.4, "merged": 0.6}}
    assert list(funnel_recall(funnel)["recall@500"]) == ["ann", "merged"]
    assert funnel_recall(funnel, "closeups") == {"recall@50": {"ann": 0.9}}
    assert funnel_recall({}) == {}


def test_index_points_label_candidates_and_find_the_built_one():
    index = {"factory": "IVF16,Flat", "candidates": [
        {"factory": "Flat", "search_params": {}, "recall_at_k": 1.0, "latency": {"p50_ms": 0.5}},
        {"factory": "IVF16,Flat", "search_params": {"nprobe": 4}, "recall_at_k": 0.95, "latency": {"p50_ms": 0.2}},
        {"factory": "HNSW32", "recall_at_k": 0.9, "latency": {}}]}
    points, chosen = index_points(index)
    assert [p["label"] for p in points] == ["Flat", "IVF16,Flat (nprobe=4)"]
    assert chosen == {"label": "IVF16,Flat (nprobe=4)", "recall": 0.95, "latency_ms": 0.2, "factory": "IVF16,Flat"}
    assert index_points({"factory": "Flat"}) == ([], None)


def test_ranker_auc_by_task_keeps_finite_values_in_row_order():
    rows = [{"model": "ranker", "task": "save", "auc": 0.7}, {"model": "oracle", "task": "save", "auc": 0.8},
            {"model": "ranker", "task": "closeup", "auc": math.nan}, {"model": "logreg", "task": "save", "auc": 0.65}]
    assert ranker_auc(rows) == {"save": {"ranker": 0.7, "oracle": 0.8, "logreg": 0.65}}
    assert list(ranker_auc(rows)["save"]) == ["ranker", "oracle", "logreg"]
