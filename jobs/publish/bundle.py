"""The publish job (``pinrec publish``): its public names, importable from here as before the module
was split; each lives, with the docstring that describes it, in one of these:

- :mod:`pinrec.jobs.publish.serving_bundle`: :func:`publish_serving_bundle` (assemble the candidate from the
  pipeline's artifacts and publish it behind the blessing gate; what the bundle holds) and :class:`BundleReport`;
- :mod:`pinrec.jobs.publish.bundle_sources`: what the bundle is built from (:func:`newest_ranker`,
  :func:`ranker_metrics`, :func:`pin_metadata`, :func:`embedding_stability`) and its lineage's
  :func:`code_version` and :func:`config_hash`;
- :mod:`pinrec.jobs.publish.bundle_drift`: the candidate's drift (:func:`candidate_drift`, :func:`ranker_scorer`);
- :mod:`pinrec.jobs.publish.bundle_cutoffs`: the feature snapshot's cut-offs and the replayed day
  (:func:`default_cutoff`, :func:`snapshot_cutoffs`, :func:`champion_day`);
- :mod:`pinrec.jobs.publish.bundle_funnel`: the candidate's and the champion's funnel replays
  (:func:`candidate_funnel`, :func:`champion_funnel`);
- :mod:`pinrec.jobs.publish.publish_finish`: :func:`finish_publish` (finish an interrupted publish).

They log under ``pinrec.jobs.publish.bundle``, as before. The step cache's ``publish`` fingerprint covers
this module, and so all of them (:data:`pinrec.jobs.orchestration.cached_steps.MODULES`).
"""
from __future__ import annotations

from .bundle_cutoffs import champion_day, default_cutoff, snapshot_cutoffs
from .bundle_drift import candidate_drift, ranker_scorer
from .bundle_funnel import candidate_funnel, champion_funnel
from .bundle_sources import (
    code_version,
    config_hash,
    embedding_stability,
    newest_ranker,
    pin_metadata,
    ranker_metrics,
)
from .publish_finish import finish_publish
from .serving_bundle import BundleReport, publish_serving_bundle

__all__ = [
    "BundleReport",
    "candidate_drift",
    "candidate_funnel",
    "champion_day",
    "champion_funnel",
    "code_version",
    "config_hash",
    "default_cutoff",
    "embedding_stability",
    "finish_publish",
    "newest_ranker",
    "pin_metadata",
    "publish_serving_bundle",
    "ranker_metrics",
    "ranker_scorer",
    "snapshot_cutoffs",
]
