"""The ranker job's configuration (``ranker_job``): torch-free, declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from dataclasses import dataclass

EXPERIMENT = "pinrec-ranker"


BASELINES = ("logreg", "dcnmix")


#: ``ranker_job.user_embeddings`` value -> embedding column (:data:`pinrec.export.serving.embedding_features.USER_EMBEDDINGS`)
USER_EMBEDDING_KINDS = {"saves": "user_embedding", "closeups": "user_closeup_embedding"}


@dataclass(frozen=True)
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
    (:func:`pinrec.jobs.ranking.ranker_eval.auc_intervals`); 0 computes none. ``debias_seeds``: training seeds
    of both the ranker and its no-position twin in the Kendall-tau comparison (seed, seed + 1,
    ...; the first pair is the exported ranker and its twin): more than one puts the training's
    randomness into the comparison's interval, which one pair cannot."""

    experiment: str = EXPERIMENT
    baselines: tuple[str, ...] = BASELINES
    baseline_epochs: int = 3
    no_position_twin: bool = True
    int8: bool = True
    id_features: bool = False
    embeddings: bool = True
    user_embeddings: tuple[str, ...] = ("closeups",)
    max_position: int = 50
    ece_bins: int = 10
    ndcg_k: int = 10
    bootstrap_resamples: int = 200
    debias_seeds: int = 3

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"ranker_job.baselines must be distinct values of {BASELINES}, got {self.baselines}")
        for name in ("baseline_epochs", "max_position", "ece_bins", "ndcg_k", "debias_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"ranker_job.{name} must be >= 1, got {getattr(self, name)}")
        if not self.user_embeddings or len(set(self.user_embeddings)) != len(self.user_embeddings) or \
                not set(self.user_embeddings) <= set(USER_EMBEDDING_KINDS):
            raise ValueError(f"ranker_job.user_embeddings must be distinct values of {tuple(USER_EMBEDDING_KINDS)}, "
                             f"got {self.user_embeddings}")
        if self.bootstrap_resamples < 0:
            raise ValueError(f"ranker_job.bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}")
        if not self.experiment:
            raise ValueError("ranker_job.experiment must be non-empty")
