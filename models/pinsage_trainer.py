"""Training PinSage (Ying et al., KDD 2018): the names this module held before it was split.

Jobs, benchmarks and tests import these from here; each lives in the module of its idea:

- :mod:`pinrec.models.pinsage_loop`: :class:`PinSageTrainer` (the epochs, determinism, DDP,
  ``embed``) and :func:`graph_to`;
- :mod:`pinrec.models.pinsage_batches`: the trainer's batches (seeded streams, each rank's anchors,
  a batch's embeddings, the loss step);
- :mod:`pinrec.models.pinsage_checkpoint`: checkpoints and warm start, :data:`CHECKPOINT_FILE`,
  :data:`ARCHITECTURE`;
- :mod:`pinrec.models.losses`: :func:`ranking_loss` (beside :func:`~pinrec.models.losses.max_margin_loss`);
- :mod:`pinrec.models.training_runtime`: :func:`resolve_device`, :func:`deterministic_kernels` and
  ``EpochHook``, shared with the two-tower trainer;
- :mod:`pinrec.models.config`: :class:`PinSageTrainConfig`.
"""
from __future__ import annotations

from pinrec.models.config import PinSageTrainConfig
from pinrec.models.losses import ranking_loss
from pinrec.models.pinsage_checkpoint import ARCHITECTURE, CHECKPOINT_FILE
from pinrec.models.pinsage_loop import PinSageTrainer, graph_to
from pinrec.models.training_runtime import (
    EpochHook,
    deterministic_kernels,
    resolve_device,
)

__all__ = [
    "ARCHITECTURE",
    "CHECKPOINT_FILE",
    "EpochHook",
    "PinSageTrainConfig",
    "PinSageTrainer",
    "deterministic_kernels",
    "graph_to",
    "ranking_loss",
    "resolve_device",
]
