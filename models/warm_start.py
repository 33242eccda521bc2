"""Warm-starting a model from the previous version's weights when the pin set changed (torch).

A daily retrain sees a graph with new pins (and some gone), so the rows of a per-pin table (the
id embedding) no longer line up with yesterday's; every other parameter has the same shape as
long as the architecture and the feature spec agree. :func:`warm_state` builds the state dict a
new model starts from: every parameter copied from the previous version, the per-pin rows moved
to the new pins' rows by pin id, and the rows of pins the previous version never saw kept from
the new model's own initialisation. Starting from yesterday's weights is the warm-start the
product design asks for "to prevent catastrophic forgetting when the embedding model is updated":
a few epochs on the new graph move the embeddings less than a cold restart does
(:mod:`pinrec.models.embedding_stability` measures by how much).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["WarmStartError", "row_map", "warm_state"]


class WarmStartError(ValueError):
    """The previous weights cannot seed the new model (a parameter is missing or has another shape)."""


def warm_state(previous: dict[str, Tensor], current: dict[str, Tensor], row_map: Tensor,
               per_pin: tuple[str, ...] = ("emb.weight",)) -> dict[str, Tensor]:
    """The new model's starting state dict.

    Args:
        previous: the previous version's state dict.
        current: the new model's freshly initialised state dict (its shapes are the contract).
        row_map: (N,) int64, for each pin row of the new model the row of the same pin in the previous
            version, or -1 for a pin it did not have.
        per_pin: names of parameters with one row per pin (copied row by row through ``row_map``).

    Raises :class:`WarmStartError` naming the parameters whose names or shapes differ.
    """
    missing = sorted(set(current) ^ set(previous))
    if missing:
        raise WarmStartError(f"the previous model's parameters differ by name: {missing}")
    out: dict[str, Tensor] = {}
    clash = {}
    for name, init in current.items():
        old = previous[name]
        if name in per_pin:
            if old.dim() != init.dim() or old.shape[1:] != init.shape[1:]:
                clash[name] = (tuple(old.shape), tuple(init.shape))
                continue
            if row_map.shape != (init.size(0),):
                raise WarmStartError(f"row_map must be ({init.size(0)},) for {name}, got {tuple(row_map.shape)}")
            seeded = init.clone()
            kept = row_map >= 0
            seeded[kept] = old[row_map[kept]].to(init.dtype)
            out[name] = seeded
        elif old.shape != init.shape:
            clash[name] = (tuple(old.shape), tuple(init.shape))
        else:
            out[name] = old.to(init.dtype).clone()
    if clash:
        raise WarmStartError(f"the previous model's parameters differ in shape (previous, new): {clash}")
    return out


def row_map(previous_ids: Tensor, ids: Tensor) -> Tensor:
    """(N,) int64: for each of ``ids`` (N,) its row in ``previous_ids`` (unique int64), or -1."""
    out = torch.full((len(ids),), -1, dtype=torch.long)
    if not len(previous_ids):
        return out
    order = torch.argsort(previous_ids)
    pos = torch.searchsorted(previous_ids[order], ids).clamp_max(len(previous_ids) - 1)
    found = previous_ids[order][pos] == ids
    out[found] = order[pos][found]
    return out

