"""The wheel installs one ``pinrec`` namespace: with the base dependencies only, a fresh venv serves
(``pinrec.export.serving``) without torch, Spark or pandas, and has no bare ``jobs``/``models``/
``export``/``schemas`` packages."""
from __future__ import annotations

import shutil
import subprocess
import sys
import venv

import pytest

from tests.support.repo import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHECK = """
import sys
from pinrec.export.serving.loader import Loader
import pinrec.export.serving.recommend
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "pyspark", "pandas", "airflow", "mlflow"})
assert heavy == [], heavy
for bare in ("models", "jobs", "export", "schemas"):
    try:
        __import__(bare)
    except ImportError:
        continue
    raise AssertionError(f"import {bare} works: the wheel installed a bare package")
print("ok", Loader.__module__)
"""


def test_wheel_in_a_fresh_venv_with_the_base_install(tmp_path):
    src = tmp_path / "src"  # build from a copy: building writes build/ and *.egg-info next to setup.cfg
    skip = shutil.ignore_patterns(".git", "var", "*.egg-info", "__pycache__", ".*cache*", ".hypothesis")

    def ignore(folder: str, names: list[str]) -> set[str]:  # build/ and dist/ only at the root: export/build is code
        return set(skip(folder, names)) | ({"build", "dist"} & set(names) if folder == str(REPO) else set())

    shutil.copytree(REPO, src, ignore=ignore)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = wheels.glob("pinrec-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([str(python), "-c", CHECK], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok pinrec.export.serving.bundle_loader"  # Loader is defined there; loader.py re-exports it
