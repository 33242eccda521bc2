"""``jobs.ranker`` under ``torchrun``: rank 0 runs the job, the other ranks train with it.

    python -m torch.distributed.run --nproc_per_node=K -m jobs.ranker [--config FILE] [--set ...]

Rank 0 starts Spark, reads and encodes the training set, and does everything around training
(calibration, evaluation, baselines, export, MLflow), as the one-process job does. Every ranker it
trains (:func:`jobs.ranker._train`: the served ranker, its no-position twin, the debiasing seed
pairs) is announced first; the other ranks, in :func:`follow`, build the same seeded model and
fit it with rank 0, each on its share of the rows (:class:`~models.ranker_trainer.RankerTrainer`
under ``DistributedDataParallel``: gradients averaged over the ranks, ``batch_size`` per rank).
The encoded splits travel once; later announcements carry the training config and whether the
position is used. The announcements go over a gloo group even when training uses NCCL.

The other ranks wait while rank 0 reads, evaluates and exports: the process group's timeout
(:data:`TIMEOUT`) bounds that wait, so it is generous.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

#: How long a rank waits for the others (torch's default, 30 min, is shorter than a large read).
TIMEOUT = dt.timedelta(hours=6)

_group: dict[str, Any] = {"control": None, "sent": None}


def world_size() -> int:
    """Ranks in the initialised process group; 1 when there is none."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@contextlib.contextmanager
def process_group() -> Iterator[int]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): initialise the process group (NCCL with CUDA, else
    gloo) and the gloo control group, yield this rank, tear both down. Otherwise yield 0."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0
        return
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)
    try:
        _group["control"] = dist.new_group(backend="gloo", timeout=TIMEOUT)
        yield dist.get_rank()
    finally:
        _group.update(control=None, sent=None)
        dist.destroy_process_group()


def _broadcast(message: Any = None) -> Any:
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0, group=_group["control"])
    return box[0]


def announce(encoded, labels, weights, enc, model_cfg, train_cfg, negative_rate: float, position: bool) -> None:
    """On rank 0 of a process group: tell the other ranks to train this ranker with it. A no-op
    in a one-process run and on the other ranks (whose :func:`follow` trains the same ranker)."""
    if _group["control"] is None:
        return
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return
    data = None if _group["sent"] is encoded else (encoded, labels, weights, enc)
    _broadcast(("train", data, model_cfg, train_cfg, negative_rate, position))
    _group["sent"] = encoded


def release() -> None:
    """On rank 0, after the job: tell the other ranks it is over. After a failure rank 0 just
    exits: the others may be inside a collective of the trainer, and torchrun stops them."""
    if _group["control"] is not None:
        _broadcast(("done",))


def follow() -> int:
    """On ranks > 0: train every ranker rank 0 announces, until it releases them; returns the
    number of rankers trained."""
    from .ranker import _train

    if _group["control"] is None:
        raise RuntimeError("follow() needs the process group of process_group()")
    trained, data = 0, None
    while True:
        message = _broadcast()
        if message[0] == "done":
            return trained
        _, sent, model_cfg, train_cfg, negative_rate, position = message
        data = sent if sent is not None else data
        if data is None:
            raise RuntimeError("rank 0 announced training before sending the data")
        encoded, labels, weights, enc = data
        _train(encoded, labels, weights, enc, model_cfg, train_cfg, negative_rate, position=position)
        trained += 1
