"""The step cache's configuration (``cache``) and the pipeline's steps it may name, declared by
:mod:`pinrec.jobs.config`."""
from __future__ import annotations

from pydantic import model_validator

from pinrec.schemas.config_base import ConfigError, section

__all__ = ["PIPELINE_STEPS", "StepCacheConfig"]

#: the pipeline's steps, in the order they run: what ``cache.force`` may name (pinrec.jobs.orchestration.step_cache)
PIPELINE_STEPS = ("landing", "ingest", "features", "training_set", "graph", "retrieval_settings",
                  "pinsage", "two_tower", "cf", "ranker", "index", "publish", "funnel")


@section("cache")
class StepCacheConfig:
    """The step cache (:mod:`pinrec.jobs.orchestration.step_cache`): a step whose fingerprint (its code,
    config sections and inputs) equals the one recorded beside its last output is skipped and that
    output reused. ``enabled``: false recomputes every step (``--no-cache``). ``force``: steps
    recomputed even when cached (``--force STEP``), from ``landing``, ``ingest``, ``features``,
    ``training_set``, ``graph``, ``retrieval_settings`` (the training DAG's), ``pinsage``, ``two_tower``, ``cf``,
    ``ranker``, ``index``, ``publish``, ``funnel`` (the replays of a bundle: the champion's that publish's
    gate compares with, the training DAG's funnel task).
    """

    enabled: bool = True
    force: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known_steps(self):
        unknown = sorted(set(self.force) - set(PIPELINE_STEPS))
        if unknown:
            raise ConfigError(f"cache.force names unknown step(s) {unknown}; the steps are {list(PIPELINE_STEPS)}")
        return self
