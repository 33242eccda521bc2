"""The monitoring configuration (``monitoring``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pinrec.schemas.config_base import section

EXPERIMENT = "pinrec-monitoring"


@section("monitoring")
class MonitoringConfig:
    """``psi_bins`` quantile bins and ``psi_floor`` share floor of the PSI (of the scores; the floor
    also of the categorical features' PSI); ``max_categories``: a categorical feature's PSI buckets
    are the reference's this many most frequent categories, one "other" and one null bucket (a
    longer tail is one bucket: its rare categories' shares are noise); ``max_rows`` rows per
    window read to the driver (a seeded sample beyond); ``reference_split``: the training window;
    ``tasks``: label columns (and score keys); ``experiment``: the MLflow experiment;
    ``at_publish``: ``pinrec publish`` measures the candidate's drift (its ranker's scores on the
    newest day vs the reference) into the manifest, where the blessing gate judges it.
    ``noise_resamples`` / ``noise_quantile``: a categorical feature's PSI comes with the PSI that days
    drawn from the training window reach with as many users as the newest day (this quantile of this
    many seeded draws; 0 resamples: not measured, and the gate's noise-aware limit is off), see
    :mod:`~pinrec.jobs.monitoring.category_drift`."""

    psi_bins: Annotated[int, Field(ge=2)] = 10
    psi_floor: Annotated[float, Field(gt=0.0)] = 1e-4
    max_categories: Annotated[int, Field(ge=1)] = 50
    max_rows: Annotated[int, Field(ge=1)] = 200_000
    reference_split: Annotated[str, Field(min_length=1)] = "train"
    tasks: Annotated[tuple[str, ...], Field(min_length=1)] = ("closeup", "save")
    experiment: Annotated[str, Field(min_length=1)] = EXPERIMENT
    at_publish: bool = True
    noise_resamples: Annotated[int, Field(ge=0)] = 200
    noise_quantile: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.99

    @model_validator(mode="after")
    def _check(self) -> MonitoringConfig:
        if not self.psi_floor < 1 / self.psi_bins:
            raise ValueError(f"monitoring.psi_floor must be in (0, 1/psi_bins) = (0, {1 / self.psi_bins:g}), "
                             f"got {self.psi_floor}")
        return self
