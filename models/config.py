"""Hyper-parameter configs of the models, torch-free.

They live apart from the modules that use them so that ``pinrec.jobs.config`` (and so every ``pinrec``
command, ``pinrec ingest`` included) can declare them without importing torch.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pinrec.schemas.config_base import section

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]  # [0, 1)


@section("ranker")
class RankerConfig:
    """Architecture of :class:`Ranker`.

    ``structure``: ``"stacked"`` (deep tower on the cross output) or ``"parallel"`` (both on
    the input, concatenated). ``cross_rank``: rank of each cross matrix, 0 for full rank.
    ``cross_experts``: > 1 uses DCN-Mix (:class:`~pinrec.models.dcn.CrossNetMix`, needs a rank).
    ``position_dropout``: during training, the share of rows whose position is replaced by
    "unknown" (0), so the main model does not lean on the position tower.
    """

    tasks: Annotated[tuple[str, ...], Field(min_length=1)] = ("save", "closeup")
    embedding_dim: PosInt = 8
    structure: Literal["stacked", "parallel"] = "stacked"
    cross_layers: PosInt = 2
    cross_rank: NonNegInt = 16
    cross_experts: PosInt = 1
    deep_channels: Annotated[tuple[PosInt, ...], Field(min_length=1)] = (128, 64)
    mmoe_experts: PosInt = 4
    expert_channels: Annotated[tuple[PosInt, ...], Field(min_length=1)] = (64,)
    tower_channels: tuple[PosInt, ...] = (32,)
    dropout: Fraction = 0.0
    position_dim: PosInt = 8
    position_dropout: Fraction = 0.1

    @model_validator(mode="after")
    def _check(self) -> RankerConfig:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"ranker.tasks must be unique, got {self.tasks}")
        if self.cross_experts > 1 and self.cross_rank == 0:
            raise ValueError("ranker.cross_rank must be > 0 when cross_experts > 1 (DCN-Mix needs a rank)")
        return self


@section("ranker_train")
class RankerTrainConfig:
    """Optimisation of the ranker. ``monitor``: ``"logloss"`` (lower is better) or ``"auc"``;
    training stops after ``patience`` epochs without an improvement over ``min_delta`` and keeps
    the best epoch's weights. ``device``: ``"auto"`` (cuda when available), ``"cpu"`` or ``"cuda"``."""

    epochs: PosInt = 10
    batch_size: PosInt = 1024
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0
    loss: Literal["bce", "focal"] = "bce"
    focal_gamma: NonNegFloat = 2.0
    task_weights: tuple[NonNegFloat, ...] = ()
    negative_correction: Literal["weights", "logit"] = "weights"
    monitor: Literal["logloss", "auc"] = "logloss"
    patience: PosInt = 2
    min_delta: NonNegFloat = 0.0
    seed: NonNegInt = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_batch_size: PosInt = 8192
    progress: bool = True


@section("calibration")
class CalibrationConfig:
    """``method``: ``"platt"`` or ``"isotonic"``. ``score_weights``: one weight per ranker task
    (in ``RankerConfig.tasks`` order) for the final score; null (the default): each task's weight in
    :data:`DEFAULT_SCORE_WEIGHTS` (save 1.0, closeup 0.3; another task 1.0), so changing the tasks
    needs no second setting."""

    method: Literal["platt", "isotonic"] = "platt"
    score_weights: Annotated[tuple[NonNegFloat, ...], Field(min_length=1)] | None = None


#: the final score's weight of each task when ``calibration.score_weights`` is null
DEFAULT_SCORE_WEIGHTS = {"save": 1.0, "closeup": 0.3}


def score_weights_for(tasks: tuple[str, ...], config: CalibrationConfig) -> tuple[float, ...]:
    """``config.score_weights``, or the defaults of ``tasks`` when it is null."""
    if config.score_weights is None:
        return tuple(DEFAULT_SCORE_WEIGHTS.get(t, 1.0) for t in tasks)
    return tuple(config.score_weights)


@section("pinsage")
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
    Versions (the job, :mod:`pinrec.jobs.pinsage.pinsage_versions`): ``warm_start`` starts from the
    previous model version's weights when the architecture and the feature spec match (new pins'
    id rows freshly initialised), training ``warm_start_epochs`` epochs (0: ``epochs``); otherwise,
    or with ``warm_start`` off, a cold start.
    Runtime: ``seed``, ``checkpoint_dir`` (None: no checkpoints), ``checkpoint_every`` (epochs),
    ``device`` (``"auto"``: CUDA when available), ``progress`` (a tqdm bar on rank 0),
    ``inference_batch_size`` (for ``embed``).
    """

    epochs: PosInt = 10
    batch_size: PosInt = 256
    lr: PosFloat = 1e-3
    margin: NonNegFloat = 0.1
    loss: Literal["margin", "softmax"] = "margin"
    temperature: PosFloat = 0.1
    in_batch_negatives: bool = False
    num_negatives: NonNegInt = 64
    positives: Literal["board", "walk", "sequence", "next"] = "board"
    positive_window: PosInt = 20
    history_half_life: NonNegFloat = 0.0
    hard_negatives_from_epoch: NonNegInt = 2
    max_hard_negatives: NonNegInt = 6
    hard_negative_band: tuple[NonNegInt, NonNegInt] = (20, 100)
    hard_negative_walks: PosInt = 200
    hard_negative_walk_length: PosInt = 4
    num_neighbors: PosInt = 10
    num_walks: PosInt = 50
    walk_length: PosInt = 3
    restart_prob: Fraction = 0.5
    neighborhood_refresh: Literal["epoch", "batch"] = "epoch"
    hidden_channels: PosInt = 64
    out_channels: PosInt = 64
    num_layers: PosInt = 2
    id_embedding: bool = False
    id_embedding_std: PosFloat = 1.0
    warm_start: bool = True
    warm_start_epochs: NonNegInt = 0
    seed: NonNegInt = 0
    checkpoint_dir: str | None = None
    checkpoint_every: PosInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    inference_batch_size: PosInt = 1024

    @model_validator(mode="after")
    def _check(self) -> PinSageTrainConfig:
        if self.num_negatives == 0 and (self.max_hard_negatives == 0 or self.hard_negatives_from_epoch > 0):
            raise ValueError("pinsage: with num_negatives=0 every epoch needs hard negatives "
                             "(max_hard_negatives >= 1, hard_negatives_from_epoch=0): no negatives, no loss")
        lo, hi = self.hard_negative_band
        if not lo < hi:
            raise ValueError(f"pinsage.hard_negative_band must be (lo, hi) with 0 <= lo < hi, got {(lo, hi)}")
        return self


@section("two_tower")
class TwoTowerConfig:
    """The two-tower retrieval model (:mod:`pinrec.models.two_tower`) and its training
    (:mod:`pinrec.models.two_tower_trainer`).

    Model: ``out_channels`` (D), ``hidden_channels`` (MLP width), ``category_dim`` (per
    categorical column), ``list_length`` (L: recent saves and closeups the user tower reads, newest
    first), ``pooling`` (``"attention"`` learned, or ``"mean"`` recency-weighted with
    ``half_life`` slots). Training: in-batch sampled softmax over ``batch_size`` pairs with
    ``logq`` correction (subtract log of each pin's share of the training positives),
    ``epochs``, ``lr``, ``weight_decay``; each temperature of ``temperatures`` trains one model
    and the best validation recall@``eval_k`` wins. Runtime: ``seed``, ``checkpoint_dir`` (None:
    none), ``checkpoint_every``, ``device``, ``progress``, ``inference_batch_size``.
    ``max_pairs``: at most this many training pairs (a seeded sample; 0: all).
    """

    out_channels: PosInt = 32
    hidden_channels: PosInt = 64
    category_dim: PosInt = 8
    list_length: PosInt = 10
    pooling: Literal["attention", "mean"] = "attention"
    half_life: PosFloat = 2.0
    epochs: PosInt = 10
    batch_size: Annotated[int, Field(ge=2)] = 256
    lr: PosFloat = 3e-3
    weight_decay: NonNegFloat = 0.0
    logq: bool = True
    temperatures: Annotated[tuple[PosFloat, ...], Field(min_length=1)] = (0.05, 0.1, 0.2)
    eval_k: PosInt = 50
    max_pairs: NonNegInt = 0
    seed: NonNegInt = 0
    checkpoint_dir: str | None = None
    checkpoint_every: PosInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    inference_batch_size: PosInt = 4096
