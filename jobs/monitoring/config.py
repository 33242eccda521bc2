"""The monitoring configuration (``monitoring``), declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from dataclasses import dataclass

EXPERIMENT = "pinrec-monitoring"


@dataclass(frozen=True)
class MonitoringConfig:
    """``psi_bins`` quantile bins and ``psi_floor`` share floor of the PSI; ``max_rows`` rows per
    window read to the driver (a seeded sample beyond); ``reference_split``: the training window;
    ``tasks``: label columns (and score keys); ``experiment``: the MLflow experiment;
    ``at_publish``: ``pinrec publish`` measures the candidate's drift (its ranker's scores on the
    newest day vs the reference) into the manifest, where the blessing gate judges it."""

    psi_bins: int = 10
    psi_floor: float = 1e-4
    max_rows: int = 200_000
    reference_split: str = "train"
    tasks: tuple[str, ...] = ("closeup", "save")
    experiment: str = EXPERIMENT
    at_publish: bool = True

    def __post_init__(self) -> None:
        if self.psi_bins < 2:
            raise ValueError(f"monitoring.psi_bins must be >= 2, got {self.psi_bins}")
        if not 0 < self.psi_floor < 1 / self.psi_bins:
            raise ValueError(f"monitoring.psi_floor must be in (0, 1/psi_bins), got {self.psi_floor}")
        if self.max_rows < 1 or not self.tasks or not self.reference_split or not self.experiment:
            raise ValueError("monitoring: max_rows >= 1 and non-empty tasks, reference_split, experiment required")
