"""The ranker job's configuration (``ranker_job``): torch-free, declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from pinrec.schemas.config_base import section

EXPERIMENT = "pinrec-ranker"

Baseline = Literal["logreg", "dcnmix"]
BASELINES: tuple[str, ...] = get_args(Baseline)


#: ``ranker_job.user_embeddings`` value -> embedding column (:data:`pinrec.export.serving.embedding_features.USER_EMBEDDINGS`)
USER_EMBEDDING_KINDS = {"saves": "user_embedding", "closeups": "user_closeup_embedding"}
UserEmbeddingKind = Literal["saves", "closeups"]
PosInt = Annotated[int, Field(ge=1)]
Prerank = Literal["logistic", "none"]


@section("ranker_job")
class RankerJobConfig:
    """What the ranker job runs besides the model. ``baselines``: any of ``logreg``
    (scikit-learn) and ``dcnmix`` (deepctr-torch), trained for ``baseline_epochs``.
    ``no_position_twin``: also train the ranker without the position feature (the debiasing
    comparison). ``int8``: also export the int8 model. ``id_features``: hashed user/pin ids.
    ``embeddings``: when ``pin_embeddings`` exists, add the pin's PinSage embedding, the user's
    from each kind of engagement in ``user_embeddings`` (``closeups``: the mean of the recent
    closeups' embeddings; ``saves``: of the recent saves') and the pin's dot product with each
    (:mod:`pinrec.export.serving.embedding_features`).
    ``bootstrap_resamples``: session resamples for the AUC intervals and the oracle gaps
    (:func:`pinrec.jobs.ranking.ranker_eval_metrics.auc_intervals`); 0 computes none. ``debias_seeds``: training seeds
    of both the ranker and its no-position twin in the Kendall-tau comparison (seed, seed + 1,
    ...; the first pair is the exported ranker and its twin): more than one puts the training's
    randomness into the comparison's interval, which one pair cannot.
    ``prerank``: ``logistic`` also trains the pre-ranker (:mod:`pinrec.jobs.ranking.ranker_prerank`: logistic
    regression on the features serving precomputes per bundle) and exports ``prerank.onnx`` beside the
    ranker; ``none``: no pre-ranker. ``prerank_iterations``: most iterations of its full-batch L-BFGS
    fit. ``prerank_l2``: the L2 penalty on its weights (biases excluded).
    ``evaluation``: ``fast`` (the default: what a daily run needs) trains and evaluates the exported ranker
    and the pre-ranker only — no baselines, no no-position twin, one debiasing seed, no bootstrap
    intervals, no int8 model; ``full`` runs the research-grade evaluation the other keys configure
    (what the tests, notebooks, benchmarks and the documented tables use)."""

    experiment: Annotated[str, Field(min_length=1)] = EXPERIMENT
    baselines: tuple[Baseline, ...] = BASELINES
    baseline_epochs: PosInt = 3
    no_position_twin: bool = True
    int8: bool = True
    id_features: bool = False
    embeddings: bool = True
    user_embeddings: Annotated[tuple[UserEmbeddingKind, ...], Field(min_length=1)] = ("closeups",)
    max_position: PosInt = 50
    ece_bins: PosInt = 10
    ndcg_k: PosInt = 10
    bootstrap_resamples: Annotated[int, Field(ge=0)] = 200
    debias_seeds: PosInt = 3
    prerank: Prerank = "logistic"
    prerank_iterations: PosInt = 100
    prerank_l2: Annotated[float, Field(ge=0.0)] = 1e-4
    evaluation: Literal["fast", "full"] = "fast"

    def resolved(self) -> RankerJobConfig:
        """What the job runs: with ``evaluation = "fast"`` the comparisons switched off (class docstring)."""
        if self.evaluation == "full":
            return self
        from dataclasses import replace

        return replace(self, baselines=(), no_position_twin=False, debias_seeds=1, bootstrap_resamples=0, int8=False)

    @model_validator(mode="after")
    def _check(self) -> RankerJobConfig:
        for name in ("baselines", "user_embeddings"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"ranker_job.{name} must be distinct, got {values}")
        return self
