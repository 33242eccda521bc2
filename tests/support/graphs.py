"""Tiny planted-community graphs and PinSage training configs."""
from __future__ import annotations

from dataclasses import replace

import torch

from pinrec.models.pinsage_trainer import (
    PinSageTrainConfig,
)
from pinrec.models.random_walk import (
    PinBoardGraph,
)


def community_graph(pins_per_side: int = 16, boards_per_side: int = 4, seed: int = 0) -> PinBoardGraph:
    """Two communities: pin p (p < pins_per_side on the left) saved to 2 boards of its own side; pin 0 of
    each side is on every board of its side, so each side is connected. The last pin has no board."""
    gen = torch.Generator().manual_seed(seed)
    n = 2 * pins_per_side
    pins = torch.arange(n - 1).repeat_interleave(2)
    side = (pins >= pins_per_side).long()
    boards = torch.randint(0, boards_per_side, (pins.numel(),), generator=gen) + boards_per_side * side
    hubs = torch.tensor([0, pins_per_side]).repeat_interleave(boards_per_side)
    pins, boards = torch.cat([pins, hubs]), torch.cat([boards, torch.arange(2 * boards_per_side)])
    return PinBoardGraph(pins, boards, num_pins=n, num_boards=2 * boards_per_side)


def community_similarity(emb: torch.Tensor, side: torch.Tensor) -> tuple[float, float]:
    sim = emb @ emb.T
    same = side.unsqueeze(0) == side.unsqueeze(1)
    off_diagonal = ~torch.eye(len(side), dtype=torch.bool)
    return sim[same & off_diagonal].mean().item(), sim[~same].mean().item()


def train_config(**overrides) -> PinSageTrainConfig:
    """A small, fast configuration for community_graph() (32 pins)."""
    base = PinSageTrainConfig(epochs=4, batch_size=16, lr=0.01, margin=0.5, num_negatives=8,
                              hard_negatives_from_epoch=2, max_hard_negatives=2, hard_negative_band=(3, 12),
                              hard_negative_walks=40, hard_negative_walk_length=3, num_neighbors=4, num_walks=20,
                              walk_length=2, hidden_channels=16, out_channels=8, seed=0, progress=False)
    return replace(base, **overrides)
