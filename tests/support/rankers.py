"""A planted ranking problem and a small ranker with its configs."""
from __future__ import annotations

import numpy as np
import torch

from pinrec.models.ranker import Ranker, RankerConfig
from pinrec.models.ranker_trainer import (
    RankerData,
    RankerTrainConfig,
)

CARDS = (6, 4, 5)


SMALL = RankerConfig(embedding_dim=4, deep_channels=(32, 16), expert_channels=(16,), tower_channels=(8,),
                     mmoe_experts=2)


def planted(n: int, seed: int, noise: bool = False) -> RankerData:
    """Labels from a known logit: dense[0], a categorical match and a position bias."""
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, c, n) for c in CARDS], 1)
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    pos = rng.integers(1, 11, n)
    logit = 1.5 * dense[:, 0] + 1.5 * (cat[:, 0] % 4 == cat[:, 1]) - 0.15 * pos
    save = rng.uniform(size=n) < 1 / (1 + np.exp(-(logit - 1.0 + dense[:, 1])))
    closeup = rng.uniform(size=n) < 1 / (1 + np.exp(-(logit + 0.5)))
    labels = np.stack([save, closeup], 1).astype(np.float32)
    if noise:
        labels = rng.permutation(labels)
    weights = np.where(labels.sum(1) > 0, 1.0, 2.0)

    class Batch:
        categorical, position = cat.astype(np.int64), pos.astype(np.int64)

    Batch.dense = dense
    return RankerData.from_batch(Batch, labels, weights)


def model(seed: int = 0) -> Ranker:
    torch.manual_seed(seed)
    return Ranker(CARDS, 3, num_positions=11, config=SMALL)


def config(**kw) -> RankerTrainConfig:
    return RankerTrainConfig(**{"epochs": 3, "batch_size": 128, "lr": 3e-3, "progress": False, **kw})
