"""The repository root and the torchrun launcher the tests share."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def torchrun(*args: str, nproc: int = 2, timeout: int = 300, env: dict[str, str] | None = None) -> str:
    """Runs ``python -m torch.distributed.run --standalone --nproc_per_node=<nproc> <args>`` from the
    repository root, one thread per rank (pinrec imported as installed); fails with the tail of stderr unless it exits 0; returns stdout."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
