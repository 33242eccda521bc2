"""The pipeline's steps behind the step cache (:mod:`pinrec.jobs.orchestration.step_cache`): a facade.

Split into three modules; every name is importable from here as before:

- :mod:`pinrec.jobs.orchestration.steps_base`: what each step's fingerprint covers (the table), what each
  whole-table step reads (:data:`READS`) and the module whose code it runs (:data:`MODULES`, hashed by
  :func:`~pinrec.jobs.io.fingerprint.code_hash`), and :class:`StepsBase`, the helpers every step uses;
- :mod:`pinrec.jobs.orchestration.landing_step`: the landing step (:class:`LandingSteps`) and the landing
  of the configured source (:func:`fill_landing`, :func:`landing_dataset`, :func:`check_pipeline_can_run`);
- :mod:`pinrec.jobs.orchestration.day_steps`: :class:`Steps`, ingest and features per day and the
  warehouse summary; the base of :class:`~pinrec.jobs.orchestration.cached_training.PipelineSteps`.

``READS`` here is the same dict as ``steps_base.READS`` (a change to it takes effect); ``code_hash`` is
looked up in :mod:`~pinrec.jobs.orchestration.steps_base` (the steps' code) and
:mod:`~pinrec.jobs.orchestration.landing_step` (landing's): patch it there.
"""
from __future__ import annotations

from pinrec.jobs.io.fingerprint import code_hash

from .day_steps import SUMMARY_MARKER, Steps
from .landing_step import (
    LANDING_MARKER,
    LandingSteps,
    check_pipeline_can_run,
    fill_landing,
    landing_dataset,
)
from .steps_base import MODULES, READS, StepsBase

__all__ = [
    "LANDING_MARKER",
    "MODULES",
    "READS",
    "SUMMARY_MARKER",
    "LandingSteps",
    "Steps",
    "StepsBase",
    "check_pipeline_can_run",
    "code_hash",
    "fill_landing",
    "landing_dataset",
]
