"""Where a trainer runs: the device, torch's deterministic kernels, the ``torch.distributed`` world.

Shared by :mod:`pinrec.models.pinsage_loop` and :mod:`pinrec.models.two_tower_loop`:

* :func:`resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda"`` to a :class:`torch.device`;
* :func:`deterministic_kernels`: a method decorator; with several CPU threads some accumulating
  kernels otherwise add floats in a varying order (two runs on the demo world differed by up to 3e-7);
* :func:`world`: ``(rank, world_size)``, ``(0, 1)`` unless ``torch.distributed`` is initialised
  (``torchrun``: the caller calls ``init_process_group``);
* ``EpochHook``: the type of a trainer's ``on_epoch_end(epoch, metrics)``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.distributed as dist

EpochHook = Callable[[int, dict[str, float]], None]


def deterministic_kernels(method: Callable) -> Callable:
    """Runs ``method`` under ``torch.use_deterministic_algorithms(True, warn_only=True)`` and
    restores the caller's setting after. Measured on the 2-core demo world: the same embeddings
    bit for bit on every run (without it, within 3e-7 of each other), and no slower."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        enabled, warn_only = torch.are_deterministic_algorithms_enabled(), \
            torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return method(*args, **kwargs)
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    return wrapper


def resolve_device(name: str, field: str = "pinsage.device") -> torch.device:
    """``"auto"`` -> the current CUDA device when there is one (``torchrun`` callers set it per local
    rank with ``torch.cuda.set_device``), else the CPU. ``"cuda"`` without a CUDA device raises, naming
    ``field`` (the config key the caller read ``name`` from)."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{field}='cuda' but no CUDA device is available")
    return torch.device("cuda", torch.cuda.current_device())


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


__all__ = ["EpochHook", "deterministic_kernels", "resolve_device", "world"]
