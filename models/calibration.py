"""Per-task probability calibration of ranker logits and the final blended score.

Fitted on validation logits (position-free: the position tower is off, so calibration also
restores the level the position bias took away). Two methods:

* Platt scaling (Platt, 1999): :math:`p = \\sigma(a z + b)`, weighted maximum likelihood by
  Newton's method;
* isotonic regression: the weighted pool-adjacent-violators algorithm (our numpy
  implementation; scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` gives the same
  function and is used only in the tests), applied as linear interpolation between block
  end-points, flat outside them.

Both apply in numpy (:meth:`Calibration.apply`) and as a torch module with ONNX-friendly ops
(:meth:`Calibration.module`: affine + sigmoid; for isotonic a sum of clamped linear pieces
:math:`y_0 + \\sum_k s_k (\\min(\\max(z, x_k), x_{k+1}) - x_k)` — Max/Min/Mul/ReduceSum, no
searchsorted). Final score = :math:`\\sum_t w_t\\, p_t` with weights from :class:`CalibrationConfig`.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pinrec.models.config import CalibrationConfig, score_weights_for


@dataclass(frozen=True)
class Platt:
    a: float
    b: float

    def apply(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(z, np.float64) + self.b)))


@dataclass(frozen=True)
class Isotonic:
    """Knots ``x`` (strictly increasing logits) and ``y`` (non-decreasing probabilities)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.x or len(self.x) != len(self.y) or np.any(np.diff(self.x) <= 0) or np.any(np.diff(self.y) < 0):
            raise ValueError("isotonic knots need equal lengths, strictly increasing x, non-decreasing y")

    def apply(self, z: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(z, np.float64), self.x, self.y)


def _inputs(z, y, w) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y = np.asarray(z, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    w = np.ones_like(z) if w is None else np.asarray(w, np.float64).ravel()
    if not z.size or z.shape != y.shape or z.shape != w.shape:
        raise ValueError(f"logits, labels and weights must be non-empty and of one length, got {z.shape}, "
                         f"{y.shape}, {w.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(z)):
        raise ValueError("weights must be >= 0 and logits finite")
    return z, y, w / w.mean()


def fit_platt(logits, labels, sample_weight=None, max_iter: int = 50, tol: float = 1e-10) -> Platt:
    """Weighted maximum-likelihood Platt scaling by damped Newton steps, with the slope constrained
    to ``a >= 0`` (order-preserving; a logit that ranks the labels backwards gets ``a = 0``, the
    base rate, and a ``RuntimeWarning``)."""
    z, y, w = _inputs(logits, labels, sample_weight)
    X = np.stack([z, np.ones_like(z)], 1)
    theta = np.array([1.0, 0.0])

    def nll(t: np.ndarray) -> float:
        s = X @ t
        return float((w * (np.logaddexp(0, s) - y * s)).sum())

    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(X @ theta)))
        grad = X.T @ (w * (p - y))
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step, f0, t = np.linalg.solve(hess, grad), nll(theta), 1.0
        while nll(theta - t * step) > f0 + 1e-12 and t > 1e-6:
            t /= 2
        theta = theta - t * step
        if np.abs(t * step).max() < tol:
            break
    if theta[0] < 0:
        # Calibration must keep the model's order: a negative slope would silently flip a ranking
        # that came out backwards on the calibration split. The constrained optimum is a = 0.
        rate = float(np.clip((w * y).sum() / w.sum(), 1e-12, 1 - 1e-12))
        warnings.warn(f"Platt slope {theta[0]:.4g} < 0: the logits rank the calibration labels backwards; "
                      "clamped to a = 0 (a constant, the base rate)", RuntimeWarning, stacklevel=2)
        theta = np.array([0.0, math.log(rate / (1 - rate))])
    return Platt(float(theta[0]), float(theta[1]))


def fit_isotonic(logits, labels, sample_weight=None) -> Isotonic:
    """Weighted pool-adjacent-violators on (logit, label), non-decreasing."""
    z, y, w = _inputs(logits, labels, sample_weight)
    xs, inv = np.unique(z, return_inverse=True)  # equal logits pool first
    ws = np.bincount(inv, w)
    ys = np.bincount(inv, w * y) / np.where(ws > 0, ws, 1)
    # blocks as parallel stacks: value, weight, first and last unique-x index
    val, wt, lo, hi = [], [], [], []
    for i in range(xs.size):
        val.append(ys[i]); wt.append(ws[i]); lo.append(i); hi.append(i)
        while len(val) > 1 and val[-2] > val[-1]:
            v, ww, h = val.pop(), wt.pop(), hi.pop()
            lo.pop()
            total = wt[-1] + ww
            val[-1] = (val[-1] * wt[-1] + v * ww) / total if total > 0 else val[-1]
            wt[-1], hi[-1] = total, h
    kx, ky = [], []
    for v, a, b in zip(val, lo, hi):
        for i in ((a,) if a == b else (a, b)):
            kx.append(float(xs[i])); ky.append(float(v))
    return Isotonic(tuple(kx), tuple(ky))


@dataclass(frozen=True)
class Calibration:
    """Fitted calibrators, one per task, and the score weights; JSON-serialisable."""

    tasks: tuple[str, ...]
    calibrators: tuple[Platt | Isotonic, ...]
    score_weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.tasks) == len(self.calibrators) == len(self.score_weights)) or not self.tasks:
            raise ValueError(f"tasks {self.tasks}, calibrators and score_weights {self.score_weights} must align")
        if len({type(c) for c in self.calibrators}) != 1:
            raise ValueError("all tasks must use one calibration method")

    @property
    def method(self) -> str:
        return "platt" if isinstance(self.calibrators[0], Platt) else "isotonic"

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """(B, T) logits -> (B, T) probabilities."""
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != len(self.tasks):
            raise ValueError(f"expected (B, {len(self.tasks)}) logits, got {logits.shape}")
        return np.stack([c.apply(logits[:, t]) for t, c in enumerate(self.calibrators)], 1)

    def score(self, probs: np.ndarray) -> np.ndarray:
        """(B, T) probabilities -> (B,) final score."""
        return np.asarray(probs) @ np.asarray(self.score_weights)

    def module(self) -> nn.Module:
        """The same map as a torch module: (B, T) logits -> (B, T) probabilities."""
        return PlattLayer(self) if self.method == "platt" else IsotonicLayer(self)

    def to_json(self) -> str:
        return json.dumps({"format": "pinrec.calibration/1", "tasks": list(self.tasks), "method": self.method,
                           "calibrators": [asdict(c) for c in self.calibrators],
                           "score_weights": list(self.score_weights)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        d = json.loads(text)
        if d.get("format") != "pinrec.calibration/1":
            raise ValueError(f"not a pinrec calibration (format {d.get('format')!r})")
        kind = Platt if d["method"] == "platt" else Isotonic
        cals = tuple(kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
                     for c in d["calibrators"])
        return cls(tuple(d["tasks"]), cals, tuple(d["score_weights"]))


def fit_calibration(logits: np.ndarray, labels: np.ndarray, tasks: tuple[str, ...], config: CalibrationConfig,
                    sample_weight: np.ndarray | None = None) -> Calibration:
    """Fit one calibrator per task column of (B, T) validation ``logits`` against (B, T) ``labels``."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or logits.shape != labels.shape or logits.shape[1] != len(tasks):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be (B, {len(tasks)})")
    weights = score_weights_for(tuple(tasks), config)
    if len(weights) != len(tasks):
        raise ValueError(f"calibration.score_weights {config.score_weights} needs one weight per task {tasks}")
    fit = fit_platt if config.method == "platt" else fit_isotonic
    return Calibration(tuple(tasks), tuple(fit(logits[:, t], labels[:, t], sample_weight)
                                           for t in range(len(tasks))), weights)


class PlattLayer(nn.Module):
    """:math:`\\sigma(a_t z_t + b_t)` per task; (B, T) -> (B, T)."""

    def __init__(self, calibration: Calibration) -> None:
        super().__init__()
        self.register_buffer("a", torch.tensor([c.a for c in calibration.calibrators], dtype=torch.float32))
        self.register_buffer("b", torch.tensor([c.b for c in calibration.calibrators], dtype=torch.float32))

    def forward(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits * self.a + self.b)


class IsotonicLayer(nn.Module):
    """Piecewise-linear interpolation between knots, flat outside; (B, T) -> (B, T). Tasks with
    fewer knots are padded with zero-slope pieces."""

    def __init__(self, calibration: Calibration) -> None:
        super().__init__()
        cals = calibration.calibrators
        k = max(max(len(c.x) for c in cals) - 1, 1)
        lo, hi, slope = (torch.zeros(len(cals), k, dtype=torch.float64) for _ in range(3))
        for t, c in enumerate(cals):
            x, y = np.asarray(c.x), np.asarray(c.y)
            n = len(x) - 1
            lo[t, :], hi[t, :] = x[-1], x[-1]
            if n:
                lo[t, :n], hi[t, :n] = torch.from_numpy(x[:-1]), torch.from_numpy(x[1:])
                slope[t, :n] = torch.from_numpy(np.diff(y) / np.diff(x))
        self.register_buffer("lo", lo.float())
        self.register_buffer("hi", hi.float())
        self.register_buffer("slope", slope.float())
        self.register_buffer("y0", torch.tensor([c.y[0] for c in cals], dtype=torch.float32))

    def forward(self, logits: Tensor) -> Tensor:
        z = logits.unsqueeze(-1)  # (B, T, 1)
        pieces = torch.minimum(torch.maximum(z, self.lo), self.hi) - self.lo  # (B, T, K)
        return self.y0 + (pieces * self.slope).sum(-1)
