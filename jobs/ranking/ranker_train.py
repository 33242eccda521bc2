"""Steps 3 and 4 of the ranker job, train and calibrate.

* :func:`train`: a seeded :class:`~pinrec.models.ranker.Ranker` (DCN-v2 cross network, Wang et al.,
  WWW 2021, and an MMoE over arch, Ma et al., KDD 2018, with a position tower) fitted by
  :class:`~pinrec.models.ranker_trainer.RankerTrainer` on ``train`` with early stopping on
  ``validation``. Under torchrun every rank trains it (:func:`pinrec.jobs.ranking.ranker_ddp.announce`).
* :func:`calibrate`: one calibrator per task (Platt or isotonic, :mod:`pinrec.models.calibration`)
  fitted on the position-free ``validation`` logits.
* :func:`served_probabilities`: both for another seed, returning the calibrated test probabilities
  (the no-position twin and the debiasing seed pairs of the evaluate step).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .ranker_encode import SPLITS, EncodedData

if TYPE_CHECKING:
    from pinrec.models.calibration import Calibration
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig
    from pinrec.models.ranker_trainer import RankerData, RankerTrainer, TrainResult


@dataclass(frozen=True, eq=False)
class TrainedRanker:
    """``trainer`` holds the fitted model (best epoch's weights) and its logit offset; ``result``
    its history; ``splits[s]``: the split as the trainer reads it (position zeroed when trained
    without it)."""

    trainer: RankerTrainer
    result: TrainResult
    splits: dict[str, RankerData]

    @property
    def device(self) -> str:
        return str(self.trainer.device)

    def logits(self, split: str, with_position: bool = False) -> np.ndarray:
        """(B_s, T) float32 logits of ``split``: position-free (as served) or with the position tower."""
        return self.trainer.predict_logits(self.splits[split], with_position=with_position)


@dataclass(frozen=True, eq=False)
class CalibratedRanker:
    """A :class:`TrainedRanker` and its per-task :class:`~pinrec.models.calibration.Calibration`."""

    trained: TrainedRanker
    calibration: Calibration

    def probabilities(self, split: str) -> np.ndarray:
        """(B_s, T) float64 calibrated position-free probabilities of ``split``: the served score's inputs."""
        return self.calibration.apply(self.trained.logits(split))


def train(data: EncodedData, model_cfg: RankerConfig, train_cfg: RankerTrainConfig,
          hook: Callable[[int, dict[str, float]], None] | None = None, position: bool = True) -> TrainedRanker:
    """A Ranker seeded with ``train_cfg.seed`` fitted on ``data``; ``hook(epoch, metrics)`` after each
    epoch; ``position=False`` zeroes the position (index 0 = unknown) in every split, so the position
    tower is a constant (the no-position twin). On rank 0 of a torchrun group every rank trains it."""
    import torch

    from pinrec.models.ranker import Ranker
    from pinrec.models.ranker_trainer import RankerData, RankerTrainer

    from .ranker_ddp import announce

    announce(data, model_cfg, train_cfg, position)  # torchrun: all ranks train
    splits = {}
    for s in SPLITS:
        batch = data.batches[s]
        if not position:
            batch = type(batch)(batch.categorical, batch.dense, np.zeros_like(batch.position))
        splits[s] = RankerData.from_batch(batch, data.labels[s], data.weights[s])
    enc = data.encoder
    torch.manual_seed(train_cfg.seed)
    trainer = RankerTrainer(Ranker(enc.cardinalities, len(enc.dense_names), enc.num_positions, model_cfg), train_cfg,
                            on_epoch_end=hook)
    with tempfile.TemporaryDirectory() as tmp:
        result = trainer.fit(splits["train"], splits["validation"], data.negative_rate,
                             checkpoint=os.path.join(tmp, "ckpt.pt"))
    return TrainedRanker(trainer, result, splits)


def calibrate(trained: TrainedRanker, data: EncodedData, calibration_cfg: CalibrationConfig) -> CalibratedRanker:
    """Per-task calibrators fitted on the position-free validation logits (B_val, T), ``sample_weight``
    weighted, so that the served probabilities match the label rates."""
    from pinrec.models.calibration import fit_calibration

    cal = fit_calibration(trained.logits("validation"), data.labels["validation"], data.tasks, calibration_cfg,
                          data.weights["validation"])
    return CalibratedRanker(trained, cal)


def served_probabilities(data: EncodedData, model_cfg: RankerConfig, train_cfg: RankerTrainConfig,
                         calibration_cfg: CalibrationConfig, seed: int, position: bool) -> np.ndarray:
    """(B_test, T) calibrated position-free test probabilities of a ranker trained with ``seed``
    (``position=False``: without the position feature)."""
    trained = train(data, model_cfg, replace(train_cfg, seed=seed), position=position)
    return calibrate(trained, data, calibration_cfg).probabilities("test")
