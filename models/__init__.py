"""Pure torch / torch-geometric models: no paths, no Spark.

Names are imported lazily (PEP 562), so ``import models.config`` (torch-free hyper-parameter
configs, declared by ``jobs.config``) does not pull torch into every ``pinrec`` command.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "FixedNeighborhoods": "models.random_walk",
    "ImportanceNeighborSampler": "models.random_walk",
    "Neighborhood": "models.random_walk",
    "PinBoardGraph": "models.random_walk",
    "PinSage": "models.pinsage",
    "PinSageConv": "models.pinsage",
    "max_margin_loss": "models.losses",
    "CrossNet": "models.dcn",
    "CrossNetMix": "models.dcn",
    "MMoE": "models.mmoe",
    "Ranker": "models.ranker",
    "RankerData": "models.ranker_trainer",
    "RankerTrainer": "models.ranker_trainer",
    "Calibration": "models.calibration",
    "fit_calibration": "models.calibration",
    "CalibrationConfig": "models.config",
    "RankerConfig": "models.config",
    "RankerTrainConfig": "models.config",
    "PinSageTrainConfig": "models.config",
    "PinSageTrainer": "models.pinsage_trainer",
    "BoardPairSampler": "models.pair_sampler",
    "WalkPairSampler": "models.pair_sampler",
    "HardNegativeSampler": "models.pair_sampler",
}

__all__ = [
    "BoardPairSampler",
    "Calibration",
    "CalibrationConfig",
    "CrossNet",
    "CrossNetMix",
    "FixedNeighborhoods",
    "HardNegativeSampler",
    "ImportanceNeighborSampler",
    "MMoE",
    "Neighborhood",
    "PinBoardGraph",
    "PinSage",
    "PinSageConv",
    "PinSageTrainConfig",
    "PinSageTrainer",
    "Ranker",
    "RankerConfig",
    "RankerData",
    "RankerTrainConfig",
    "RankerTrainer",
    "WalkPairSampler",
    "fit_calibration",
    "max_margin_loss",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
