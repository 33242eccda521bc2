"""``pinrec ranker`` (:mod:`pinrec.jobs.ranking.ranker`) under ``torchrun``: rank 0 runs the job, the other ranks
train with it.

    python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli ranker [--config FILE] [--set ...]

Rank 0 starts Spark, reads and encodes the training set, and does everything around training
(calibration, evaluation, baselines, export, MLflow), as the one-process job does. Every ranker it
trains (:func:`pinrec.jobs.ranking.ranker_train.train`: the served ranker, its no-position twin, the debiasing
seed pairs) is announced first; the other ranks, in :func:`follow`, build the same seeded model and
fit it with rank 0, each on its share of the rows (:class:`~pinrec.models.ranker_trainer.RankerTrainer`
under ``DistributedDataParallel``: gradients averaged over the ranks, ``batch_size`` per rank).
The encoded splits (:class:`~pinrec.jobs.ranking.ranker_encode.EncodedData`) travel once; later
announcements carry the training config and whether the position is used. The announcements go
over a gloo group even when training uses NCCL.
"""
from __future__ import annotations

from pinrec.jobs.io.distributed import broadcast, in_group

_sent: dict[str, object] = {"encoded": None}


def announce(data, model_cfg, train_cfg, position: bool) -> None:
    """On rank 0 of a process group: tell the other ranks to train this ranker (on ``data``, an
    :class:`~pinrec.jobs.ranking.ranker_encode.EncodedData`) with it. A no-op in a one-process run and on the
    other ranks (whose :func:`follow` trains the same ranker)."""
    if not in_group():
        return
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return
    broadcast(("train", None if _sent["encoded"] is data else data, model_cfg, train_cfg, position))
    _sent["encoded"] = data


def release() -> None:
    """On rank 0, after the job: tell the other ranks it is over. After a failure rank 0 just
    exits: the others may be inside a collective of the trainer, and torchrun stops them."""
    if in_group():
        broadcast(("done",))
        _sent["encoded"] = None


def follow(train) -> int:
    """On ranks > 0: train every ranker rank 0 announces, until it releases them; returns the
    number of rankers trained. ``train``: the job's training step
    (:func:`pinrec.jobs.ranking.ranker_train.train`), passed in so that this module never imports the
    step that imports it."""
    if not in_group():
        raise RuntimeError("follow() needs the process group of pinrec.jobs.io.distributed.process_group()")
    trained, data = 0, None
    while True:
        message = broadcast()
        if message[0] == "done":
            return trained
        _, sent, model_cfg, train_cfg, position = message
        data = sent if sent is not None else data
        if data is None:
            raise RuntimeError("rank 0 announced training before sending the data")
        train(data, model_cfg, train_cfg, position=position)
        trained += 1
