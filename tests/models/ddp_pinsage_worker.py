"""One rank of the 2-process DDP test (``tests/models/test_pinsage_trainer.py``); run under torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/models/ddp_pinsage_worker.py OUT_DIR

Trains the unchanged :class:`~pinrec.models.pinsage_trainer.PinSageTrainer` on the two-community graph over
gloo and writes ``OUT_DIR/rank<r>.pt`` (parameters, loss history, embeddings).
"""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from pinrec.models.pinsage_trainer import PinSageTrainConfig, PinSageTrainer
from tests.support.graphs import community_graph, train_config


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        graph = community_graph()
        features = torch.randn(graph.num_pins, 6, generator=torch.Generator().manual_seed(0))
        cfg: PinSageTrainConfig = train_config(epochs=6, hard_negatives_from_epoch=6,
                                               checkpoint_dir=os.path.join(out, "checkpoints"))
        trainer = PinSageTrainer(graph, features, cfg)
        history = trainer.fit()
        state = {"params": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
                 "history": history, "world_size": trainer.world_size, "embeddings": trainer.embed()}
        torch.save(state, os.path.join(out, f"rank{dist.get_rank()}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
