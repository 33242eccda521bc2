"""The daily steps on a Spark standalone cluster that shares nothing with the driver but S3.

The worker runs in a private mount namespace in which the driver's working directory and the
checkout are empty: its executors get pinrec's code and the jars from the driver over the
network (``addPyFile``, ``spark.jars``), the AWS keys from their own environment (as a node's
role would give them), and every byte of data from SeaweedFS through s3a.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.support.cluster import can_hide_folders, running_standalone_cluster
from tests.support.repo import REPO
from tests.support.s3 import BUCKET

# make test-all only (``full``: 4.0 min idle on 2026-12-06): make test runs the standalone cluster through the
# real scheduler's s3-cluster test (tests/dags/test_scheduler.py)
pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow, pytest.mark.full]

DATA_SUFFIXES = (".parquet", ".json", ".jsonl", ".crc", ".checkpoint")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.skipif(not can_hide_folders(), reason="needs root and unshare to hide the driver's disk from the worker")
def test_daily_steps_and_graph_run_on_a_cluster_sharing_only_the_object_store(s3_server, tmp_path):
    driver, cluster, scratch = tmp_path / "driver", tmp_path / "cluster", tmp_path / "scratch"
    for folder in (driver, cluster, scratch):
        folder.mkdir()
    s3 = s3_server.options
    keys = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    prefix = f"shared-nothing-{uuid.uuid4().hex[:10]}"
    with running_standalone_cluster(cluster, hide=[driver, REPO],
                                    worker_env={**keys, "SPARK_LOCAL_DIRS": str(scratch)}) as (url, env, _):
        settings = [
            f"storage.landing=s3a://{BUCKET}/{prefix}/landing", f"storage.warehouse=s3a://{BUCKET}/{prefix}/warehouse",
            f"storage.artifacts=s3a://{BUCKET}/{prefix}/artifacts", f"spark.master={url}",
            "spark.app_name=pinrec-shared-nothing", f"spark.jars_dir={REPO / 'var' / 'jars'}",
            "spark.shuffle_partitions=2", f"spark.extra={json.dumps({'spark.local.dir': str(scratch)})}",
            "synthetic.users=40", "synthetic.pins=150", "synthetic.days=3", "synthetic.impressions_per_day=800",
            "synthetic.new_users_per_day=0", "synthetic.fresh_pins_per_day=0",
        ]
        run = subprocess.run(
            [sys.executable, "-m", "tests.support.lake_driver", *[a for s in settings for a in ("--set", s)]],
            cwd=driver, env=dict(env, **keys, AWS_ENDPOINT_URL=s3.endpoint_url, PYTHONPATH=str(REPO)),
            capture_output=True, text=True, timeout=900, check=False)
        worker_log = (cluster / "logs" / "spark-worker.log").read_text()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:] + worker_log[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["master"] == url and result["executors"] == 1
    assert result["valid"]["users"] == 40 and result["valid"]["impressions"] > 1500
    assert result["training_set"] > 0 and all(n > 0 for n in result["features"].values())
    assert result["graph"]["graph_edges"] > 0

    # Every table and landing file is on S3 ...
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key)
    keys_on_s3 = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
                  for o in page.get("Contents", [])]
    for table in ("impressions", "actions", "quarantine", "training_set", "graph_edges", "features_pin"):
        assert any(k.startswith(f"{prefix}/warehouse/{table}/_delta_log/") for k in keys_on_s3), table
    assert any(k.startswith(f"{prefix}/landing/impressions/dt=") for k in keys_on_s3)
    # ... and nothing of it on a local disk: the driver's folder stays empty; the worker holds only
    # its executor sandboxes (logs, fetched jars and code); Spark's scratch space no data files.
    assert _files(driver) == []
    sandbox = cluster / "work"
    assert list(sandbox.glob("app-*")), "no executor ran on the worker"
    stray = [p for p in _files(cluster) if sandbox not in p.parents and p.suffix != ".log"]
    assert stray == []
    data = [p for p in _files(sandbox) + _files(scratch) if p.name.endswith(DATA_SUFFIXES)]
    assert data == []
    assert s3.secret_key not in run.stdout + run.stderr + worker_log  # keys never reach a log
