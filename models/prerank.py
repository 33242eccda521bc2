"""The pre-ranker: multi-task logistic regression over encoded features, and its trainer.

The cheap first stage of the ranking cascade ("Pre-Ranker: filters 500 -> 200 candidates, fast ML
(logistic regression or tiny GBDTs)"): per task t,

.. math::
    z_t = b_t + \\sum_c W^{(c)}_{t}[x_c] + \\mathbf{w}_t^\\top \\mathbf{d},

one weight per value of each categorical column c (the encoder's indices, 0 = out of vocabulary)
and one per dense column: a plain logistic regression on the one-hot categoricals and the dense
features, with no interactions. ``forward`` returns logits; the loss (weighted BCE, as the
ranker's, :func:`pinrec.models.ranker_trainer.ranker_loss`, plus an L2 penalty on the weights,
not the biases) lives in :func:`train_logistic`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pinrec.models.ranker_trainer import RankerData, ranker_loss


class LogisticPrerank(nn.Module):
    r"""Logistic regression per task over (categorical, dense) encoded features.

    Args:
        cardinalities (tuple[int, ...]): indices of each categorical column (C columns).
        dense_channels (int): F, number of dense features.
        tasks (tuple[str, ...]): the T tasks, in label order.

    Shapes: categorical (B, C) int64, dense (B, F) float -> (B, T) logits. Has ``cardinalities``,
    ``dense_channels`` and ``tasks`` as :class:`~pinrec.models.ranker.Ranker` does, so the ranker's ONNX
    export (:func:`pinrec.export.build.onnx_ranker.export_ranker`) exports it unchanged.
    """

    def __init__(self, cardinalities: Sequence[int], dense_channels: int, tasks: Sequence[str]) -> None:
        super().__init__()
        cardinalities = tuple(int(c) for c in cardinalities)
        if any(c < 1 for c in cardinalities) or dense_channels < 0 or not tasks:
            raise ValueError(f"cardinalities must be >= 1, dense_channels >= 0 and tasks non-empty; got "
                             f"{cardinalities}, {dense_channels}, {tasks}")
        if not cardinalities and dense_channels == 0:
            raise ValueError("the pre-ranker needs at least one categorical or dense feature")
        self.cardinalities, self.dense_channels, self.tasks = cardinalities, dense_channels, tuple(tasks)
        t = len(self.tasks)
        self.register_buffer("offsets", torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
                             if cardinalities else torch.zeros(0, dtype=torch.long), persistent=False)
        self.categorical_weight = nn.Embedding(max(sum(cardinalities), 1), t)  # (sum C_c, T)
        self.dense = nn.Linear(dense_channels, t)  # its bias is the model's b
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.categorical_weight.weight)
        nn.init.zeros_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, categorical: Tensor, dense: Tensor) -> Tensor:
        logits = self.dense(dense.to(self.dense.weight.dtype))  # (B, T)
        if self.cardinalities:
            logits = logits + self.categorical_weight(categorical + self.offsets).sum(1)  # (B, C, T) -> (B, T)
        return logits

    def penalty(self) -> Tensor:
        """Sum of squared weights (biases excluded)."""
        return self.categorical_weight.weight.pow(2).sum() + self.dense.weight.pow(2).sum()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(C={len(self.cardinalities)}, F={self.dense_channels}, tasks={self.tasks})"


def train_logistic(model: LogisticPrerank, train: RankerData, max_iter: int = 100, l2: float = 1e-4) -> list[float]:
    """Fit ``model`` in place: full-batch L-BFGS (strong Wolfe line search) on the
    ``sample_weight``-weighted BCE of every task (equal task weights; the ranker's
    :func:`~pinrec.models.ranker_trainer.ranker_loss`) + ``l2`` * :meth:`LogisticPrerank.penalty`, at most
    ``max_iter`` iterations. The objective is convex and the model small, so one full batch (a few
    lookups per row) per evaluation is cheap and the fit is deterministic: no seed, no batches.
    Positions are not used: the pre-ranker scores position-free, as served. Returns the objective
    after each evaluation; the model is left in eval mode."""
    if max_iter < 1 or l2 < 0:
        raise ValueError(f"max_iter >= 1 and l2 >= 0 needed; got {max_iter}, {l2}")
    if len(train) == 0 or train.labels.shape[1] != len(model.tasks):
        raise ValueError(f"train must be non-empty with one label column per task {model.tasks}")
    model.train()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    task_weights = torch.ones(len(model.tasks))
    losses: list[float] = []

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = ranker_loss(model(train.categorical, train.dense), train.labels, train.weights, task_weights) \
            + l2 * model.penalty()
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    optimizer.step(closure)
    model.eval()
    return losses


@torch.no_grad()
def predict_logits(model: LogisticPrerank, categorical: np.ndarray, dense: np.ndarray,
                   batch_size: int = 65536) -> np.ndarray:
    """(B, T) float32 logits of encoded rows."""
    model.eval()
    out = [model(torch.as_tensor(categorical[i: i + batch_size], dtype=torch.long),
                 torch.as_tensor(dense[i: i + batch_size], dtype=torch.float32))
           for i in range(0, len(categorical), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.tasks)), np.float32)
