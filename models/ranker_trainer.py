"""Training of the :class:`~pinrec.models.ranker.Ranker`: weighted multi-task BCE (or focal), Adam,
early stopping on validation, seeded, resumable, DDP-ready. Losses live here, not in the model.

Negative down-sampling. The training set keeps negatives (rows with neither closeup nor save)
with probability ``rate`` and gives them ``sample_weight = 1 / rate``. Two corrections:

* ``negative_correction="weights"`` (default): the loss weights every row by its
  ``sample_weight``, so the model estimates the unsampled probabilities directly and no offset
  is needed at inference. Exact for every task: the weight is the inverse inclusion probability
  of the row, whatever its labels.
* ``"logit"``: the loss ignores the weights and inference adds :math:`\\log(\\text{rate})` to every
  logit (the odds of a task are inflated by 1 / rate when all its negatives were sampled at that
  rate). Exact for a task only if its negatives were all sampled, which for the save task is not
  the case (closeup-only rows are kept with certainty): an approximation, kept for comparison.

Both estimate probabilities among sessions with a positive (the training set samples negatives
only from those); calibration on the validation split fixes the level either way.

Validation metrics per epoch: ``val_logloss_<task>`` with the position tower (the likelihood the
model was trained for), ``val_auc_<task>`` position-free (how serving ranks), their means over
tasks ``val_logloss`` / ``val_auc``, and ``train_loss``; all weighted by ``sample_weight``;
``train_rows``: the rows trained on in the epoch.

Distributed (``torchrun``; the caller calls ``init_process_group``): the model is wrapped in
``DistributedDataParallel`` and a ``DistributedSampler`` gives each rank its share of the rows each
epoch, so ``batch_size`` is per rank. ``train_loss`` and ``train_rows`` are summed over the ranks;
every rank evaluates the whole validation split with the same weights, so all ranks log the same
metrics, stop at the same epoch and end with the same parameters. Rank 0 writes the checkpoint.
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinrec.models.config import RankerTrainConfig
from pinrec.models.metrics import auc, log_loss
from pinrec.models.ranker import Ranker

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True, eq=False)
class RankerData:
    """Tensors of one split: categorical (B, C) int64, dense (B, F) float32, position (B,) int64,
    labels (B, T) float32 in task order, weights (B,) float32 (the ``sample_weight`` column)."""

    categorical: Tensor
    dense: Tensor
    position: Tensor
    labels: Tensor
    weights: Tensor

    def __post_init__(self) -> None:
        b = self.labels.shape[0]
        if self.labels.dim() != 2 or any(t.shape[0] != b for t in (self.categorical, self.dense, self.position,
                                                                      self.weights)):
            raise ValueError("RankerData tensors must share their first dimension and labels be (B, T)")
        if not bool(torch.isfinite(self.weights).all()) or bool((self.weights < 0).any()):
            raise ValueError("weights must be finite and >= 0")
        if not bool(torch.isfinite(self.dense).all()):  # NaN would reach every weight through the optimiser
            cols = sorted(set((~torch.isfinite(self.dense)).nonzero(as_tuple=True)[1].tolist()))
            raise ValueError(f"dense column(s) {cols[:10]} hold NaN or inf (encode them as missing)")
        if not bool(((self.labels == 0) | (self.labels == 1)).all()):
            raise ValueError("labels must be 0 or 1")

    @classmethod
    def from_batch(cls, batch, labels: np.ndarray, weights: np.ndarray | None = None) -> RankerData:
        """From an encoded batch (anything with ``categorical``, ``dense``, ``position`` arrays)."""
        labels = np.asarray(labels, np.float32)
        labels = labels[:, None] if labels.ndim == 1 else labels
        weights = np.ones(len(labels), np.float32) if weights is None else np.asarray(weights, np.float32)
        return cls(torch.as_tensor(batch.categorical, dtype=torch.long), torch.as_tensor(batch.dense, dtype=torch.float32),
                   torch.as_tensor(batch.position, dtype=torch.long), torch.from_numpy(labels),
                   torch.from_numpy(weights))

    def __len__(self) -> int:
        return self.labels.shape[0]

    def tensors(self) -> tuple[Tensor, ...]:
        return self.categorical, self.dense, self.position, self.labels, self.weights


@dataclass
class TrainResult:
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    logit_offset: tuple[float, ...] = ()


def ranker_loss(logits: Tensor, labels: Tensor, weights: Tensor, task_weights: Tensor,
                kind: str = "bce", gamma: float = 2.0) -> Tensor:
    r"""Weighted multi-task binary cross-entropy, or the focal loss of Lin et al. (ICCV 2017),
    :math:`(1 - p_t)^\gamma \cdot \mathrm{BCE}`:
    :math:`\sum_i w_i \sum_t \lambda_t \ell_{it} / \sum_i w_i`. Shapes: (B, T), (B, T), (B,), (T,) -> ()."""
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if kind == "focal":
        bce = (1 - torch.exp(-bce)).pow(gamma) * bce
    return (weights * (bce * task_weights).sum(1)).sum() / weights.sum().clamp_min(1e-12)


class RankerTrainer:
    """Trains a :class:`Ranker` in place; see the module docstring for the loss and metrics.

    Args:
        model (Ranker): the model (its initial weights are the caller's: seed before building it).
        config (RankerTrainConfig): optimisation settings.
        on_epoch_end (callable, optional): ``f(epoch, metrics)`` after each epoch (e.g. MLflow
            logging in the job; this module never imports mlflow).
    """

    def __init__(self, model: Ranker, config: RankerTrainConfig | None = None,
                 on_epoch_end: EpochCallback | None = None) -> None:
        config = RankerTrainConfig() if config is None else config
        if config.task_weights and len(config.task_weights) != len(model.tasks):
            raise ValueError(f"task_weights {config.task_weights} needs one weight per task {model.tasks}")
        self.model, self.config, self.on_epoch_end = model, config, on_epoch_end
        use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        if config.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("ranker_train.device='cuda' but no CUDA device is available")
        self.device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
        self.logit_offset = torch.zeros(len(model.tasks))

    @staticmethod
    def _distributed() -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    def _loader(self, data: RankerData, epoch: int) -> torch.utils.data.DataLoader:
        from torch.utils.data import (
            BatchSampler,
            DataLoader,
            DistributedSampler,
            RandomSampler,
            TensorDataset,
        )

        dataset = TensorDataset(*data.tensors())
        if self._distributed():
            sampler = DistributedSampler(dataset, shuffle=True, seed=self.config.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.config.seed + epoch))
        # a batch of indices per item: TensorDataset slices whole batches, no per-row collation
        return DataLoader(dataset, sampler=BatchSampler(sampler, self.config.batch_size, drop_last=False),
                          batch_size=None)

    def fit(self, train: RankerData, validation: RankerData, negative_rate: float = 1.0,
            checkpoint: str | os.PathLike | None = None) -> TrainResult:
        """Train with early stopping; the model ends with the best epoch's weights.

        ``negative_rate``: the training set's negative sampling rate (its Delta metadata), used
        by ``negative_correction="logit"``. ``checkpoint``: a file written after every epoch
        (state dicts, loaded with ``weights_only=True``); when it exists, training resumes from it
        and ends as an uninterrupted run would.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if not 0 < negative_rate <= 1:
            raise ValueError(f"negative_rate must be in (0, 1], got {negative_rate}")
        if len(train) == 0 or len(validation) == 0:
            raise ValueError("train and validation must be non-empty")
        tasks = len(self.model.tasks)
        if train.labels.shape[1] != tasks or validation.labels.shape[1] != tasks:
            raise ValueError(f"labels must have one column per task {self.model.tasks}")
        logit_mode = cfg.negative_correction == "logit"
        self.logit_offset = torch.full((tasks,), math.log(negative_rate) if logit_mode else 0.0)
        task_weights = torch.tensor(cfg.task_weights or (1.0,) * tasks, device=self.device)
        model = self.model.to(self.device)
        net: nn.Module = model
        if self._distributed():
            net = nn.parallel.DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state = {"epoch": -1, "best_metric": None, "best_epoch": -1, "bad_epochs": 0, "history": [],
                 "best_state": copy.deepcopy(model.state_dict())}
        if checkpoint is not None and os.path.exists(checkpoint):
            saved = torch.load(checkpoint, map_location=self.device, weights_only=True)
            model.load_state_dict(saved.pop("model"))
            optimizer.load_state_dict(saved.pop("optimizer"))
            state.update(saved)
        higher = cfg.monitor == "auc"
        stopped = False
        for epoch in range(state["epoch"] + 1, cfg.epochs):
            if state["bad_epochs"] >= cfg.patience:
                stopped = True
                break
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout: the same draws when resumed
            net.train()
            total, seen, rows = 0.0, 0.0, 0
            for cat, dense, pos, y, w in tqdm(self._loader(train, epoch), desc=f"ranker epoch {epoch}",
                                              disable=not cfg.progress, leave=False):
                cat, dense, pos, y, w = (t.to(self.device, non_blocking=True) for t in (cat, dense, pos, y, w))
                loss_w = torch.ones_like(w) if logit_mode else w
                loss = ranker_loss(net(cat, dense, pos), y, loss_w, task_weights, cfg.loss, cfg.focal_gamma)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * float(loss_w.sum())
                seen += float(loss_w.sum())
                rows += len(w)
            total, seen, rows = self._all_ranks_sum(total, seen, rows)
            metrics = {"train_loss": total / max(seen, 1e-12), "train_rows": float(rows), **self.evaluate(validation)}
            value = metrics[f"val_{cfg.monitor}"]
            if not math.isfinite(value) or not math.isfinite(metrics["train_loss"]):  # NaN is never "worse"
                raise FloatingPointError(f"epoch {epoch}: training diverged (train loss {metrics['train_loss']}, "
                                         f"val_{cfg.monitor} {value}); lower ranker_train.lr or check the features")
            best = state["best_metric"]
            improved = best is None or (value > best + cfg.min_delta if higher else value < best - cfg.min_delta)
            if improved:
                state.update(best_metric=value, best_epoch=epoch, bad_epochs=0,
                             best_state=copy.deepcopy(model.state_dict()))
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            state["history"].append({"epoch": float(epoch), **metrics})
            if checkpoint is not None and self._rank() == 0:
                tmp = f"{os.fspath(checkpoint)}.tmp"
                torch.save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
                os.replace(tmp, checkpoint)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, metrics)
        model.load_state_dict(state["best_state"])
        best = next((h for h in state["history"] if int(h["epoch"]) == state["best_epoch"]), {})
        return TrainResult(best_epoch=state["best_epoch"], best_metrics={k: v for k, v in best.items() if k != "epoch"},
                           history=list(state["history"]), stopped_early=stopped,
                           logit_offset=tuple(self.logit_offset.tolist()))

    def _all_ranks_sum(self, *values: float) -> tuple[float, ...]:
        """Sums over the ranks, so every rank logs (and early-stops on) the same numbers."""
        if not self._distributed():
            return values
        out = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(out)
        return tuple(out.tolist())

    def _rank(self) -> int:
        return torch.distributed.get_rank() if self._distributed() else 0

    @torch.no_grad()
    def predict_logits(self, data: RankerData, with_position: bool = False) -> np.ndarray:
        """(B, T) float32 logits (+ the negative-sampling offset); position-free unless asked."""
        self.model.eval()
        out = []
        for i in range(0, len(data), self.config.eval_batch_size):
            sl = slice(i, i + self.config.eval_batch_size)
            pos = data.position[sl].to(self.device) if with_position else None
            logits = self.model(data.categorical[sl].to(self.device), data.dense[sl].to(self.device), pos)
            out.append((logits.float() + self.logit_offset.to(self.device)).cpu())
        return torch.cat(out).numpy()

    def evaluate(self, data: RankerData) -> dict[str, float]:
        """Weighted validation log-loss (with position) and AUC (position-free) per task and mean."""
        with_pos = self.predict_logits(data, with_position=True)
        free = self.predict_logits(data, with_position=False)
        y, w = data.labels.numpy(), data.weights.numpy()
        out: dict[str, float] = {}
        for t, task in enumerate(self.model.tasks):
            out[f"val_logloss_{task}"] = log_loss(y[:, t], 1 / (1 + np.exp(-with_pos[:, t].astype(np.float64))), w)
            has_both = 0 < y[:, t].sum() < len(y)
            out[f"val_auc_{task}"] = auc(y[:, t], free[:, t], w) if has_both else float("nan")
        out["val_logloss"] = float(np.mean([out[f"val_logloss_{t}"] for t in self.model.tasks]))
        out["val_auc"] = float(np.nanmean([out[f"val_auc_{t}"] for t in self.model.tasks]))
        return out
