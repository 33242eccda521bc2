r"""The two-tower's temperature, chosen on validation: one model per :math:`\tau`, the best recall wins.

Yi et al. (RecSys 2019) tune the softmax temperature :math:`\tau`; here it is tuned on the
validation split: one :class:`~pinrec.models.two_tower_loop.TwoTowerTrainer` per value of
``temperatures`` (same seed), the best validation recall@``eval_k`` over every pin wins
(:func:`fit_two_tower`; :func:`recall_at_k` scores by inner product).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinrec.models.config import TwoTowerConfig
from pinrec.models.two_tower_data import PinTable, TwoTowerData
from pinrec.models.two_tower_loop import TwoTowerTrainer


def recall_at_k(users: Tensor, pins: Tensor, positives: Tensor, k: int) -> float:
    """Share of the P (user (P, D), positive row (P,)) pairs whose positive is among the user's
    top ``k`` of all N pins (N, D) by inner product."""
    k = min(k, pins.size(0))
    top = torch.cat([(u @ pins.T).topk(k, dim=1).indices for u in users.split(4096)])
    return float((top == positives.unsqueeze(1)).any(1).double().mean()) if len(users) else float("nan")


@dataclass(frozen=True, eq=False)
class TwoTowerFit:
    """The chosen model: ``trainer`` (its ``model`` is trained), ``temperature``, the validation
    recall@k of every temperature tried (``table``) and the chosen one's per-epoch ``history``."""

    trainer: TwoTowerTrainer
    temperature: float
    table: dict[float, float]
    history: list[dict[str, float]]


def fit_two_tower(train: TwoTowerData, validation: TwoTowerData, pins: PinTable, cfg: TwoTowerConfig,
                  user_cardinalities, pin_cardinalities,
                  on_epoch_end: Callable[[float, int, dict[str, float]], None] | None = None) -> TwoTowerFit:
    """Train one model per temperature of ``cfg.temperatures`` and keep the best validation
    recall@``cfg.eval_k`` (ties: the first). ``on_epoch_end(temperature, epoch, metrics)``."""
    if len(validation) == 0:
        raise ValueError("the validation split has no pairs: the temperature cannot be chosen")
    table, best = {}, None
    for tau in cfg.temperatures:
        hook = None if on_epoch_end is None else (lambda e, m, t=tau: on_epoch_end(t, e, m))
        trainer = TwoTowerTrainer(train, pins, cfg, tau, user_cardinalities, pin_cardinalities, hook)
        trainer.fit()
        table[float(tau)] = recall_at_k(trainer.user_embeddings(validation), trainer.pin_embeddings(),
                                        validation.pins, cfg.eval_k)
        if best is None or table[float(tau)] > table[best.temperature]:
            best = trainer
    return TwoTowerFit(best, best.temperature, table, best.history)


__all__ = ["TwoTowerFit", "fit_two_tower", "recall_at_k"]
