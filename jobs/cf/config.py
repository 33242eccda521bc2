"""The collaborative-filtering job's configuration (``cf``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pinrec.schemas.config_base import section

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
PosFloat = Annotated[float, Field(gt=0.0)]


@section("cf")
class CfConfig:
    """Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008; the ``implicit`` package, as the
    retrieval baseline) on the users' engagement before the cut-off (:mod:`pinrec.jobs.cf.cf`).

    ``actions``: the action types that count as engagement (one binary cell per user x pin).
    ``factors``: ALS's latent dimension. ``regularization``: its L2 weight. ``alpha``: the
    confidence of an engaged cell is ``1 + alpha``. ``iterations``: ALS sweeps. ``validation_days``:
    the last days before the cut-off held out to choose the settings (0: no choice, the three values
    above are used; null, the default: chosen from the log, the fewest last days that hold at least
    ``holdout_fraction`` of its engagement, at least one and never all of them, as the training set's
    held-out days: one fixed day held 5 users of a 3-year ratings log, none of a MovieLens sample).
    ``validation_k``: the k of the held-out recall@k.
    ``search_factors`` / ``search_regularization`` / ``search_alpha``: the values tried, every
    combination (an empty list keeps that setting at its value above). ``seed``: ALS's random state. ``num_threads``:
    ``implicit``'s threads (0: all cores).

    The choice: ALS is fitted on the engagement before the held-out slice for every combination, and
    the one with the best recall@``validation_k`` of the slice's pins (each user's earlier pins
    excluded, as serving drops them) is refitted on all the engagement before the cut-off. The
    first combination wins a tie; when no user of the slice engaged before it too, nothing is
    measured and the values above are used. Their defaults are what the search chose on the
    default synthetic world (docs/retrieval.md).
    """

    actions: tuple[Literal["save", "closeup"], ...] = ("save", "closeup")
    factors: PosInt = 16
    regularization: NonNegFloat = 0.01
    alpha: PosFloat = 10.0
    iterations: PosInt = 15
    validation_days: NonNegInt | None = None
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    validation_k: PosInt = 100
    search_factors: tuple[PosInt, ...] = (16, 32, 64)
    search_regularization: tuple[NonNegFloat, ...] = (0.01, 0.1, 1.0)
    search_alpha: tuple[PosFloat, ...] = (1.0, 10.0)
    seed: NonNegInt = 7
    num_threads: NonNegInt = 1

    @model_validator(mode="after")
    def _check(self) -> CfConfig:
        if not self.actions or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"cf.actions must name distinct action types (save, closeup), got {list(self.actions)}")
        for name in ("search_factors", "search_regularization", "search_alpha"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"cf.{name} repeats a value: {list(values)}")
        return self

    def grid(self) -> list[dict[str, float]]:
        """Every combination searched (``factors``, ``regularization``, ``alpha``), in declaration
        order; ``[this config's own values]`` when nothing is searched."""
        import itertools

        if self.validation_days == 0:
            return [self.params()]
        axes = [self.search_factors or (self.factors,), self.search_regularization or (self.regularization,),
                self.search_alpha or (self.alpha,)]
        return [{"factors": int(f), "regularization": float(r), "alpha": float(a)}
                for f, r, a in itertools.product(*axes)]

    def params(self) -> dict[str, float]:
        return {"factors": int(self.factors), "regularization": float(self.regularization), "alpha": float(self.alpha)}
