"""The ingestion job, unchanged, on a Spark standalone cluster started on 127.0.0.1."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.repo import REPO

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]


def test_ingest_runs_unchanged_on_a_standalone_cluster(standalone_cluster, tmp_path):
    url, env = standalone_cluster
    settings = [
        f"storage.landing={tmp_path / 'landing'}", f"storage.warehouse={tmp_path / 'warehouse'}",
        f"spark.jars_dir={REPO / 'var' / 'jars'}", "spark.shuffle_partitions=2",
        "synthetic.users=50", "synthetic.pins=200", "synthetic.days=1", "synthetic.impressions_per_day=2000",
        "synthetic.new_users_per_day=0", "synthetic.fresh_pins_per_day=0", "synthetic.fault_rate=0",
        "synthetic.duplicate_rate=0",
    ]
    args = [a for s in settings for a in ("--set", s)]
    cli = [sys.executable, "-m", "pinrec.jobs.orchestration.cli"]
    subprocess.run(cli + ["generate", *args], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    run = subprocess.run(cli + ["ingest", *args, "--set", f"spark.master={url}", "--set", "spark.app_name=pinrec-cluster-test"],
                         cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if "valid=" in line}
    assert set(lines) == {"users", "pins", "boards", "pin_board_edges", "impressions", "actions"}
    assert "valid=50 " in lines["users"]
    # The application really ran on the cluster: the worker launched an executor for it.
    apps = list((tmp_path / "work").glob("app-*"))
    assert apps, "no executor was launched on the standalone worker"
