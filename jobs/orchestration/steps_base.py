"""The base of the step cache's steps: what each step reads and runs, and how its fingerprint is taken.

:class:`StepsBase` holds one pipeline run's state (config, Spark, the cache, the fingerprints known so far)
and the helpers every cached step uses: the code hash of the step's module (:data:`MODULES`, through
:func:`~pinrec.jobs.io.fingerprint.code_hash`), the catalog, the Delta commits of the tables it reads
(:data:`READS`) and the check that it read nothing else. What each step's fingerprint covers:

=============  =====================================================================================
step           code (module + its pinrec imports), config, inputs
=============  =====================================================================================
landing        ``jobs.ingest.synthetic`` / ``datasets``; ``synthetic`` + ``seed`` / ``dataset``; the
               dataset's files
ingest (day)   ``jobs.ingest.ingest``; ``ingest``; the content of every landing file of that day and
               of every earlier day (foreign keys look back), so a new day recomputes only itself
features (day) ``jobs.features.features``; ``features``; the ingest fingerprints up to that day
training_set   ``jobs.features.training_set``; ``training`` + ``seed``; the days, their features'
               fingerprints and the Delta versions of the tables it reads
graph          ``jobs.graph.graph``; the cut-off and evaluation start; the tables it reads
retrieval_     ``jobs.pinsage.pinsage_settings``; ``retrieval_eval`` + ``pinsage``; the graph tables
settings       (the training DAG's search, only with ``retrieval_eval.tune_in_training``)
pinsage        ``jobs.pinsage.pinsage``; ``pinsage``; the graph tables
two_tower      ``jobs.two_tower.two_tower``; ``two_tower`` + ``index``; training set, pin features
               and embeddings
cf             ``jobs.cf.cf``; ``cf``; the cut-off and ``actions``
ranker         ``jobs.ranking.ranker``; the ranker sections; training set, embeddings, the world's truth
index          ``jobs.index.pin_index``; ``index``; embeddings and user features
publish        ``jobs.publish.bundle``; the whole config but ``cache``; the four folders it bundles
               and the tables it reads
funnel         ``jobs.funnel.funnel``; ``funnel``, ``recommend``, ``features.publish_delay_s``; the
               replayed bundle version (immutable), the day, the tables the replay reads and the
               landing (the synthetic truth): the champion's replay, in the DAG and before publish's gate
=============  =====================================================================================

The steps themselves: :mod:`pinrec.jobs.orchestration.landing_step` (landing),
:mod:`pinrec.jobs.orchestration.day_steps` (ingest and features per day: :class:`Steps`) and
:mod:`pinrec.jobs.orchestration.cached_training` (the whole-table steps).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pinrec.jobs.config import PinrecConfig
from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.fingerprint import code_hash, fingerprint

from .step_cache import StepCache

# what each whole-table step reads (checked against the catalog's lineage after it runs)
READS = {
    "training_set": ("impressions", "actions", "pins", "features_user", "features_pin", "features_user_category"),
    "graph": ("pins", "boards", "pin_board_edges", "features_pin"),
    "retrieval_settings": ("graph_edges", "graph_pin_nodes"),
    "pinsage": ("graph_edges", "graph_pin_nodes", "graph_board_nodes", "pin_embeddings"),
    "two_tower": ("training_set", "features_pin", "pin_embeddings"),
    "cf": ("actions",),
    "ranker": ("training_set", "pin_embeddings"),
    "index": ("pin_embeddings", "features_user"),
    # the bundle's files, then the gate's evidence: the candidate's drift (training_set, impressions) and funnel
    # replay (funnel's READS)
    "publish": ("pins", "pin_embeddings", "training_set", "features_user", "features_pin", "features_user_category",
                "actions", "impressions", "graph_edges"),
    # pinrec.jobs.funnel.funnel.READS (a test keeps them equal; importing it here would load the replay)
    "funnel": ("graph_edges", "training_set", "actions", "impressions", "features_user", "features_pin",
               "features_user_category"),
}
MODULES = {
    "ingest": "pinrec.jobs.ingest.ingest", "features": "pinrec.jobs.features.features",
    "training_set": "pinrec.jobs.features.training_set", "graph": "pinrec.jobs.graph.graph",
    "retrieval_settings": "pinrec.jobs.pinsage.pinsage_settings",
    "pinsage": "pinrec.jobs.pinsage.pinsage", "two_tower": "pinrec.jobs.two_tower.two_tower",
    "cf": "pinrec.jobs.cf.cf", "ranker": "pinrec.jobs.ranking.ranker", "index": "pinrec.jobs.index.pin_index",
    "publish": "pinrec.jobs.publish.bundle", "funnel": "pinrec.jobs.funnel.funnel",
}


def _bundle_config(cfg: PinrecConfig) -> dict:
    """The sections that shape a bundle: all but where things are stored, how Spark runs, the cache
    itself (a lake moved elsewhere still holds the same bundle) and the Redis the bundle's features are
    exported to after publishing (``redis``: the bundle is the same with or without an online store)."""
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
           if f.name not in ("cache", "storage", "spark", "redis")}
    # the held-out days: resolved by the demo, null in a DAG task; the training set's Delta version carries them
    out["training"] = {k: v for k, v in dataclasses.asdict(cfg.training).items()
                       if k not in ("validation_days", "test_days")}
    out["publish"] = {k: v for k, v in dataclasses.asdict(cfg.publish).items() if k != "store_uri"}
    return out


class StepsBase:
    """The state and helpers of one pipeline run's steps over ``cfg`` with ``spark``, reusing outputs per
    ``cache``; :attr:`fingerprints` holds every step's fingerprint once it is known (for the steps after it)."""

    def __init__(self, cfg: PinrecConfig, spark, cache: StepCache, echo: Callable[[str], None] = print) -> None:
        self.cfg, self.spark, self.cache, self.echo = cfg, spark, cache, echo
        self.fingerprints: dict[str, Any] = {}
        self.artifacts = cfg.storage.location("artifacts")
        self._code: dict[str, str] = {}
        self.last_catalog: Catalog | None = None  # the catalog of the last step that ran: what it read and wrote
        self.inputs: dict[str, dict[str, int | None]] = {}  # per whole-table step: the versions it fingerprinted

    # -- helpers --------------------------------------------------------------------------------
    def code(self, step: str) -> str:
        if step not in self._code:
            self._code[step] = code_hash(MODULES[step])
        return self._code[step]

    def catalog(self, stamp: dict | None = None) -> Catalog:
        return Catalog(self.spark, self.cfg.storage.warehouse, stamp=stamp)

    def _commits(self, step: str) -> dict[str, str | None]:
        """Per table ``step`` reads, :meth:`Catalog.commit_id`: the version and the commit's transaction
        id, so that a table deleted and written again (versions restart at 0) is a new input."""
        look = self.catalog()
        return {name: look.commit_id(name) for name in READS[step]}

    @staticmethod
    def _version_of(commits: dict[str, str | None]) -> dict[str, int | None]:
        return {name: None if c is None else int(c.split(":", 1)[0]) for name, c in commits.items()}

    def _whole(self, step: str, config: Any, extra: dict | None = None) -> str:
        commits = self._commits(step)
        inputs = {"tables": commits, **(extra or {})}
        self.inputs[step] = self._version_of(commits)
        fp = fingerprint(step, code=self.code(step), config=config, inputs=inputs)
        self.fingerprints[step] = fp
        return fp

    def read_versions(self, step: str) -> dict[str, int | None]:
        """The Delta versions of the tables ``step``'s fingerprint covered (after the step)."""
        return dict(self.inputs.get(step, {}))

    @staticmethod
    def _check_reads(step: str, catalog: Catalog) -> None:
        extra = sorted(set(catalog.reads) - set(READS[step]))
        if extra:  # a fingerprint that misses an input would reuse a stale output
            raise RuntimeError(f"step {step} read {extra}, which its fingerprint does not cover: add them to "
                               f"pinrec.jobs.orchestration.steps_base.READS[{step!r}]")
