"""The benchmark scripts still run: ``--help`` for each (imports and arguments), and a tiny real run
of those that need no warehouse, checking the table they print. Speed is never asserted here."""
from __future__ import annotations

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
    out = run("serve.py", "--pins", "3000", "--users", "300", "--requests", "200", "--warmup", "2", "--redis", "off",
              "--user-embeddings", "saves,closeups", "--workdir", str(tmp_path))
    assert "| recommend (wall) |" in out and "| stage: ranker |" in out
    assert "users=300" in out and "returned 50.0 on average" in out
    assert "targets: load <= 1 s:" in out


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
