import dataclasses
import datetime as dt
import io
import re

import pytest

from pinrec.jobs.report.facts import Ingestion, PinSageFacts, RankerFacts, RunFacts
from pinrec.jobs.report.page import FAST, SECTIONS, blessing, drift, render, summary
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
                      drift={"score_psi.save": 0.03, "feature_drift.user__saves_30d": 0.4, "label_rate_shift.save": 0.01},
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
        "max_feature_drift": 0.5, "tracking_uri": "sqlite:////tmp/mlflow.db"}
    base.update(changes)
    return RunFacts(**base)


@pytest.fixture(scope="module")
def page() -> str:
    return render(facts())


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="[^"]+" data-section="([^"]+)"', page)


def plots_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="plot" data-plot="([^"]+)">(.*?)</figure>', page, re.DOTALL))


def test_every_section_in_order_with_its_plots_drawn(page):
    assert page.startswith("<!DOCTYPE html>") and "<title>pinrec run report: homefeed/v2</title>" in page
    assert sections(page) == list(SECTIONS)
    found = plots_of(page)
    assert sorted(found) == ["auc", "ctr_by_position", "feature_drift", "funnel_recall", "loss", "recall_latency",
                             "reliability", "rows", "score_psi"]
    for name, body in found.items():
        assert re.search(r'<g id="data-\d+"', body) or body.startswith('<img alt='), name
    assert "mlflow ui --backend-store-uri sqlite:////tmp/mlflow.db" in page
    assert "<script" not in page and not re.search(r'(?:src|href)="(?!data:|#)', page)  # one self-contained file


def test_absent_parts_say_why_instead_of_an_empty_plot(page):
    missing = dict(re.findall(r'<p class="missing" data-missing="([^"]+)">(.*?)</p>', page, re.DOTALL))
    assert set(missing) == {"stability", "retrieval_eval", "debias"}
    assert missing["debias"] == FAST  # evaluation: fast trains no twin
    assert missing["stability"].startswith("a first embedding version")
    bare = render(facts(ingestion="the bundle's lineage reaches no raw table version", pinsage="no pin_embeddings table",
                        ranker="no /x/metrics.json", manifest=dataclasses.replace(
                            facts().manifest, metrics=Metrics(k=10, recall_at_k=0.9, latency_p50_ms=1, latency_p99_ms=2))))
    assert sections(bare) == list(SECTIONS)
    assert sorted(plots_of(bare)) == ["recall_latency"]
    for name in ("ingestion", "pinsage", "ranker", "drift", "funnel_recall"):
        assert f'data-missing="{name}"' in bare


def test_blessing_reasons_and_text_are_escaped(page):
    assert "<li>recall@10 0.9700 &lt; baseline 0.9900 - 0.0100 &lt;b&gt;</li>" in page
    assert "NOT blessed" in page and "serves v1, not this version" in page
    promoted = facts(channel_version="v2")
    assert "channel <code>prod</code> serves this version" in summary(promoted)
    assert "promoted to channel <code>prod</code>" in blessing(promoted)


def test_drift_names_its_windows_and_what_is_still_warming_up(page):
    assert "Day 2026-01-07 (40 rows) against train 2026-01-05..2026-01-06 (120 rows)" in page
    assert "Features still in warm-up, not compared: user__saves_30d." in page
    m = facts().manifest
    young = facts(manifest=dataclasses.replace(m, metrics=dataclasses.replace(
        m.metrics, drift={"feature_drift.pin__age_days": 0.5})), drift={"warming_up": ["score:save", "score:closeup"]})
    body = drift(young)
    assert 'data-missing="score_psi">no score PSI: score:save, score:closeup still in warm-up' in body
    assert 'data-plot="feature_drift"' in body and 'data-plot="score_psi"' not in body
