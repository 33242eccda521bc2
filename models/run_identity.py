"""What makes a checkpoint the same training run, so that a resume never continues another one.

A trainer with ``checkpoint_dir`` resumes from the checkpoint it finds there. The folder outlives a run
(a daily job, a settings search training several configurations): a checkpoint of yesterday's graph, or
of another trial's settings, must be refused, not continued (it would train zero epochs and hand back
its old weights as today's model). A checkpoint records :func:`run_identity`: the configuration without
the settings a resume may change (:data:`RESUMABLE`: how long, where it writes, how it reports, where
it runs) and a digest of the training data's tensors; :func:`check_resume` compares it with the
resuming trainer's and raises ``ValueError`` naming what differs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

#: configuration keys a resume may change: more epochs, another folder or device, progress bars
RESUMABLE = frozenset({"epochs", "checkpoint_dir", "checkpoint_every", "progress", "device", "inference_batch_size"})


def tensor_digest(*tensors: Tensor | None) -> str:
    """sha256 of the tensors' dtypes, shapes and values (None counts as absent)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none;")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run_identity(cfg: Any, data_digest: str, **extra: Any) -> str:
    """The run's identity as JSON: ``cfg`` (a dataclass) less :data:`RESUMABLE`, the data digest, ``extra``."""
    config = {k: v for k, v in asdict(cfg).items() if k not in RESUMABLE}
    return json.dumps({"config": config, "data": data_digest, **extra}, sort_keys=True, default=str)


def check_resume(saved: str | None, current: str, path: str) -> None:
    """Raise ``ValueError`` unless the checkpoint at ``path`` (its recorded identity ``saved``) belongs to the
    run ``current`` describes."""
    if saved is None:
        raise ValueError(f"checkpoint {path} records no run identity (written before 2026-12-07): it cannot be "
                         "told apart from another run's; remove it to train afresh")
    old, new = json.loads(saved), json.loads(current)
    differ = {k: (old["config"].get(k), v) for k, v in new["config"].items() if old["config"].get(k) != v}
    differ |= {k: (old.get(k), new[k]) for k in new if k not in ("config", "data") and old.get(k) != new[k]}
    if old.get("data") != new["data"]:
        differ["data"] = "the training data differ (graph, features or pairs)"
    if differ:
        raise ValueError(f"checkpoint {path} belongs to another run (checkpoint, this run): {differ}; remove it "
                         "or point checkpoint_dir elsewhere to train afresh")
