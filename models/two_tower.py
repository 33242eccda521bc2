"""A two-tower retrieval model over PinSage embeddings: a user tower and a pin tower meeting in one space.

The architecture of `"Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations" <https://doi.org/10.1145/3298689.3346996>`_ (Yi et al., RecSys 2019): two
networks map a user (with their context) and a pin to L2-normalised D-dim vectors whose inner
product scores the pair, so the pins' vectors can be indexed once (FAISS) and a user's vector,
computed per request, queries the index. Here both towers read PinSage embeddings (Ying et al.,
KDD 2018): the pin tower its own, the user tower those of the user's recent saves and closeups,
pooled (:class:`HistoryPool`). ``forward`` returns embeddings only; the loss lives in
:mod:`pinrec.models.losses` and the training in :mod:`pinrec.models.two_tower_loop`, so the
exported user tower holds none.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POOLING = ("attention", "mean")


def _mlp(in_channels: int, hidden_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.ReLU(),
                         nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                         nn.Linear(hidden_channels, out_channels))


class CategoricalEmbeddings(nn.Module):
    r"""One embedding table per categorical column, concatenated.

    Args:
        cardinalities (Sequence[int]): C sizes (index 0 = unknown, as :class:`~pinrec.export.encoding.FeatureEncoder` makes).
        dim (int): size of each column's embedding.

    Shapes: (B, C) int64 -> (B, C * dim); C = 0 gives (B, 0).
    """

    def __init__(self, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        if any(c < 1 for c in cardinalities) or dim < 1:
            raise ValueError(f"cardinalities must be >= 1 and dim >= 1, got {list(cardinalities)} and {dim}")
        self.cardinalities, self.dim = tuple(int(c) for c in cardinalities), dim
        self.tables = nn.ModuleList(nn.Embedding(c, dim) for c in self.cardinalities)

    @property
    def out_channels(self) -> int:
        return len(self.tables) * self.dim

    def reset_parameters(self) -> None:
        for t in self.tables:
            t.reset_parameters()

    def forward(self, categorical: Tensor) -> Tensor:
        if not self.tables:
            return categorical.new_zeros((categorical.size(0), 0), dtype=torch.float32)
        return torch.cat([t(categorical[:, i]) for i, t in enumerate(self.tables)], dim=-1)


class HistoryPool(nn.Module):
    r"""Pools a masked list of L pin embeddings (newest first) into one vector.

    ``"attention"``: learned additive attention (Bahdanau et al., 2015) with a per-slot recency bias
    :math:`b_l`, softmax over the valid slots only:

    .. math::
        \alpha_l = \frac{m_l \exp(\mathbf{v}^\top \tanh(\mathbf{W} \mathbf{h}_l + \mathbf{w}) + b_l)}
                        {\sum_{l'} m_{l'} \exp(\mathbf{v}^\top \tanh(\mathbf{W} \mathbf{h}_{l'} + \mathbf{w}) + b_{l'})},
        \qquad \mathbf{h} = \sum_l \alpha_l \mathbf{h}_l

    ``"mean"``: the recency-weighted mean with weights :math:`m_l \, 0.5^{l / \text{half\_life}}`.
    A list with no valid slot pools to zeros.

    Args:
        in_channels (int): E, size of the pin embeddings.
        length (int): L, slots of the list.
        pooling (str, optional): ``"attention"`` or ``"mean"``. (default: :obj:`"attention"`)
        hidden_channels (int, optional): size of the attention's hidden layer. (default: :obj:`32`)
        half_life (float, optional): slots after which a mean weight halves. (default: :obj:`2.0`)

    Shapes: history (B, L, E) float, mask (B, L) float (1: a real pin, 0: padding) -> (B, E).
    """

    def __init__(self, in_channels: int, length: int, pooling: str = "attention", hidden_channels: int = 32,
                 half_life: float = 2.0) -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
        if min(in_channels, length, hidden_channels) < 1 or not half_life > 0:
            raise ValueError("in_channels, length and hidden_channels must be >= 1 and half_life > 0")
        self.in_channels, self.length, self.pooling = in_channels, length, pooling
        self.register_buffer("recency", 0.5 ** (torch.arange(length, dtype=torch.float32) / half_life))
        self.key = nn.Linear(in_channels, hidden_channels) if pooling == "attention" else None
        self.score = nn.Linear(hidden_channels, 1, bias=False) if pooling == "attention" else None
        self.slot_bias = nn.Parameter(torch.zeros(length)) if pooling == "attention" else None

    def reset_parameters(self) -> None:
        if self.key is not None:
            self.key.reset_parameters()
            self.score.reset_parameters()
            nn.init.zeros_(self.slot_bias)

    def forward(self, history: Tensor, mask: Tensor) -> Tensor:
        if history.dim() != 3 or history.shape[1:] != (self.length, self.in_channels) or mask.shape != history.shape[:2]:
            raise ValueError(f"history must be (B, {self.length}, {self.in_channels}) and mask (B, {self.length}), "
                             f"got {tuple(history.shape)} and {tuple(mask.shape)}")
        if self.key is None:
            weights = mask * self.recency
        else:
            logits = self.score(torch.tanh(self.key(history))).squeeze(-1) + self.slot_bias
            # masked softmax without -inf (an all-padding row would give NaN): padding gets e^-1e4 * 0
            weights = torch.softmax(logits + (mask - 1.0) * 1e4, dim=-1) * mask
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
        return (weights.unsqueeze(-1) * history).sum(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, length={self.length}, pooling={self.pooling!r})"


class UserTower(nn.Module):
    r"""The user tower: context and user categoricals, the user's dense features and their pooled
    recent saves and closeups through an MLP, L2-normalised:
    :math:`\mathbf{u} = \mathrm{MLP}([\mathbf{e}_{cat} \| \mathbf{x} \| \mathrm{pool}(S) \| \mathrm{pool}(C)]) / \lVert\cdot\rVert_2`.

    Args:
        cardinalities (Sequence[int]): Cu categorical sizes (context and user categoricals).
        num_dense (int): Fu dense features (already normalised by the encoder).
        embedding_channels (int): E, size of the PinSage embeddings of the lists.
        length (int): L, pins of each list.
        out_channels (int, optional): D. (default: :obj:`32`)
        hidden_channels (int, optional): width of the MLP. (default: :obj:`64`)
        category_dim (int, optional): size of each categorical embedding. (default: :obj:`8`)
        pooling (str, optional): :class:`HistoryPool`'s ``"attention"`` or ``"mean"``. (default: :obj:`"attention"`)
        half_life (float, optional): the mean pooling's half-life in slots. (default: :obj:`2.0`)

    Shapes: categorical (B, Cu) int64, dense (B, Fu), saves (B, L, E), saves_mask (B, L), closeups
    (B, L, E), closeups_mask (B, L) float32 -> (B, D) of unit norm.
    """

    def __init__(self, cardinalities: Sequence[int], num_dense: int, embedding_channels: int, length: int,
                 out_channels: int = 32, hidden_channels: int = 64, category_dim: int = 8,
                 pooling: str = "attention", half_life: float = 2.0) -> None:
        super().__init__()
        if num_dense < 0 or min(embedding_channels, out_channels, hidden_channels) < 1:
            raise ValueError("num_dense must be >= 0; embedding_channels, out_channels, hidden_channels >= 1")
        self.num_dense, self.out_channels = num_dense, out_channels
        self.categorical = CategoricalEmbeddings(cardinalities, category_dim)
        self.saves = HistoryPool(embedding_channels, length, pooling, hidden_channels, half_life)
        self.closeups = HistoryPool(embedding_channels, length, pooling, hidden_channels, half_life)
        self.mlp = _mlp(self.categorical.out_channels + num_dense + 2 * embedding_channels, hidden_channels,
                        out_channels)

    def reset_parameters(self) -> None:
        for m in (self.categorical, self.saves, self.closeups):
            m.reset_parameters()
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, categorical: Tensor, dense: Tensor, saves: Tensor, saves_mask: Tensor, closeups: Tensor,
                closeups_mask: Tensor) -> Tensor:
        h = torch.cat([self.categorical(categorical), dense, self.saves(saves, saves_mask),
                       self.closeups(closeups, closeups_mask)], dim=-1)
        return F.normalize(self.mlp(h), p=2.0, dim=-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(categorical={list(self.categorical.cardinalities)}, "
                f"dense={self.num_dense}, lists={self.saves}, out_channels={self.out_channels})")


class PinTower(nn.Module):
    r"""The pin tower: the pin's PinSage embedding, its categoricals (category) and dense features
    (age, engagement) through an MLP, L2-normalised.

    Args:
        cardinalities (Sequence[int]): Cp categorical sizes.
        num_dense (int): Fp dense features.
        embedding_channels (int): E, size of the PinSage embedding.
        out_channels (int, optional): D. (default: :obj:`32`)
        hidden_channels (int, optional): width of the MLP. (default: :obj:`64`)
        category_dim (int, optional): size of each categorical embedding. (default: :obj:`8`)

    Shapes: categorical (B, Cp) int64, dense (B, Fp), embedding (B, E) float32 -> (B, D) of unit norm.
    """

    def __init__(self, cardinalities: Sequence[int], num_dense: int, embedding_channels: int, out_channels: int = 32,
                 hidden_channels: int = 64, category_dim: int = 8) -> None:
        super().__init__()
        if num_dense < 0 or min(embedding_channels, out_channels, hidden_channels) < 1:
            raise ValueError("num_dense must be >= 0; embedding_channels, out_channels, hidden_channels >= 1")
        self.num_dense, self.embedding_channels, self.out_channels = num_dense, embedding_channels, out_channels
        self.categorical = CategoricalEmbeddings(cardinalities, category_dim)
        self.mlp = _mlp(self.categorical.out_channels + num_dense + embedding_channels, hidden_channels, out_channels)

    def reset_parameters(self) -> None:
        self.categorical.reset_parameters()
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, categorical: Tensor, dense: Tensor, embedding: Tensor) -> Tensor:
        h = torch.cat([self.categorical(categorical), dense, embedding], dim=-1)
        return F.normalize(self.mlp(h), p=2.0, dim=-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(categorical={list(self.categorical.cardinalities)}, "
                f"dense={self.num_dense}, embedding={self.embedding_channels}, out_channels={self.out_channels})")


class TwoTower(nn.Module):
    r"""Both towers: ``forward(user_inputs, pin_inputs)`` returns (user (B, D), pin (B', D)) unit
    vectors; their inner products ``user @ pin.T`` (B, B') are the logits before temperature.

    Args:
        user (UserTower): the user tower. pin (PinTower): the pin tower (same D).
    """

    def __init__(self, user: UserTower, pin: PinTower) -> None:
        super().__init__()
        if user.out_channels != pin.out_channels:
            raise ValueError(f"the towers must share D, got {user.out_channels} and {pin.out_channels}")
        self.user, self.pin = user, pin

    def reset_parameters(self) -> None:
        self.user.reset_parameters()
        self.pin.reset_parameters()

    def forward(self, user_inputs: Sequence[Tensor], pin_inputs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        return self.user(*user_inputs), self.pin(*pin_inputs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(user={self.user}, pin={self.pin})"


__all__ = ["POOLING", "CategoricalEmbeddings", "HistoryPool", "PinTower", "TwoTower", "UserTower"]
