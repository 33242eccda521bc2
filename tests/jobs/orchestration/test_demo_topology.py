"""``pinrec demo`` unchanged on the production topology: ``pinrec stack`` (SeaweedFS, a Spark
standalone master + worker, an MLflow server), every storage location on S3; then the
base-install path answers ``pinrec recommend`` from the bundle on S3 and the registry holds the
published ranker and index. In ``make test-all`` (marker ``full``): minutes on 2 cores."""
from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from pinrec.jobs.orchestration.stack import down, up
from tests.support.repo import REPO

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow, pytest.mark.full]


def _env_file(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip("'\"")
    return out


def test_demo_runs_unchanged_on_s3_a_standalone_cluster_and_an_mlflow_server(tmp_path):
    state = tmp_path / "stack"
    up(state)
    try:
        env = dict(os.environ, **_env_file(state / "env.sh"), SPARK_LOCAL_IP="127.0.0.1")
        config = ["--config", str(state / "pinrec.yaml"),
                  "--set", f"spark.jars_dir={REPO / 'var' / 'jars'}", "--set", "spark.shuffle_partitions=4",
                  "--set", "synthetic.users=150", "--set", "synthetic.pins=600",
                  "--set", "synthetic.impressions_per_day=3000", "--set", "pinsage.epochs=2",
                  "--set", "ranker_train.epochs=3", "--set", "blessing.min_auc=0.0"]
        cli = [sys.executable, "-m", "pinrec.jobs.orchestration.cli"]
        demo = subprocess.run([*cli, "demo", *config], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1800, check=False)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
        rec = subprocess.run([*cli, "recommend", *config, "--user", "1", "--user", "2", "--k", "5"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300, check=False)
        assert rec.returncode == 0, rec.stdout[-3000:] + rec.stderr[-3000:]
        answers = [line for line in rec.stdout.splitlines() if line.startswith("user ")]
        assert len(answers) == 2 and all(line.count("(") == 5 for line in answers), rec.stdout
        # nothing of the pipeline was written under the working directory: it all went to S3
        local = [p for p in tmp_path.rglob("*") if p.is_file() and state not in p.parents]
        assert local == []
        secret = env["AWS_SECRET_ACCESS_KEY"]
        assert secret not in demo.stdout + demo.stderr + rec.stdout + rec.stderr
        # ... nor into anything written to S3: Delta commits, manifests, channel pointers, reports
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=secret, region_name="us-east-1")
        texts = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="pinrec")
                 for o in page.get("Contents", []) if o["Key"].endswith((".json", ".yaml", ".txt", ".crc"))]
        assert any("/_delta_log/" in k for k in texts) and any(k.endswith("manifest.json") for k in texts)
        leaked = [k for k in texts if secret.encode() in client.get_object(Bucket="pinrec", Key=k)["Body"].read()]
        assert leaked == []
    finally:
        down(state)
