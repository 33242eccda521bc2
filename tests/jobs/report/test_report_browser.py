"""The tiny world's run report (written by the demo's last step) opened in headless Chromium, Debian's
package (.ci/setup.sh installs it): the page renders, every section is there, every plot drew data,
the only parts without a plot are those the run has no data for, and the ingestion table holds the
demo's own batch accounting. The Chromium component's one test (``integration``; in ``make test``)."""
from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(tmp_path: Path, *args: str) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def drew(svg: str) -> bool:
    """An inline SVG with at least one data group holding a non-empty path (a bar, a line, a marker)."""
    groups = re.findall(r'<g id="data-\d+"[^>]*>(.*?)</g>', svg, re.DOTALL)
    return any(re.search(r'<path [^>]*d="M[^"]+"', g) or "<use " in g for g in groups)


def painted(data: bytes) -> bool:
    """A PNG that decodes and is not one flat colour."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    return pixels.size > 0 and float(pixels.std()) > 0.01


def table_rows(section: str) -> dict[str, list[str]]:
    rows = re.findall(r"<tr><td>([a-z_]+)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", section)
    return {name: re.findall(r"<td[^>]*>([^<]*)</td>", cells) for name, cells in rows}


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: .ci/setup.sh installs Debian's package")
def test_the_tiny_worlds_report_renders_in_headless_chromium_with_data_in_every_plot(tiny_world, tmp_path):
    from pinrec.jobs.report.page import SECTIONS

    cfg, result = tiny_world
    version = result.bundle.version
    assert result.report == Path(cfg.storage.artifacts) / "reports" / f"{version}.html"
    start = time.perf_counter()
    dom = chromium(tmp_path, "--dump-dom", result.report.as_uri())
    chromium(tmp_path, "--window-size=1100,900", f"--screenshot={tmp_path / 'top.png'}", result.report.as_uri())
    seconds = time.perf_counter() - start

    assert f"<title>pinrec run report: {cfg.publish.name}/{version}</title>" in dom
    assert re.findall(r'<section id="[^"]+" data-section="([^"]+)"', dom) == list(SECTIONS)
    figures = dict(re.findall(r'<figure class="plot" data-plot="([^"]+)">(.*?)</figure>', dom, re.DOTALL))
    assert sorted(figures) == ["auc", "category_psi", "ctr_by_position", "funnel_recall", "loss", "recall_latency",
                               "reliability", "rows"]
    for name, body in figures.items():
        image = re.search(r'src="data:image/png;base64,([^"]+)"', body)
        assert painted(base64.b64decode(image[1])) if image else drew(body), name
    # absent only where this run has no data: on a 3-day world every feature of the views and the scores are in
    # warm-up (its one training day is the first, before any feature has a value; the raw tables' categorical
    # columns are compared), the newest day's labels are not mature, a first embedding version, no `pinrec
    # eval-retrieval`
    missing = dict(re.findall(r'<p class="missing" data-missing="([^"]+)">(.*?)</p>', dom, re.DOTALL))
    assert sorted(missing) == ["feature_drift", "label_rate", "retrieval_eval", "score_psi", "stability"], missing
    assert "still in warm-up" in missing["score_psi"] and missing["feature_drift"].startswith("no numeric feature")
    assert re.search(r"Features still in warm-up, not compared: [^<]*user__saves_1d", dom)
    assert missing["stability"].startswith("a first embedding")
    assert painted((tmp_path / "top.png").read_bytes())

    # the ingestion table holds the demo's own batch accounting, quarantined rows and their reasons
    ingestion = dom[dom.index('data-section="ingestion"'):dom.index('data-section="drift"')]
    rows = table_rows(ingestion.split("<h3>Quarantine reasons</h3>")[0])
    for report in result.reports:
        cells = [int(c.replace(",", "")) for c in rows[report.table][2:]]
        assert cells == [report.rows_in, report.rows_valid, report.rows_quarantined, report.duplicates_dropped]
    assert sum(r.rows_quarantined for r in result.reports) > 0
    for report in result.reports:
        for reason, n in report.quarantined_by_reason.items():
            shown = html.escape(reason, quote=False)  # as Chromium serialises text ("->" is "-&gt;")
            assert f"<td>{report.table}</td><td>{shown}</td><td class=\"n\">{n:,}</td>" in ingestion
    assert seconds < 15, f"two chromium runs took {seconds:.1f} s"
