"""Pure torch / torch-geometric models: no paths, no Spark.

Names are imported lazily (PEP 562), so ``import pinrec.models.config`` (torch-free hyper-parameter
configs, declared by ``pinrec.jobs.config``) does not pull torch into every ``pinrec`` command.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "FixedNeighborhoods": "pinrec.models.random_walk",
    "ImportanceNeighborSampler": "pinrec.models.random_walk",
    "Neighborhood": "pinrec.models.random_walk",
    "PinBoardGraph": "pinrec.models.random_walk",
    "PinSage": "pinrec.models.pinsage",
    "PinSageConv": "pinrec.models.pinsage",
    "max_margin_loss": "pinrec.models.losses",
    "CrossNet": "pinrec.models.dcn",
    "CrossNetMix": "pinrec.models.dcn",
    "MMoE": "pinrec.models.mmoe",
    "Ranker": "pinrec.models.ranker",
    "RankerData": "pinrec.models.ranker_trainer",
    "RankerTrainer": "pinrec.models.ranker_trainer",
    "Calibration": "pinrec.models.calibration",
    "fit_calibration": "pinrec.models.calibration",
    "CalibrationConfig": "pinrec.models.config",
    "RankerConfig": "pinrec.models.config",
    "RankerTrainConfig": "pinrec.models.config",
    "PinSageTrainConfig": "pinrec.models.config",
    "PinSageTrainer": "pinrec.models.pinsage_loop",
    "BoardPairSampler": "pinrec.models.pair_sampler",
    "WalkPairSampler": "pinrec.models.pair_sampler",
    "HardNegativeSampler": "pinrec.models.pair_sampler",
    "TwoTower": "pinrec.models.two_tower",
    "TwoTowerConfig": "pinrec.models.config",
    "TwoTowerTrainer": "pinrec.models.two_tower_loop",
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
    "TwoTower",
    "TwoTowerConfig",
    "TwoTowerTrainer",
    "WalkPairSampler",
    "fit_calibration",
    "max_margin_loss",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
