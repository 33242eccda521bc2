"""Hyper-parameter configs of the models, torch-free.

They live apart from the modules that use them so that ``pinrec.jobs.config`` (and so every ``pinrec``
command, ``pinrec ingest`` included) can declare them without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankerConfig:
    """Architecture of :class:`Ranker`.

    ``structure``: ``"stacked"`` (deep tower on the cross output) or ``"parallel"`` (both on
    the input, concatenated). ``cross_rank``: rank of each cross matrix, 0 for full rank.
    ``cross_experts``: > 1 uses DCN-Mix (:class:`~pinrec.models.dcn.CrossNetMix`, needs a rank).
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


@dataclass(frozen=True)
class PinSageTrainConfig:
    """Training of PinSage (see the module docstring).

    Model: ``hidden_channels``, ``out_channels`` (D), ``num_layers``, ``id_embedding`` (and the
    ``id_embedding_std`` of its initialisation).
    Neighbourhoods (:class:`~pinrec.models.random_walk.ImportanceNeighborSampler`): ``num_neighbors`` (T,
    the paper's top-T), ``num_walks``, ``walk_length``, ``restart_prob``.
    Examples: ``positives`` = ``"board"`` (co-saved pins), ``"walk"`` (walk co-visits) or
    ``"sequence"`` (pins saved to the same board within ``positive_window`` saves of each other in
    time order: on a user x item log, items consumed close together; needs edge times) or
    ``"next"`` (the query is the mean embedding of a board's ``positive_window`` latest pins, the
    positive the pin saved next: next-item training for a user represented by their latest pins;
    ``history_half_life`` > 0 weights the query's pins by ``0.5 ** (later saves / history_half_life)``,
    0 averages them);
    ``num_negatives`` uniform negatives per batch; hard negatives from epoch
    ``hard_negatives_from_epoch`` (0-based; >= ``epochs`` or ``max_hard_negatives=0`` turns them
    off), ranks ``hard_negative_band = (lo, hi)`` of a PageRank estimate from
    ``hard_negative_walks`` walks of ``hard_negative_walk_length`` steps per query.
    Optimisation: ``epochs``, ``batch_size`` (pairs per step per rank), ``lr``; ``loss`` =
    ``"margin"`` (the paper's max-margin hinge with ``margin``) or ``"softmax"`` (sampled softmax
    cross-entropy of the positive against the uniform and hard negatives and, with
    ``in_batch_negatives``, the other queries' positives, at ``temperature``).
    ``neighborhood_refresh``: ``"epoch"`` samples one neighbourhood per pin at the start of each epoch
    and looks it up in every batch (one walk set per pin and epoch: cheap when an epoch touches most
    pins); ``"batch"`` re-samples in every forward pass, as the paper's minibatch producer does (better
    when an epoch touches few of many pins).
    Runtime: ``seed``, ``checkpoint_dir`` (None: no checkpoints), ``checkpoint_every`` (epochs),
    ``device`` (``"auto"``: CUDA when available), ``progress`` (a tqdm bar on rank 0),
    ``inference_batch_size`` (for ``embed``).
    """

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    margin: float = 0.1
    loss: str = "margin"
    temperature: float = 0.1
    in_batch_negatives: bool = False
    num_negatives: int = 64
    positives: str = "board"
    positive_window: int = 20
    history_half_life: float = 0.0
    hard_negatives_from_epoch: int = 2
    max_hard_negatives: int = 6
    hard_negative_band: tuple[int, int] = (20, 100)
    hard_negative_walks: int = 200
    hard_negative_walk_length: int = 4
    num_neighbors: int = 10
    num_walks: int = 50
    walk_length: int = 3
    restart_prob: float = 0.5
    neighborhood_refresh: str = "epoch"
    hidden_channels: int = 64
    out_channels: int = 64
    num_layers: int = 2
    id_embedding: bool = False
    id_embedding_std: float = 1.0
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    device: str = "auto"
    progress: bool = True
    inference_batch_size: int = 1024

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "num_neighbors", "num_walks", "walk_length", "hidden_channels",
                    "out_channels", "num_layers", "positive_window", "hard_negative_walks", "hard_negative_walk_length",
                    "checkpoint_every", "inference_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"pinsage.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_negatives", "max_hard_negatives", "hard_negatives_from_epoch", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"pinsage.{name} must be >= 0, got {getattr(self, name)}")
        if self.num_negatives == 0 and (self.max_hard_negatives == 0 or self.hard_negatives_from_epoch > 0):
            raise ValueError("pinsage: with num_negatives=0 every epoch needs hard negatives "
                             "(max_hard_negatives >= 1, hard_negatives_from_epoch=0): no negatives, no loss")
        if not self.id_embedding_std > 0:
            raise ValueError(f"pinsage.id_embedding_std must be > 0, got {self.id_embedding_std}")
        if not (self.lr > 0 and self.margin >= 0):
            raise ValueError(f"pinsage.lr must be > 0 and margin >= 0, got {self.lr} and {self.margin}")
        if not self.history_half_life >= 0:
            raise ValueError(f"pinsage.history_half_life must be >= 0, got {self.history_half_life}")
        if not 0.0 <= self.restart_prob < 1.0:
            raise ValueError(f"pinsage.restart_prob must lie in [0, 1), got {self.restart_prob}")
        if self.loss not in ("margin", "softmax"):
            raise ValueError(f"pinsage.loss must be 'margin' or 'softmax', got {self.loss!r}")
        if not self.temperature > 0:
            raise ValueError(f"pinsage.temperature must be > 0, got {self.temperature}")
        if self.positives not in ("board", "walk", "sequence", "next"):
            raise ValueError(f"pinsage.positives must be 'board', 'walk', 'sequence' or 'next', "
                             f"got {self.positives!r}")
        band = tuple(self.hard_negative_band)
        if len(band) != 2 or not 0 <= band[0] < band[1]:
            raise ValueError(f"pinsage.hard_negative_band must be (lo, hi) with 0 <= lo < hi, got {band}")
        if self.neighborhood_refresh not in ("epoch", "batch"):
            raise ValueError(f"pinsage.neighborhood_refresh must be 'epoch' or 'batch', got {self.neighborhood_refresh!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"pinsage.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
