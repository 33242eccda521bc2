"""A :class:`~pinrec.jobs.report.facts.RunFacts` on inline values for the run report's tests."""
from __future__ import annotations

import datetime as dt
import io

from pinrec.jobs.report.facts import Ingestion, PinSageFacts, RankerFacts, RunFacts
from pinrec.schemas.manifest import Blessing, FileEntry, Lineage, Manifest, Metrics

SHA = "ab" * 32


def png() -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def facts(**changes) -> RunFacts:
    files = (FileEntry("index/index.json", 10, SHA, "index_meta"), FileEntry("index/shard_000.faiss", 40, SHA, "index_shard"),
             FileEntry("ranker/ranker.onnx", 30, SHA, "ranker"), FileEntry("ranker/encoder.json", 5, SHA, "encoder"),
             FileEntry("pins/pins.parquet", 9, SHA, "pins"))
    metrics = Metrics(k=10, recall_at_k=0.97, latency_p50_ms=0.2, latency_p99_ms=0.9, auc={"save": 0.7},
                      calibration_error={"save": 0.02},
                      drift={"score_psi.save": 0.03, "feature_drift.user__saves_30d": 0.4, "label_rate_shift.save": 0.01,
                             "category_psi.surface": 0.02, "unseen_category_share.surface": 0.0},
                      funnel={"candidates.ann.recall@50.saves": 0.2, "candidates.merged.recall@50.saves": 0.3,
                              "served.hr@50": 0.25})
    manifest = Manifest("homefeed", "v2", dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC),
                        Lineage("deadbeef", "c0ffee", {"ranker": "r1"}, {"pins": 3, "pin_embeddings": 1}), metrics,
                        Blessing(False, ("recall@10 0.9700 < baseline 0.9900 - 0.0100 <b>",), "v1"), files)
    base = {
        "manifest": manifest, "store_uri": "/tmp/serving", "channel": "prod", "channel_version": "v1",
        "ingestion": Ingestion({"pins": {"valid": 90, "quarantined": 2, "duplicates": 1, "in": 93}},
                            {"pins": {"bad_category": 2}}, {"pins": ("pins:b1",)}, {"pins": 3}),
        "pinsage": PinSageFacts("pinsage-abc", 1, "p1", ((0, 2.0), (1, 1.5)), {}),
        "ranker": RankerFacts("ranker-abc", "/tmp/artifacts/ranker/ranker-abc",
                           ({"model": "ranker", "task": "save", "auc": 0.7, "logloss": 0.3, "ece": 0.02, "ndcg": 0.4},),
                           evaluation="fast", run_id="r1", plots={"reliability": png(), "ctr_by_position": png()}),
        "index": {"factory": "Flat", "k": 10, "ntotal": 300, "num_shards": 1, "search_params": {},
               "measured": {"recall_at_k": 1.0, "latency": {"p50_ms": 0.1, "p99_ms": 0.3}, "queries": 100, "tuning": []},
               "candidates": [{"factory": "Flat", "recall_at_k": 1.0, "latency": {"p50_ms": 0.1}}]},
        "retrieval_eval": "no /tmp/artifacts/retrieval_eval/report.json: `pinrec eval-retrieval` has not been run",
        "drift": {"day": "2026-01-07", "reference": "train 2026-01-05..2026-01-06", "reference_rows": 120,
                  "current_rows": 40, "warming_up": ["user__saves_30d"]},
        "max_feature_drift": 0.5, "max_category_psi": 0.25, "tracking_uri": "sqlite:////tmp/mlflow.db"}
    base.update(changes)
    return RunFacts(**base)
