"""What every scheduled step shares: the DAG run's configuration (:func:`config_from_params`), the Spark
session, the step cache's steps (:mod:`pinrec.jobs.orchestration.cached_training`) and the ``cache``
entry of a step's result. The steps: :mod:`pinrec.jobs.orchestration.tasks`."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from pinrec.jobs.config import ConfigError, PinrecConfig, load_config, parse_overrides

log = logging.getLogger("pinrec.jobs.orchestration.tasks")  # the name it had before the split


def config_from_params(config_file: str | None, overrides: Sequence[str] | None) -> PinrecConfig:
    """The DAG run's configuration: a YAML file (or defaults) plus ``section.key=value`` overrides,
    and the worker's AWS variables (S3 endpoint and region of the bundle store) as the CLI reads them."""
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides or []):
        raise ConfigError(f"the run's overrides must be a list of 'section.key=value' strings, got {overrides!r:.120}")
    if config_file is not None and not isinstance(config_file, str):
        raise ConfigError(f"the run's config must be a path to a YAML file, got {config_file!r:.120}")
    return load_config(config_file or None, parse_overrides(list(overrides or [])), env=os.environ)


def _spark(cfg: PinrecConfig):
    from pinrec.jobs.io.spark import job_spark

    return job_spark(cfg)


def _steps(cfg: PinrecConfig):
    from .cached_training import PipelineSteps
    from .step_cache import StepCache

    return PipelineSteps(cfg, _spark(cfg), StepCache(cfg.cache), echo=log.info)


def _cache(step: str, fingerprint: str | None, cached: bool) -> dict:
    return {"step": step, "fingerprint": fingerprint, "cached": cached}
