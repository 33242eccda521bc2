"""Training the two-tower model (Yi et al., RecSys 2019): the names this module held before it was split.

Jobs and tests import these from here; each lives in the module of its idea:

- :mod:`pinrec.models.two_tower_data`: :class:`PinTable`, :class:`TwoTowerData`, :func:`user_inputs`;
- :mod:`pinrec.models.two_tower_loop`: :class:`TwoTowerTrainer` (one temperature: the epochs,
  determinism, DDP, the embeddings) and :func:`build_model`;
- :mod:`pinrec.models.two_tower_checkpoint`: the trainer's checkpoints;
- :mod:`pinrec.models.two_tower_temperature`: :func:`fit_two_tower` (one model per temperature, the
  best validation recall wins), :class:`TwoTowerFit`, :func:`recall_at_k`;
- :mod:`pinrec.models.losses`: :func:`in_batch_softmax_loss` (the logQ-corrected in-batch softmax);
- :mod:`pinrec.models.training_runtime`: ``EpochHook`` and the device and determinism helpers shared
  with the PinSage trainer.
"""
from __future__ import annotations

from pinrec.models.losses import in_batch_softmax_loss
from pinrec.models.training_runtime import EpochHook
from pinrec.models.two_tower_data import PinTable, TwoTowerData, user_inputs
from pinrec.models.two_tower_loop import TwoTowerTrainer, build_model
from pinrec.models.two_tower_temperature import TwoTowerFit, fit_two_tower, recall_at_k

__all__ = [
    "EpochHook",
    "PinTable",
    "TwoTowerData",
    "TwoTowerFit",
    "TwoTowerTrainer",
    "build_model",
    "fit_two_tower",
    "in_batch_softmax_loss",
    "recall_at_k",
    "user_inputs",
]
