r"""Training the two-tower model: in-batch sampled softmax with logQ correction, at one temperature.

The training of `"Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations"
<https://doi.org/10.1145/3298689.3346996>`_ (Yi et al., RecSys 2019) on (user, engaged pin) pairs
(:mod:`pinrec.models.two_tower_data`):

* a batch of B pairs scores every user against every positive pin of the batch (the others'
  positives are the negatives), logits :math:`s_{ij} = \langle \mathbf{u}_i, \mathbf{p}_j \rangle / \tau - \log q_j`,
  where :math:`q_j` is pin j's share of the training positives (the paper's sampling probability,
  here counted over the training pairs): a popular pin is a negative more often than uniform
  sampling would make it, and the correction takes that back out (``logq=False``: none);
  a column whose pin is the row's own positive (the same pin twice in a batch) is no negative;
  the loss is the cross-entropy of the diagonal (:func:`~pinrec.models.losses.in_batch_softmax_loss`), Adam;
* the temperature :math:`\tau` is fixed here; :mod:`pinrec.models.two_tower_temperature` trains one
  model per value and keeps the best on validation;
* determinism: weights initialised after ``torch.manual_seed(seed)``, each epoch's shuffle seeded
  from ``(seed, epoch)``; nothing else draws random numbers, so resuming from a checkpoint
  (:mod:`pinrec.models.two_tower_checkpoint`) gives the model of an uninterrupted run; torch's
  deterministic kernels (:func:`~pinrec.models.training_runtime.deterministic_kernels`);
* distributed: under an initialised ``torch.distributed`` the model is wrapped in
  ``DistributedDataParallel`` and each rank trains a disjoint, equally long share of each epoch's
  pairs; rank 0 checkpoints and calls ``on_epoch_end(epoch, metrics)`` (where a job logs to MLflow).
"""
from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from pinrec.models.config import TwoTowerConfig
from pinrec.models.losses import in_batch_softmax_loss
from pinrec.models.run_identity import run_identity, tensor_digest
from pinrec.models.training_runtime import (
    EpochHook,
    deterministic_kernels,
    resolve_device,
    world,
)
from pinrec.models.two_tower import PinTower, TwoTower, UserTower
from pinrec.models.two_tower_checkpoint import TwoTowerCheckpoints
from pinrec.models.two_tower_data import PinTable, TwoTowerData, user_inputs


def build_model(data: TwoTowerData, pins: PinTable, cfg: TwoTowerConfig, user_cardinalities, pin_cardinalities) -> TwoTower:
    """An untrained :class:`~pinrec.models.two_tower.TwoTower` for the feature widths of ``data`` and
    ``pins`` and the sizes of ``cfg``; ``*_cardinalities``: sizes of the categorical columns."""
    user = UserTower(user_cardinalities, data.user_dense.size(1), pins.embeddings.size(1), cfg.list_length,
                     cfg.out_channels, cfg.hidden_channels, cfg.category_dim, cfg.pooling, cfg.half_life)
    pin = PinTower(pin_cardinalities, data.pin_dense.size(1), pins.embeddings.size(1), cfg.out_channels,
                   cfg.hidden_channels, cfg.category_dim)
    return TwoTower(user, pin)


class TwoTowerTrainer(TwoTowerCheckpoints):
    r"""Trains one :class:`~pinrec.models.two_tower.TwoTower` at one temperature (module docstring).

    Args:
        data (TwoTowerData): the training pairs. pins (PinTable): every pin (rows of ``data.pins``).
        cfg (TwoTowerConfig): the configuration. temperature (float): :math:`\tau`.
        user_cardinalities, pin_cardinalities (Sequence[int]): sizes of the categorical columns.
        on_epoch_end (callable, optional): ``on_epoch_end(epoch, metrics)`` on rank 0 after each epoch
            with ``loss`` (mean over the epoch's batches and ranks), ``pairs`` and ``pairs_per_s``.

    ``fit()`` trains (resuming from the checkpoint when there is one) and returns the per-epoch
    metrics; ``user_embeddings(data)`` (P, D) and ``pin_embeddings()`` (N, D) embed for retrieval.
    """

    def __init__(self, data: TwoTowerData, pins: PinTable, cfg: TwoTowerConfig, temperature: float,
                 user_cardinalities, pin_cardinalities, on_epoch_end: EpochHook | None = None) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if data.saves.size(1) != cfg.list_length:
            raise ValueError(f"the lists hold {data.saves.size(1)} pins, two_tower.list_length is {cfg.list_length}")
        if len(data) == 0 or int(data.pins.max()) >= len(pins) or int(data.pins.min()) < 0:
            raise ValueError(f"data.pins must be non-empty rows of the {len(pins)} pins")
        for name, t in (("pins.embeddings", pins.embeddings), ("pins.dense", pins.dense),
                        ("data.user_dense", data.user_dense), ("data.pin_dense", data.pin_dense)):
            if not bool(torch.isfinite(t).all()):  # a masked NaN is still NaN (NaN * 0): every weight would follow
                rows = (~torch.isfinite(t)).reshape(len(t), -1).any(1).nonzero().flatten()
                raise ValueError(f"{name} holds NaN or inf in {len(rows)} row(s), e.g. row {int(rows[0])}")
        self.cfg, self.temperature, self.on_epoch_end = cfg, float(temperature), on_epoch_end
        self.rank, self.world_size = world()
        if len(data) < self.world_size * 2:
            raise ValueError(f"{len(data)} pairs cannot give {self.world_size} rank(s) a batch of 2")
        self.device = resolve_device(cfg.device, "two_tower.device")
        self.data = TwoTowerData(**{k: v.to(self.device) for k, v in vars(data).items()})
        self.pins = PinTable(pins.categorical.to(self.device), pins.dense.to(self.device),
                             pins.embeddings.to(self.device, torch.float32))
        counts = torch.bincount(self.data.pins, minlength=len(pins)).to(torch.float64)
        self.log_q = (counts / counts.sum()).clamp_min(1e-12).log().to(torch.float32)  # (N,), per training pin
        self.identity = run_identity(cfg, tensor_digest(*vars(data).values(), pins.categorical, pins.dense,
                                                        pins.embeddings), temperature=self.temperature)
        torch.manual_seed(cfg.seed)  # the initial weights
        self.model = build_model(data, pins, cfg, user_cardinalities, pin_cardinalities).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0

    # ----------------------------------------------------------------------------------- training
    def _epoch_pairs(self, epoch: int) -> Tensor:
        shuffle = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=shuffle)
        usable = order.numel() - order.numel() % self.world_size
        return order[:usable][self.rank::self.world_size].to(self.device)

    def _step(self, idx: Tensor, net: torch.nn.Module) -> Tensor:
        data, pins = self.data, self.pins
        pin_rows = data.pins[idx]
        pin_inputs = (data.pin_categorical[idx], data.pin_dense[idx], pins.embeddings[pin_rows])
        user, pin = net(user_inputs(data, idx, pins.embeddings), pin_inputs)
        same = pin_rows.unsqueeze(0) == pin_rows.unsqueeze(1)
        loss = in_batch_softmax_loss(user, pin, self.temperature, self.log_q[pin_rows] if self.cfg.logq else None, same)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @deterministic_kernels
    def fit(self) -> list[dict[str, float]]:
        """Trains the remaining epochs; returns every epoch's metrics (resumed ones included)."""
        from tqdm import tqdm

        cfg, path = self.cfg, self.checkpoint_path
        if path is not None and os.path.exists(path):
            self.load_checkpoint(path)
        distributed = self.world_size > 1
        net: torch.nn.Module = self.model
        if distributed:
            net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        for epoch in range(self.start_epoch, cfg.epochs):
            self.model.train()
            batches = [b for b in self._epoch_pairs(epoch).split(cfg.batch_size) if b.numel() >= 2]
            totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, batches, pairs
            start = time.perf_counter()
            bar = tqdm(batches, desc=f"two-tower tau={self.temperature:g} epoch {epoch + 1}/{cfg.epochs}",
                       leave=False, disable=not cfg.progress or self.rank != 0)
            for idx in bar:
                loss = self._step(idx, net)
                totals += torch.stack([loss.double(), loss.new_tensor(1.0, dtype=torch.float64),
                                       loss.new_tensor(idx.numel(), dtype=torch.float64)])
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if distributed:
                dist.all_reduce(totals)
            loss_sum, steps, pairs = totals.tolist()
            metrics = {"loss": loss_sum / max(steps, 1.0), "pairs": pairs,
                       "pairs_per_s": pairs / max(time.perf_counter() - start, 1e-9)}
            self.history.append(metrics)
            if self.rank == 0:
                if path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch == cfg.epochs - 1):
                    self.save_checkpoint(epoch)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, metrics)
            if distributed:
                dist.barrier()
        return self.history

    # ---------------------------------------------------------------------------------- inference
    @deterministic_kernels
    @torch.no_grad()
    def user_embeddings(self, data: TwoTowerData) -> Tensor:
        """(P, D) user-tower outputs of ``data``'s pairs, on the CPU."""
        self.model.eval()
        data = TwoTowerData(**{k: v.to(self.device) for k, v in vars(data).items()})
        batches = torch.arange(len(data), device=self.device).split(self.cfg.inference_batch_size)
        return torch.cat([self.model.user(*user_inputs(data, b, self.pins.embeddings)) for b in batches]).cpu()

    @deterministic_kernels
    @torch.no_grad()
    def pin_embeddings(self, pins: PinTable | None = None) -> Tensor:
        """(N, D) pin-tower outputs of every pin of ``pins`` (default: the training table), on the CPU."""
        self.model.eval()
        pins = self.pins if pins is None else pins
        out = []
        for b in torch.arange(len(pins)).split(self.cfg.inference_batch_size):
            out.append(self.model.pin(pins.categorical[b].to(self.device), pins.dense[b].to(self.device),
                                      pins.embeddings[b].to(self.device, torch.float32)).cpu())
        return torch.cat(out)


__all__ = ["TwoTowerTrainer", "build_model"]
