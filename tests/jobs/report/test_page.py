import dataclasses
import re

import pytest

from pinrec.jobs.report.page import SECTIONS, blessing, drift, render, summary
from pinrec.jobs.report.page_models import FAST
from pinrec.schemas.manifest import Metrics
from tests.support.run_facts import facts


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
    assert sorted(found) == ["auc", "category_psi", "ctr_by_position", "feature_drift", "funnel_recall", "loss",
                             "recall_latency", "reliability", "rows", "score_psi"]
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


def test_null_rate_shifts_are_listed_and_an_all_warming_run_says_so():
    m = facts().manifest
    shifted = facts(manifest=dataclasses.replace(m, metrics=dataclasses.replace(m.metrics, drift={
        "feature_drift.pin__age_days": 0.5, "null_rate_shift.pin__age_days": 0.04,
        "null_rate_shift.user__saves_1d": 0.17})), max_null_rate_shift=0.5)
    body = drift(shifted)
    assert "Null-rate shift per feature, |null rate of the day - of the window| (the gate&#x27;s limit: 0.5):" in body
    assert re.findall(r"<tr><td>([^<]+)</td><td class=\"n\">([^<]+)</td></tr>", body) == [
        ("user__saves_1d", "0.17"), ("pin__age_days", "0.04")]
    young = facts(manifest=dataclasses.replace(m, metrics=dataclasses.replace(m.metrics, drift={})),
                  drift={"day": "2026-01-07", "reference": "train 2026-01-05", "warming_up": ["pin__age_days", "score:save"]})
    assert drift(young) == ('<p class="missing" data-missing="drift">nothing compared yet: every signal is still in '
                            'warm-up (pin__age_days, score:save)</p>')


def test_categorical_drift_is_drawn_against_the_gate_with_the_unseen_shares():
    m = facts().manifest
    shifted = facts(manifest=dataclasses.replace(m, metrics=dataclasses.replace(m.metrics, drift={
        "category_psi.surface": 0.31, "category_psi.category": 0.02, "unseen_category_share.category": 0.35,
        "unseen_category_share.surface": 0.0, "category_psi_noise.surface": 0.2})),
        max_category_psi=0.25, category_psi_noise_factor=3.0, max_unseen_category_share=0.2)
    body = drift(shifted)
    plot = plots_of(body)["category_psi"]
    assert len(re.findall(r'<g id="data-\d+"', plot)) == 2 and "gate limit" in plot
    # each column's own limit on its bar: category 0.25 (no noise measured), surface 3 x 0.2 = 0.6
    ticks = re.findall(r'<use xlink:href="#m[0-9a-f]+" x="([\d.]+)" y="([\d.]+)" style="fill: #ff0000', plot)
    assert len(ticks) == 3 and float(ticks[1][0]) > 2 * float(ticks[0][0])  # the third: the legend's
    assert ("Unseen-category share per feature, of the day's non-null rows those in a category the window never had "
            "(the gate&#x27;s limit: 0.2):" in body)
    assert re.findall(r"<tr><td>([^<]+)</td><td class=\"n\">([^<]+)</td></tr>", body) == [
        ("category", "0.35"), ("surface", "0")]
    older = facts(manifest=dataclasses.replace(m, metrics=dataclasses.replace(m.metrics, drift={
        "feature_drift.pin__age_days": 0.5})))  # a manifest from before categorical features were compared
    assert 'data-missing="category_psi">the manifest records no category PSI' in drift(older)
