"""The benchmark scripts still run: ``--help`` for each (imports and arguments), and a tiny real run
of those that need no warehouse, checking the table they print. Speed is never asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def run(script: str, *args: str, timeout: int = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_help(script: Path):
    out = run(script.name, "--help", timeout=120)
    assert out.startswith("usage:") and "--" in out


@pytest.mark.slow
def test_serve_tiny_bundle(tmp_path):
    # the four channels of the bundle before the two-tower and cf ones (their build is the full test's: +10 s)
    out = run("serve.py", "--pins", "3000", "--users", "300", "--requests", "200", "--warmup", "2", "--redis", "off",
              "--user-embeddings", "saves,closeups", "--no-two-tower", "--cf-share", "0", "--workdir", str(tmp_path))
    assert "| recommend (wall) |" in out and "| stage: ranker |" in out
    assert "users=300" in out and "returned 50.0 on average" in out
    assert "targets: load <= 1 s:" in out
    # the same requests with 3 session actions each and with recommend.quotas (defaults)
    assert "| step | snapshot: p50 (ms) | snapshot: p99 (ms) | recent: p50 (ms) | recent: p99 (ms) | quotas: p50" in out
    assert "recommend p99 <= 15 ms with 3 session actions per request:" in out
    assert "recommend p99 <= 15 ms with quotas ann=300,category=25,trending=25,fresh=25:" in out
    assert "column snapshot: channels ann, category, trending, fresh;" in out and "column baseline" not in out


@pytest.mark.slow
@pytest.mark.full
def test_serve_with_the_prerank_beside(tmp_path):
    out = run("serve.py", "--pins", "3000", "--users", "300", "--requests", "200", "--warmup", "2", "--redis", "off",
              "--ann-candidates", "300", "--prerank-keep", "50", "--recent", "0", "--quotas", "off", "--channel-costs",
              "--workdir", str(tmp_path))
    assert "| prerank 50: p50 (ms) | prerank 50: p99 (ms) |" in out and "| stage: prerank |" in out
    assert "pre-ranker: 7 categorical + 28 dense inputs; merged candidates per request: mean" in out
    # all six channels: the two-tower's user tower through the ONNX exporter, its index, the cf files; and the
    # four channels served before them, re-measured beside
    assert "two-tower: user tower ONNX parity" in out and "cf: 300 pins x 16 factors (exact IDMap,Flat), 300 users" in out
    assert "column snapshot: channels ann, two_tower, cf, category, trending, fresh; merged candidates" in out
    assert "column baseline: channels ann, category, trending, fresh; merged candidates" in out
    assert "| step | snapshot: p50 (ms) | snapshot: p99 (ms) | baseline: p50 (ms) | baseline: p99 (ms) | prerank 50:" in out
    assert "recommend p99 <= 15 ms with the column baseline:" in out and "recommend p99, CPU time of the thread: " in out
    costs = [line.split("|")[1].strip() for line in out.split("| candidates() of one channel alone")[1].splitlines()[2:8]]
    assert costs == ["ann", "two_tower", "cf", "category", "trending", "fresh"]


@pytest.mark.slow
def test_ranker_scoring_variants():
    out = run("ranker.py", "--candidates", "50", "--runs", "200", "--warmup", "2")
    for row in ("| torch eager |", "| onnx fp32 |", "| onnx int8 |", "| encoder (numpy) |"):
        assert row in out
    assert "targets (wall clock): ONNX fp32 p50 <= 2 ms:" in out


@pytest.mark.slow
def test_ann_quick():
    out = run("ann.py", "--quick", "--systems", "pinrec,flat")
    assert "20000" in out and "recall" in out.lower()


@pytest.mark.slow
def test_oracle_gap_one_small_world():
    out = run("ranker_oracle_gap.py", "--impressions-per-day", "3000", "--days", "3", "--epochs", "2",
              "--levels", "0", "--users", "60", "--pins", "300")
    assert "latent relevance" in out and "gap" in out


@pytest.mark.slow
def test_pinsage_one_small_graph():
    out = run("pinsage.py", "--sizes", "500")
    assert "| 500 |" in out and "pairs/s" in out


@pytest.mark.slow
def test_pinsage_warm_tiny_world():
    out = run("pinsage_warm.py", "--days", "3", "--users", "60", "--pins", "240", "--epochs", "1")
    assert "| 2026-01-06 |" in out and "| 2026-01-07 |" in out and "medians over the 1 warm-started days" in out
    gate = out.split("with the day before's warm model: ")[1]  # what the stability floor is set from
    assert "cold restart 0." in gate and "untrained 0." in gate and "shuffled 0." in gate


@pytest.mark.full  # 100 s: six fresh JVMs (3 stages x 2 storages); its --help runs in make test
@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.integration
def test_pit_join_storage_tiny_run(tmp_path):
    report = tmp_path / "report.json"
    out = run("pit_join_storage.py", "--n", "2000", "--repeats", "1", "--spark-cores", "1", "--shuffle-partitions", "2",
              "--driver-memory", "1g", "--work-dir", str(tmp_path / "work"), "--out", str(report))
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"read the 4 inputs (full scan, noop)", "PIT join, 3 views (noop write)",
                         "PIT join written as Delta"}
    assert "N = 2,000 impressions" in out and "Where the difference goes:" in out
    runs = {s: e["runs"] for s, e in json.loads(report.read_text())["storages"].items()}
    assert set(runs) == {"local", "s3a"} and all(len(r) == 1 for r in runs.values())
    local, s3a = runs["local"][0], runs["s3a"][0]
    for run_ in (local, s3a):
        assert all(run_[stage]["seconds"] > 0 for stage in ("read", "join", "delta"))
        assert run_["read"]["bytes_written"] == run_["join"]["bytes_written"] == 0  # noop writes
        assert run_["delta"]["bytes_written"] > 0
    # the s3a run really went to S3: the inputs were read with GETs and the table written with PUTs
    assert s3a["read"]["GET"] >= 4 and s3a["delta"]["PUT"] > 0 and s3a["read"]["PUT"] == 0
    assert "GET" not in local["read"]
    ratio = s3a["delta"]["seconds"] / local["delta"]["seconds"]
    assert f"| {ratio:.2f}x |" in rows["PIT join written as Delta"]
    # each run's table was removed by the benchmark; the inputs stay in the work dir it was given
    assert not (tmp_path / "work" / "local" / "run0").exists()
    assert sorted(p.name for p in (tmp_path / "work" / "local" / "inputs").iterdir()) == sorted(
        ["spine.parquet", "user_features.parquet", "pin_features.parquet", "user_category_features.parquet"])


def test_the_demo_benchmark_counts_the_cpu_of_its_process_tree():
    """``tree_cpu``: this process and its live children (a busy child here), the java ones apart."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("demo_spark_jobs", REPO / "benchmarks" / "demo_spark_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not os.path.isdir("/proc/self"):
        assert module.tree_cpu() == (0, 0)
        return
    spin = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.6: pass\nprint('spun', flush=True)\ntime.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "spun"  # the child has used >= 0.6 CPU-s and now sleeps
        total, java = module.tree_cpu()
        assert total >= time.process_time() + 0.5 and java == 0
    finally:
        child.kill()
        child.wait()
