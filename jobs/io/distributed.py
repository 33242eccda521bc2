"""The process group of a job launched by ``torchrun`` (PinSage, the ranker): one place that starts
it, with a timeout fit for batch jobs, and a gloo group for rank 0's messages to the other ranks.

Rank 0 reads its inputs with Spark while the other ranks wait for them: torch's default timeout
(30 min) can be shorter than that read, so :data:`TIMEOUT` is generous.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

#: How long a rank waits for the others.
TIMEOUT = dt.timedelta(hours=6)

_control: dict[str, Any] = {"group": None}


def launched_with_ranks() -> bool:
    """True under ``torchrun`` with more than one process (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    """Ranks in the initialised process group; 1 when there is none."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@contextlib.contextmanager
def process_group() -> Iterator[int]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): initialise the process group (NCCL with CUDA, else
    gloo; each rank on GPU ``LOCAL_RANK``) and a gloo control group, yield this rank, tear both
    down. Otherwise yield 0 and start nothing."""
    if not launched_with_ranks():
        yield 0
        return
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)
    try:
        _control["group"] = dist.new_group(backend="gloo", timeout=TIMEOUT)
        yield dist.get_rank()
    finally:
        _control["group"] = None
        dist.destroy_process_group()


def in_group() -> bool:
    """True inside :func:`process_group` with more than one rank."""
    return _control["group"] is not None


def broadcast(message: Any = None) -> Any:
    """Rank 0's ``message`` (any picklable object) on every rank, over the gloo control group
    (CPU, also when training uses NCCL); the identity outside a group."""
    if _control["group"] is None:
        return message
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0, group=_control["group"])
    return box[0]
