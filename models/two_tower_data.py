"""The two-tower model's inputs: the pin table, the (user, engaged pin) pairs, a batch's user inputs.

What :class:`~pinrec.models.two_tower_loop.TwoTowerTrainer` trains on (Yi et al., RecSys 2019;
:mod:`pinrec.models.two_tower`): :class:`PinTable` (every pin's pin-tower inputs),
:class:`TwoTowerData` (the pairs with the features known at the impression) and
:func:`user_inputs` (the user tower's six inputs for a batch of pairs).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True, eq=False)
class PinTable:
    """Every pin's pin-tower inputs, row i = pin i: categorical (N, Cp) int64, dense (N, Fp) float32,
    embeddings (N, E) float32 (PinSage; zeros for a pin without one)."""

    categorical: Tensor
    dense: Tensor
    embeddings: Tensor

    def __post_init__(self) -> None:
        n = self.embeddings.size(0)
        if self.categorical.dim() != 2 or self.dense.dim() != 2 or self.embeddings.dim() != 2 \
                or self.categorical.size(0) != n or self.dense.size(0) != n:
            raise ValueError(f"PinTable needs (N, Cp), (N, Fp), (N, E) of one N, got {tuple(self.categorical.shape)}, "
                             f"{tuple(self.dense.shape)}, {tuple(self.embeddings.shape)}")

    def __len__(self) -> int:
        return self.embeddings.size(0)


@dataclass(frozen=True, eq=False)
class TwoTowerData:
    """P (user, engaged pin) pairs with the features known at the impression: user_categorical
    (P, Cu) int64, user_dense (P, Fu) float32, saves / closeups (P, L) int64 pin rows of the user's
    recent lists, newest first (-1: padding), pins (P,) int64 rows of the engaged pins,
    pin_categorical (P, Cp) int64, pin_dense (P, Fp) float32 (the pin's features at the impression)."""

    user_categorical: Tensor
    user_dense: Tensor
    saves: Tensor
    closeups: Tensor
    pins: Tensor
    pin_categorical: Tensor
    pin_dense: Tensor

    def __post_init__(self) -> None:
        p = self.pins.size(0)
        parts = {k: v for k, v in vars(self).items()}
        bad = {k: tuple(v.shape) for k, v in parts.items() if v.size(0) != p}
        if bad or self.saves.shape != self.closeups.shape or self.saves.dim() != 2:
            raise ValueError(f"TwoTowerData needs P rows everywhere and (P, L) saves and closeups; P={p}, got {bad}, "
                             f"saves {tuple(self.saves.shape)}, closeups {tuple(self.closeups.shape)}")

    def __len__(self) -> int:
        return self.pins.size(0)


def user_inputs(data: TwoTowerData, idx: Tensor, embeddings: Tensor) -> tuple[Tensor, ...]:
    """The user tower's six inputs for pairs ``idx``: the lists' pin rows become (B, L, E)
    embeddings and (B, L) masks (a padded slot or a pin without embedding is masked)."""
    out = [data.user_categorical[idx], data.user_dense[idx]]
    for rows in (data.saves[idx], data.closeups[idx]):
        vectors = embeddings[rows.clamp_min(0)]
        mask = ((rows >= 0) & (vectors.abs().sum(-1) > 0)).to(vectors.dtype)
        out += [vectors * mask.unsqueeze(-1), mask]
    return tuple(out)


__all__ = ["PinTable", "TwoTowerData", "user_inputs"]
