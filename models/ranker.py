"""The multi-task ranker: embeddings + DCN-v2 cross network + deep tower -> MMoE -> per-task logits."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pinrec.models.config import RankerConfig
from pinrec.models.dcn import CrossNet, CrossNetMix
from pinrec.models.mmoe import MLP, MMoE


class Ranker(nn.Module):
    r"""A DCN-v2 (Wang et al., WWW 2021) + MMoE (Ma et al., KDD 2018) multi-task ranker with a
    shallow position tower (Zhao et al., "Recommending What Video to Watch Next", RecSys 2019).

    Parts (named as torchrec does):

    * sparse arch: one embedding table for all C categorical columns (column c's indices are
      offset by the cardinalities before it), (B, C) -> (B, C * E);
    * :math:`\mathbf{x}_0 = [\text{embeddings} \,\|\, \text{dense}]`, (B, D_0) with
      :math:`D_0 = C E + F`;
    * interaction arch: :class:`~pinrec.models.dcn.CrossNet` (or ``CrossNetMix``) and a deep MLP,
      ``stacked`` (MLP on the cross output) or ``parallel`` (both on :math:`\mathbf{x}_0`, concatenated);
    * over arch: :class:`~pinrec.models.mmoe.MMoE` with one tower per task -> logits (B, T);
    * position tower: :math:`\mathrm{Linear}(\mathrm{Embedding}(p))`, (B,) -> (B, T), added to the
      logits when ``position`` is given (training). It absorbs the position bias of the labels,
      so ``forward(categorical, dense)`` without a position scores items position-free.

    Args:
        cardinalities (tuple[int, ...]): number of indices of each categorical column (C of them).
        dense_channels (int): F, number of dense features.
        num_positions (int): size of the position vocabulary (0 = unknown .. max_position).
        config (RankerConfig, optional): the architecture. (default: :obj:`RankerConfig()`)

    Shapes: categorical (B, C) int64, dense (B, F) float, position (B,) int64 or None -> (B, T)
    logits in the order of ``config.tasks``.
    """

    def __init__(self, cardinalities: tuple[int, ...], dense_channels: int, num_positions: int,
                 config: RankerConfig | None = None) -> None:
        super().__init__()
        config = RankerConfig() if config is None else config
        cardinalities = tuple(int(c) for c in cardinalities)
        if any(c < 1 for c in cardinalities) or dense_channels < 0 or num_positions < 1:
            raise ValueError(f"cardinalities must be >= 1, dense_channels >= 0 and num_positions >= 1; got "
                             f"{cardinalities}, {dense_channels}, {num_positions}")
        if not cardinalities and dense_channels == 0:
            raise ValueError("the ranker needs at least one categorical or dense feature")
        self.cardinalities, self.dense_channels, self.num_positions = cardinalities, dense_channels, num_positions
        self.config, self.tasks = config, config.tasks
        e = config.embedding_dim
        self.register_buffer("offsets", torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
                             if cardinalities else torch.zeros(0, dtype=torch.long), persistent=False)
        self.embedding = nn.Embedding(max(sum(cardinalities), 1), e)
        d0 = len(cardinalities) * e + dense_channels
        self.in_channels = d0
        if config.cross_experts > 1:
            self.cross = CrossNetMix(d0, config.cross_layers, config.cross_rank, config.cross_experts)
        else:
            self.cross = CrossNet(d0, config.cross_layers, config.cross_rank or None)
        self.deep = MLP(d0, config.deep_channels, dropout=config.dropout)
        over_in = config.deep_channels[-1] + (d0 if config.structure == "parallel" else 0)
        self.mmoe = MMoE(over_in, len(config.tasks), config.mmoe_experts, config.expert_channels,
                         config.tower_channels, config.dropout)
        self.position_tower = nn.Sequential(nn.Embedding(num_positions, config.position_dim),
                                            nn.Linear(config.position_dim, len(config.tasks)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.05)
        self.cross.reset_parameters()
        self.deep.reset_parameters()
        self.mmoe.reset_parameters()
        nn.init.normal_(self.position_tower[0].weight, std=0.05)
        self.position_tower[1].reset_parameters()

    def features(self, categorical: Tensor, dense: Tensor) -> Tensor:
        """:math:`\\mathbf{x}_0`, (B, D_0)."""
        emb = self.embedding(categorical + self.offsets).flatten(1)  # (B, C * E)
        return torch.cat([emb, dense.to(emb.dtype)], dim=1)

    def forward(self, categorical: Tensor, dense: Tensor, position: Tensor | None = None) -> Tensor:
        x0 = self.features(categorical, dense)
        if self.config.structure == "stacked":
            h = self.deep(self.cross(x0))
        else:
            h = torch.cat([self.cross(x0), self.deep(x0)], dim=1)
        logits = self.mmoe(h)  # (B, T)
        if position is not None:
            if self.training and self.config.position_dropout > 0:
                drop = torch.rand(position.shape, device=position.device) < self.config.position_dropout
                position = position.masked_fill(drop, 0)
            logits = logits + self.position_tower(position.clamp(0, self.num_positions - 1))
        return logits

    def __repr__(self) -> str:
        c = self.config
        return (f"{self.__class__.__name__}(C={len(self.cardinalities)}, F={self.dense_channels}, D0={self.in_channels}, "
                f"tasks={c.tasks}, structure={c.structure!r}, cross={self.cross!r}, deep={c.deep_channels}, "
                f"mmoe={self.mmoe!r})")
