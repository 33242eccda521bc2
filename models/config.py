"""Hyper-parameter configs of the models, torch-free.

They live apart from the modules that use them so that ``jobs.config`` (and so every ``pinrec``
command, ``pinrec ingest`` included) can declare them without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankerConfig:
    """Architecture of :class:`Ranker`.

    ``structure``: ``"stacked"`` (deep tower on the cross output) or ``"parallel"`` (both on
    the input, concatenated). ``cross_rank``: rank of each cross matrix, 0 for full rank.
    ``cross_experts``: > 1 uses DCN-Mix (:class:`~models.dcn.CrossNetMix`, needs a rank).
    ``position_dropout``: during training, the share of rows whose position is replaced by
    "unknown" (0), so the main model does not lean on the position tower.
    """

    tasks: tuple[str, ...] = ("save", "closeup")
    embedding_dim: int = 8
    structure: str = "stacked"
    cross_layers: int = 2
    cross_rank: int = 16
    cross_experts: int = 1
    deep_channels: tuple[int, ...] = (128, 64)
    mmoe_experts: int = 4
    expert_channels: tuple[int, ...] = (64,)
    tower_channels: tuple[int, ...] = (32,)
    dropout: float = 0.0
    position_dim: int = 8
    position_dropout: float = 0.1

    def __post_init__(self) -> None:
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"ranker.tasks must be non-empty and unique, got {self.tasks}")
        if self.structure not in ("stacked", "parallel"):
            raise ValueError(f"ranker.structure must be 'stacked' or 'parallel', got {self.structure!r}")
        for name in ("embedding_dim", "cross_layers", "cross_experts", "mmoe_experts", "position_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ranker.{name} must be >= 1, got {getattr(self, name)}")
        if self.cross_rank < 0 or (self.cross_experts > 1 and self.cross_rank == 0):
            raise ValueError(f"ranker.cross_rank must be >= 0, and > 0 when cross_experts > 1; got {self.cross_rank}")
        if not self.deep_channels or not self.expert_channels:
            raise ValueError("ranker.deep_channels and ranker.expert_channels must be non-empty")
        if any(c < 1 for c in (*self.deep_channels, *self.expert_channels, *self.tower_channels)):
            raise ValueError("ranker layer sizes must be >= 1")
        for name in ("dropout", "position_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"ranker.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class RankerTrainConfig:
    """Optimisation of the ranker. ``monitor``: ``"logloss"`` (lower is better) or ``"auc"``;
    training stops after ``patience`` epochs without an improvement over ``min_delta`` and keeps
    the best epoch's weights. ``device``: ``"auto"`` (cuda when available), ``"cpu"`` or ``"cuda"``."""

    epochs: int = 10
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "bce"
    focal_gamma: float = 2.0
    task_weights: tuple[float, ...] = ()
    negative_correction: str = "weights"
    monitor: str = "logloss"
    patience: int = 2
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 8192
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"ranker_train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0 or self.focal_gamma < 0 or self.min_delta < 0:
            raise ValueError("ranker_train: lr must be > 0; weight_decay, focal_gamma and min_delta >= 0")
        choices = {"loss": ("bce", "focal"), "negative_correction": ("weights", "logit"),
                   "monitor": ("logloss", "auc"), "device": ("auto", "cpu", "cuda")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ranker_train.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if any(w < 0 for w in self.task_weights):
            raise ValueError(f"ranker_train.task_weights must be >= 0, got {self.task_weights}")


@dataclass(frozen=True)
class CalibrationConfig:
    """``method``: ``"platt"`` or ``"isotonic"``. ``score_weights``: one weight per ranker task
    (in ``RankerConfig.tasks`` order, default save then closeup) for the final score."""

    method: str = "platt"
    score_weights: tuple[float, ...] = (1.0, 0.3)

    def __post_init__(self) -> None:
        if self.method not in ("platt", "isotonic"):
            raise ValueError(f"calibration.method must be 'platt' or 'isotonic', got {self.method!r}")
        if not self.score_weights or any(w < 0 for w in self.score_weights):
            raise ValueError(f"calibration.score_weights must be non-empty and >= 0, got {self.score_weights}")
