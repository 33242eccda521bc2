r"""Training the two-tower model: in-batch sampled softmax with logQ correction, temperature on validation.

The training of `"Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations"
<https://doi.org/10.1145/3298689.3346996>`_ (Yi et al., RecSys 2019) on (user, engaged pin) pairs:

* a batch of B pairs scores every user against every positive pin of the batch (the others'
  positives are the negatives), logits :math:`s_{ij} = \langle \mathbf{u}_i, \mathbf{p}_j \rangle / \tau - \log q_j`,
  where :math:`q_j` is pin j's share of the training positives (the paper's sampling probability,
  here counted over the training pairs): a popular pin is a negative more often than uniform
  sampling would make it, and the correction takes that back out (``logq=False``: none);
  a column whose pin is the row's own positive (the same pin twice in a batch) is no negative;
  the loss is the cross-entropy of the diagonal (:func:`in_batch_softmax_loss`), Adam;
* the temperature :math:`\tau` is tuned on the validation split: one model per value of
  ``temperatures`` (same seed), the best validation recall@``eval_k`` over every pin wins
  (:func:`fit_two_tower`);
* determinism: weights initialised after ``torch.manual_seed(seed)``, each epoch's shuffle seeded
  from ``(seed, epoch)``; nothing else draws random numbers, so resuming from a checkpoint gives
  the model of an uninterrupted run; torch's deterministic kernels (:func:`~pinrec.models.pinsage_trainer.deterministic_kernels`);
* checkpoints (``checkpoint_dir/two_tower-tau<τ>.pt`` after every ``checkpoint_every`` epochs and
  the last): model, optimizer, epoch, history, config; read with ``torch.load(weights_only=True)``;
* distributed: under an initialised ``torch.distributed`` the model is wrapped in
  ``DistributedDataParallel`` and each rank trains a disjoint, equally long share of each epoch's
  pairs; rank 0 checkpoints and calls ``on_epoch_end(epoch, metrics)`` (where a job logs to MLflow).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from pinrec.models.config import TwoTowerConfig
from pinrec.models.pinsage_trainer import deterministic_kernels, resolve_device
from pinrec.models.run_identity import check_resume, run_identity, tensor_digest
from pinrec.models.two_tower import PinTower, TwoTower, UserTower

EpochHook = Callable[[int, dict[str, float]], None]
_ARCHITECTURE = ("out_channels", "hidden_channels", "category_dim", "list_length", "pooling")


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


def in_batch_softmax_loss(user: Tensor, pin: Tensor, temperature: float, log_q: Tensor | None = None,
                          same: Tensor | None = None) -> Tensor:
    r"""Mean cross-entropy of the diagonal of the (B, B) logits
    :math:`s_{ij} = \langle \mathbf{u}_i, \mathbf{p}_j \rangle / \tau - \log q_j` (Yi et al., eq. 3 with
    the correction of section 4). ``user`` and ``pin``: (B, D); ``log_q`` (B,): log sampling
    probability of each column's pin (None: no correction); ``same`` (B, B) bool: column j holds row
    i's own positive (masked out off the diagonal)."""
    if user.dim() != 2 or user.shape != pin.shape:
        raise ValueError(f"user and pin must both be (B, D), got {tuple(user.shape)} and {tuple(pin.shape)}")
    logits = user @ pin.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    if same is not None:
        eye = torch.eye(len(user), dtype=torch.bool, device=user.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(user), device=user.device))


def build_model(data: TwoTowerData, pins: PinTable, cfg: TwoTowerConfig, user_cardinalities, pin_cardinalities) -> TwoTower:
    user = UserTower(user_cardinalities, data.user_dense.size(1), pins.embeddings.size(1), cfg.list_length,
                     cfg.out_channels, cfg.hidden_channels, cfg.category_dim, cfg.pooling, cfg.half_life)
    pin = PinTower(pin_cardinalities, data.pin_dense.size(1), pins.embeddings.size(1), cfg.out_channels,
                   cfg.hidden_channels, cfg.category_dim)
    return TwoTower(user, pin)


def user_inputs(data: TwoTowerData, idx: Tensor, embeddings: Tensor) -> tuple[Tensor, ...]:
    """The user tower's six inputs for pairs ``idx``: the lists' pin rows become (B, L, E)
    embeddings and (B, L) masks (a padded slot or a pin without embedding is masked)."""
    out = [data.user_categorical[idx], data.user_dense[idx]]
    for rows in (data.saves[idx], data.closeups[idx]):
        vectors = embeddings[rows.clamp_min(0)]
        mask = ((rows >= 0) & (vectors.abs().sum(-1) > 0)).to(vectors.dtype)
        out += [vectors * mask.unsqueeze(-1), mask]
    return tuple(out)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TwoTowerTrainer:
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
        self.rank, self.world_size = _world()
        if len(data) < self.world_size * 2:
            raise ValueError(f"{len(data)} pairs cannot give {self.world_size} rank(s) a batch of 2")
        self.device = resolve_device(cfg.device)
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

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> str | None:
        if self.cfg.checkpoint_dir is None:
            return None
        return os.path.join(self.cfg.checkpoint_dir, f"two_tower-tau{self.temperature:g}.pt")

    def save_checkpoint(self, epoch: int) -> None:
        path = self.checkpoint_path
        if path is None:
            raise ValueError("two_tower.checkpoint_dir is not set")
        os.makedirs(self.cfg.checkpoint_dir, exist_ok=True)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": epoch,
                 "history": self.history, "config": asdict(self.cfg), "temperature": self.temperature,
                 "identity": self.identity}
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # never a torn checkpoint

    def load_checkpoint(self, path: str) -> int:
        """Restores a checkpoint; returns the next epoch. ValueError when its architecture differs."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        clash = {k: (state["config"].get(k), getattr(self.cfg, k)) for k in _ARCHITECTURE
                 if state["config"].get(k) != getattr(self.cfg, k)}
        if clash:
            raise ValueError(f"checkpoint {path} has a different architecture (checkpoint, config): {clash}")
        check_resume(state.get("identity"), self.identity, path)  # another run's: other settings, pairs or pins
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = [dict(h) for h in state["history"]]
        self.start_epoch = int(state["epoch"]) + 1
        return self.start_epoch

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


__all__ = ["PinTable", "TwoTowerData", "TwoTowerFit", "TwoTowerTrainer", "fit_two_tower", "in_batch_softmax_loss",
           "recall_at_k", "user_inputs"]
