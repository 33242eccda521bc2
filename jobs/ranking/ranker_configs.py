"""The four configurations one ranker run uses, passed to the job's steps as one typed object."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .config import USER_EMBEDDING_KINDS, RankerJobConfig

if TYPE_CHECKING:  # torch-free at import time
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig


@dataclass(frozen=True)
class RankerConfigs:
    """``model`` (the :class:`~pinrec.models.ranker.Ranker`'s architecture and tasks), ``train`` (its
    trainer, ``seed`` included), ``calibration`` and ``job`` (what the job runs besides the model)."""

    model: RankerConfig
    train: RankerTrainConfig
    calibration: CalibrationConfig
    job: RankerJobConfig

    @property
    def tasks(self) -> tuple[str, ...]:
        """The T tasks, in the order of every (B, T) label and probability array."""
        return tuple(self.model.tasks)

    @property
    def users(self) -> tuple[str, ...]:
        """The user embedding columns ``job.user_embeddings`` names."""
        return tuple(USER_EMBEDDING_KINDS[k] for k in self.job.user_embeddings)

    def as_params(self) -> dict[str, dict[str, Any]]:
        """Each config as a plain dict under its config-file section (MLflow params, the model version's hash)."""
        return {"ranker": asdict(self.model), "ranker_train": asdict(self.train),
                "calibration": asdict(self.calibration), "ranker_job": asdict(self.job)}
