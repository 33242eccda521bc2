"""One rank of the 2-process ranker DDP test (``tests/models/test_ranker_trainer.py``); run under torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/models/ddp_ranker_worker.py OUT_DIR

Trains the unchanged :class:`~pinrec.models.ranker_trainer.RankerTrainer` on the planted data over gloo
and writes ``OUT_DIR/rank<r>.pt`` (parameters, history, best metrics, validation logits).
"""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from pinrec.models.ranker_trainer import RankerTrainer
from tests.support.rankers import config, model, planted


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        trainer = RankerTrainer(model(), config(epochs=4))
        validation = planted(1500, 1)
        result = trainer.fit(planted(3000, 0), validation, checkpoint=os.path.join(out, "ranker.ckpt"))
        state = {"params": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
                 "history": result.history, "best_metrics": result.best_metrics,
                 "logits": torch.from_numpy(trainer.predict_logits(validation))}
        torch.save(state, os.path.join(out, f"rank{dist.get_rank()}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
