"""The retrieval evaluation's configuration (``retrieval_eval``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from dataclasses import dataclass

BASELINES = ("popularity", "als", "bpr")


@dataclass(frozen=True)
class RetrievalEvalConfig:
    """Protocol sizes and baseline hyper-parameters (``implicit`` names); see the module docstring.

    The ALS / BPR defaults were picked by a small grid on MovieLens 100K's validation split (each
    user's second-latest movie held out from the training part of the test split): ALS factors
    32-128, regularization 0.01-50, alpha 1-20; BPR learning rate 0.005-0.1, regularization
    0.001-0.1, 50-300 iterations.

    ``half_life_days``: recency weighting of the user's items (0 = plain mean). ``recent_items``:
    an embedding model's user is built from their latest ``recent_items`` training items only (0 =
    all): on MovieLens the held-out item is the user's next one, far closer in taste to the last few
    movies rated than to the user's whole history (the baselines' users are unaffected).
    ``recent_half_life``: > 0 weights those items by ``0.5 ** (later items / recent_half_life)``
    (recency by position, not time: MovieLens users rate dozens of movies in one sitting). ``num_threads``:
    ``implicit``'s threads (0 = all cores). ``source``: which interactions the loaders read
    (``impressions``, or actions of type ``closeup`` / ``save``).
    """

    k: int = 10
    num_negatives: int = 99
    seed: int = 7
    half_life_days: float = 0.0
    recent_items: int = 0
    recent_half_life: float = 0.0
    baselines: tuple[str, ...] = BASELINES
    factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 10.0
    als_alpha: float = 5.0
    bpr_iterations: int = 100
    bpr_learning_rate: float = 0.01
    bpr_regularization: float = 0.01
    num_threads: int = 1
    latent_pairs: int = 20_000
    latent_queries: int = 500
    source: str = "impressions"

    def __post_init__(self) -> None:
        small = [f"{n}={getattr(self, n)}" for n in ("k", "num_negatives", "factors", "als_iterations",
                                                   "bpr_iterations", "latent_pairs", "latent_queries")
                 if getattr(self, n) < 1]
        small += [f"{n}={getattr(self, n)}" for n in ("half_life_days", "recent_items", "recent_half_life", "num_threads", "als_regularization",
                                                    "bpr_regularization") if getattr(self, n) < 0]
        small += [f"{n}={getattr(self, n)}" for n in ("als_alpha", "bpr_learning_rate") if getattr(self, n) <= 0]
        if small:
            raise ValueError(f"retrieval eval: invalid value(s) {', '.join(small)}")
        if self.k > self.num_negatives + 1:
            raise ValueError(f"retrieval eval: k={self.k} exceeds the {self.num_negatives + 1} candidates per user")
        if unknown := sorted(set(self.baselines) - set(BASELINES)):
            raise ValueError(f"retrieval eval: unknown baseline(s) {unknown}; known: {list(BASELINES)}")
        if self.source not in ("impressions", "closeup", "save"):
            raise ValueError(f"retrieval eval: source must be impressions, closeup or save, got {self.source!r}")
