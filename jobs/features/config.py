"""The daily feature tables' (``features``) and the point-in-time training set's (``training``)
configuration, declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pinrec.schemas.config_base import ConfigError, section

__all__ = ["TRAINING_LABELS", "FeatureConfig", "TrainingSetConfig"]

#: the labels the training set holds (``jobs/features/training_set.py``): what ranker and monitoring tasks may name
TRAINING_LABELS = ("closeup", "save")

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]


@section("features")
class FeatureConfig:
    """Daily feature tables (see :mod:`pinrec.jobs.features.features`).

    ``publish_delay_s``: a day's feature row gets ``feature_ts`` = the end of that day and
    ``created_ts`` = ``feature_ts`` + this delay, the time the daily job would have made it
    servable; the point-in-time join never uses a row before its ``created_ts``.
    ``prior_strength``: pseudo-impressions of the Bayesian smoothing of rates.
    ``last_saved_pins`` / ``last_closeup_pins``: length of the user's lists of recent saves and
    closeups (newest first, 30 days), which the PinSage user embeddings average.
    """

    publish_delay_s: NonNegInt = 3600
    prior_strength: Annotated[float, Field(gt=0)] = 20.0
    last_saved_pins: PosInt = 10
    last_closeup_pins: PosInt = 10


@section("training")
class TrainingSetConfig:
    """The point-in-time training set (see :mod:`pinrec.jobs.features.training_set`).

    ``maturity_s``: an action counts as a label when it happens within this long after the
    impression; impressions whose window has not closed by the cut-off are left out.
    ``negative_rate``: share of negatives (impressions with neither closeup nor save) kept, drawn
    only from sessions that have a positive; 1.0 keeps every impression.
    ``validation_days`` / ``test_days``: the last days of the range, in time order; null (the default):
    chosen from the data, the fewest last days holding ``holdout_fraction`` of the range's impressions
    each, leaving a day to train on (:mod:`pinrec.jobs.features.holdout`).
    ``holdout_fraction``: the share of the range's impressions each null number of held-out days holds.
    ``window_days``: a scheduled run for day ``d`` rebuilds the training set of the days
    ``d - window_days + 1 .. d`` (0: every ingested day up to ``d``).
    ``broadcast_max_mb``: a feature table Spark estimates at most this large is looked up in place
    (collected to the driver, a copy in every Python worker) instead of joined after a shuffle of
    the spine (validity intervals and a hash join; :mod:`pinrec.jobs.features.pit_join`); 0 always
    shuffles.
    """

    maturity_s: PosInt = 6 * 3600
    negative_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    validation_days: NonNegInt | None = None
    test_days: NonNegInt | None = None
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    window_days: NonNegInt = 0
    broadcast_max_mb: NonNegInt = 128

    @model_validator(mode="after")
    def _window_holds_the_split(self):
        held = sum(n if n is not None else 1 for n in (self.validation_days, self.test_days))  # null: at least one
        if 0 < self.window_days <= held:  # every scheduled run would skip: no day left to train on
            raise ConfigError(f"training.window_days={self.window_days} cannot hold a day to train on besides "
                              f"{held} held-out day(s) (validation_days={self.validation_days}, test_days="
                              f"{self.test_days}; null: at least 1): set it to >= {held + 1}, or 0 for every day")
        return self
