"""One rank of the 2-process DDP test of the two-tower trainer (``tests/models/test_two_tower_trainer.py``):

    python -m torch.distributed.run --standalone --nproc_per_node=2 -m tests.models.ddp_two_tower_worker OUT_DIR

Trains the unchanged :class:`~pinrec.models.two_tower_trainer.TwoTowerTrainer` over gloo and writes
``OUT_DIR/rank<r>.pt`` (parameters, loss history, world size).
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace

import torch
import torch.distributed as dist

from pinrec.models.two_tower_trainer import TwoTowerTrainer
from tests.models.test_two_tower_trainer import CATS, CFG, world


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        train, pins = world(256, seed=0)
        cfg = replace(CFG, epochs=3, checkpoint_dir=os.path.join(out, "checkpoints"))
        trainer = TwoTowerTrainer(train, pins, cfg, 0.1, [3], [CATS + 1])
        history = trainer.fit()
        state = {"params": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
                 "history": history, "world_size": trainer.world_size}
        torch.save(state, os.path.join(out, f"rank{dist.get_rank()}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
