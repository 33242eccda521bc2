"""`pinrec report` on the tiny world: the newest bundle's page where --out says, and a clear error for
a version that does not exist."""
from __future__ import annotations

import re

import pytest

from pinrec.jobs.report.report import default_path


def test_default_path_is_under_the_artifacts():
    from pinrec.jobs.config import load_config

    cfg = load_config(overrides={"storage": {"artifacts": "/data/artifacts"}})
    assert default_path(cfg, "20260110T120000Z-abc").uri == "/data/artifacts/reports/20260110T120000Z-abc.html"


@pytest.mark.spark
def test_pinrec_report_writes_the_newest_versions_page_where_asked(tiny_world, tmp_path, capsys):
    from pinrec.jobs.orchestration.cli import main

    cfg, result = tiny_world
    sets = [f"storage.warehouse={cfg.storage.warehouse}", f"storage.artifacts={cfg.storage.artifacts}",
            f"publish.store_uri={cfg.publish.store_uri}", f"storage.mlflow_tracking_uri={cfg.storage.mlflow_tracking_uri}",
            f"storage.landing={cfg.storage.landing}", "spark.master=local[1]"]
    sets = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "pages" / "run.html"
    assert main(["report", "--out", str(out), *sets]) == 0  # no REF: the newest version, the demo's
    assert capsys.readouterr().out.strip() == str(out)
    page, demo = out.read_text(), result.report.read_text()
    assert f"<title>pinrec run report: {cfg.publish.name}/{result.bundle.version}</title>" in page

    def parts(text):
        return re.findall(r'data-(?:section|plot|missing)="([^"]+)"', text)

    assert parts(page) == parts(demo) and len(parts(page)) > 8  # the demo's page, regenerated

    assert main(["report", "no-such-version", "--out", str(out), *sets]) == 2
    err = capsys.readouterr().err
    assert f"no bundle {cfg.publish.name}/no-such-version" in err and result.bundle.version in err
