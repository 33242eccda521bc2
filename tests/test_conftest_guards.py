"""The suite's two guards (tests/conftest.py), run on a throw-away copy of the test tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO

CASES = '''
import pytest

@pytest.fixture
def spark():  # stands in for the real session fixture: the guard looks at fixture names
    return "session"

def test_unmarked_spark_fixture(spark):
    pass

@pytest.mark.spark
def test_marked_spark_fixture(spark):
    pass

def test_writes_into_checkout():
    (REPO / "var" / "stray.txt").write_text("x")

def test_writes_into_tmp(tmp_path):
    (tmp_path / "fine.txt").write_text("x")
'''


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    (root / "var").mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests" / "conftest.py")
    shutil.copytree(REPO / "tests" / "support", root / "tests" / "support",
                    ignore=shutil.ignore_patterns("__pycache__"))  # the conftest imports its fixtures
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_cases.py").write_text("from tests.support.repo import REPO\n" + body)
    (root / "setup.cfg").write_text("[tool:pytest]\nmarkers =\n    spark: starts Spark\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "tests"],
                          check=False, cwd=root, capture_output=True, text=True, timeout=120)


def test_guards_fail_unmarked_spark_and_writes_into_the_checkout(tmp_path):
    done = _run(tmp_path, CASES)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "test_unmarked_spark_fixture uses ['spark'] (Spark) but has no @pytest.mark.spark" in out
    assert "3 passed, 1 error" in out  # failed in set-up, before its fixtures
    assert "tests wrote into the checkout" in out and "added var/stray.txt" in out


def test_guards_pass_a_clean_run(tmp_path):
    done = _run(tmp_path, CASES.split("def test_unmarked_spark_fixture")[0]
                + "@pytest.mark.spark\ndef test_ok(spark, tmp_path):\n    (tmp_path / 'a').write_text('x')\n")
    assert done.returncode == 0, done.stdout + done.stderr
