"""The retrieval evaluation's configuration (``retrieval_eval``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from pinrec.schemas.config_base import section

Baseline = Literal["popularity", "als", "bpr", "ease"]
BASELINES: tuple[str, ...] = get_args(Baseline)
PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
PosFloat = Annotated[float, Field(gt=0.0)]


@section("retrieval_eval")
class RetrievalEvalConfig:
    """Protocol sizes and baseline hyper-parameters (``implicit`` names); see the module docstring.

    The ALS / BPR defaults were picked by a small grid on MovieLens 100K's validation split (each
    user's second-latest movie held out from the training part of the test split): ALS factors
    32-128, regularization 0.01-50, alpha 1-20; BPR learning rate 0.005-0.1, regularization
    0.001-0.1, 50-300 iterations. ``ease_lambda``: EASE's L2 weight (Steck, WWW 2019).

    ``half_life_days``: recency weighting of the user's items (0 = plain mean). ``recent_items``:
    an embedding model's user is built from their latest ``recent_items`` training items only (0 =
    all): on MovieLens the held-out item is the user's next one, far closer in taste to the last few
    movies rated than to the user's whole history (the baselines' users are unaffected).
    ``recent_half_life``: > 0 weights those items by ``0.5 ** (later items / recent_half_life)``
    (recency by position, not time: MovieLens users rate dozens of movies in one sitting). ``num_threads``:
    ``implicit``'s threads (0 = all cores). ``source``: which interactions the loaders read
    (``impressions``, or actions of type ``closeup`` / ``save``; ``impressions`` of a dataset landed with
    sampled negative impressions reads its closeups, one per interaction).

    ``tune``: choose the data-dependent settings on the dataset's own validation split first
    (:mod:`pinrec.jobs.retrieval.tuning`), within ``tune_budget_s`` wall seconds, from the declared
    space: PinSage's ``tune_positives`` (time-aware ``sequence`` / ``next`` only where timestamps are
    usable), ``tune_windows``, ``tune_half_lives`` (history half-life, also the user scoring's
    ``recent_half_life``) and ``tune_id_scales`` (``id_embedding_std``; 0: no id embedding); ALS
    ``tune_als_regularization``, BPR ``tune_bpr_learning_rate``, EASE ``tune_ease_lambda``.
    ``tune_in_training``: the training DAG's ``retrieval_settings`` step runs that search for PinSage
    on the graph before PinSage trains (:mod:`pinrec.jobs.pinsage.pinsage_settings`).
    """

    k: PosInt = 10
    num_negatives: PosInt = 99
    seed: NonNegInt = 7
    half_life_days: NonNegFloat = 0.0
    recent_items: NonNegInt = 0
    recent_half_life: NonNegFloat = 0.0
    baselines: tuple[Baseline, ...] = BASELINES
    factors: PosInt = 64
    als_iterations: PosInt = 15
    als_regularization: NonNegFloat = 10.0
    als_alpha: PosFloat = 5.0
    bpr_iterations: PosInt = 100
    bpr_learning_rate: PosFloat = 0.01
    bpr_regularization: NonNegFloat = 0.01
    ease_lambda: PosFloat = 500.0
    num_threads: NonNegInt = 1
    latent_pairs: PosInt = 20_000
    latent_queries: PosInt = 500
    source: Literal["impressions", "closeup", "save"] = "impressions"
    tune: bool = False
    tune_budget_s: PosFloat = 1800.0
    tune_in_training: bool = False
    tune_positives: tuple[Literal["board", "walk", "sequence", "next"], ...] = ("board", "walk", "sequence", "next")
    tune_windows: tuple[PosInt, ...] = (5, 10, 20)
    tune_half_lives: tuple[NonNegFloat, ...] = (0.0, 2.0, 8.0)
    tune_id_scales: tuple[NonNegFloat, ...] = (0.0, 0.1, 1.0)
    tune_als_regularization: tuple[NonNegFloat, ...] = (1.0, 10.0, 50.0)
    tune_bpr_learning_rate: tuple[PosFloat, ...] = (0.005, 0.01, 0.05)
    tune_ease_lambda: tuple[PosFloat, ...] = (50.0, 200.0, 500.0, 2000.0)

    @model_validator(mode="after")
    def _check(self) -> RetrievalEvalConfig:
        if self.k > self.num_negatives + 1:
            raise ValueError(f"retrieval_eval.k={self.k} exceeds the {self.num_negatives + 1} candidates per user "
                             f"(num_negatives + 1)")
        return self
