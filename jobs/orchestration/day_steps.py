"""The per-day steps behind the step cache (ingest, features) and the warehouse summary: :class:`Steps`.

:class:`Steps` runs each step the demo (and ``pinrec demo``) runs, in order, and skips it when the
fingerprint recorded with its output equals the one computed now (what each fingerprint covers: the table
of :mod:`pinrec.jobs.orchestration.steps_base`). It is the base of
:class:`~pinrec.jobs.orchestration.cached_training.PipelineSteps`, which adds the whole-table steps.

Each method returns the job's own report when the step ran, else a
:class:`~pinrec.jobs.orchestration.step_cache.Cached`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

from pinrec.jobs.io.fingerprint import file_digest, fingerprint

from .landing_step import LandingSteps
from .step_cache import day_fingerprints

SUMMARY_MARKER = "warehouse_summary.json"  # in <artifacts>: tables are read through the catalog only


class Steps(LandingSteps):
    """The steps of one pipeline run over ``cfg`` with ``spark``, reusing outputs per ``cache``;
    :attr:`fingerprints` holds every step's fingerprint once it is known (for the steps after it)."""

    # -- per-day steps ---------------------------------------------------------------------------
    def ingest_fingerprints(self, days: list[dt.date]) -> dict[dt.date, str]:
        """Each day's ingest fingerprint (also kept in :attr:`fingerprints`). ``days`` must start at the first
        landed day: each day's fingerprint covers the days before it (foreign keys look back)."""
        from pinrec.jobs.ingest.ingest_read import landing_files
        from pinrec.jobs.ingest.landing import partition_dir
        from pinrec.schemas.catalog import RAW_TABLES

        landing = self.cfg.storage.location("landing")
        chain, fps, self._present = "", {}, {}
        for day in days:
            files = {t.name: [(f.name, file_digest(f, self.spark)) for f in landing_files(partition_dir(landing, t.name, day))]
                     for t in RAW_TABLES}
            self._present[day] = [t for t, f in files.items() if f]
            chain = fps[day] = fingerprint("ingest", code=self.code("ingest"), config=self.cfg.ingest,
                                           inputs={"before": chain, "files": files})
        self.fingerprints["ingest"] = fps
        return fps

    def ingest(self, days: list[dt.date], days_per_batch: int = 0,
               only: list[dt.date] | None = None) -> tuple[list, list[dt.date]]:
        """Ingest the days whose fingerprint changed, ``days_per_batch`` at a time (0: one batch); with
        ``only``, just those of ``only`` (a DAG run's day: ``days`` are then the landed days up to it, for
        the fingerprints); returns (the reports of what ran, the days reused)."""
        from pinrec.jobs.ingest.days import partition_of
        from pinrec.jobs.ingest.ingest import IngestPaths, ingest
        from pinrec.schemas.catalog import RAW_TABLES

        fps = self.ingest_fingerprints(days)
        candidates = [d for d in days if only is None or d in only]
        look = self.catalog()
        recorded = {t.name: day_fingerprints(look, t.name, "ingest") for t in RAW_TABLES}
        landed_in, landed = partition_of(self.cfg.storage.location("landing")), set(days)
        if only is None and (stale := sorted(d for d in recorded["impressions"] if landed_in(d) not in landed)):
            # a whole landing zone (the demo's): the warehouse's other days came from a dataset replaced since
            raise ValueError(f"the warehouse {self.cfg.storage.warehouse} holds impressions of {len(stale)} day(s) the "
                             f"landing zone {self.cfg.storage.landing} does not ({stale[0]}..{stale[-1]}): it was "
                             "built from another dataset or world, and ingesting this one beside it would mix "
                             "the two. Remove it, or set storage.warehouse to another folder")
        # a day without a landed file is never "cached": ingest says what it finds (or does not)
        todo = [d for d in candidates if not self.cache.hit("ingest", fps[d], fps[d] if self._present[d] and all(
            recorded[t].get(d) == fps[d] for t in self._present[d]) else None)]
        reports = []
        step = days_per_batch if days_per_batch > 0 else max(len(todo), 1)
        for i in range(0, len(todo), step):
            batch = todo[i:i + step]
            catalog = self.catalog({"step": "ingest", "days": {d.isoformat(): fps[d] for d in batch}})
            reports.extend(ingest(self.spark, IngestPaths(self.cfg.storage.location("landing"), catalog), batch,
                                  self.cfg.ingest))
        return reports, [d for d in candidates if d not in todo]

    def features_fingerprints(self, days: list[dt.date]) -> dict[dt.date, str]:
        """Each day's features fingerprint, from its ingest fingerprint (:meth:`ingest_fingerprints` first)."""
        from pinrec.jobs.ingest.days import partition_of

        ingest_fps = self.fingerprints["ingest"]
        landed_in = partition_of(self.cfg.storage.location("landing"))  # by month: every day of it, its fingerprint
        fps = {d: fingerprint("features", code=self.code("features"), config=self.cfg.features,
                              inputs={"ingest": ingest_fps[landed_in(d)]}) for d in days}
        self.fingerprints["features"] = fps
        return fps

    def features(self, days: list[dt.date], only: list[dt.date] | None = None) -> tuple[dict[str, int], list[dt.date]]:
        """Build the features of the days (of ``only``, when given) whose fingerprint changed; (rows written
        per view, days reused)."""
        from pinrec.jobs.features.features import build_features
        from pinrec.schemas.catalog import feature_table
        from pinrec.schemas.features import FEATURE_VIEWS

        fps = self.features_fingerprints(days)
        candidates = [d for d in days if only is None or d in only]
        look = self.catalog()
        recorded = [day_fingerprints(look, feature_table(v), "features") for v in FEATURE_VIEWS]
        todo = [d for d in candidates if not self.cache.hit(
            "features", fps[d], fps[d] if all(r.get(d) == fps[d] for r in recorded) else None)]
        rows: dict[str, int] = {}
        if todo:
            catalog = self.catalog({"step": "features", "days": {d.isoformat(): fps[d] for d in todo}})
            rows = build_features(self.spark, catalog, todo, self.cfg.features)
            self.last_catalog = catalog
        return rows, [d for d in candidates if d not in todo]

    # -- the warehouse summary -------------------------------------------------------------------
    def summary(self):
        """:func:`~pinrec.jobs.monitoring.summary.summarize`, reused while no table has a new Delta
        version since it was written to ``<artifacts>/warehouse_summary.json`` (its counts scan every
        table: on a rerun that reuses every step it was most of the run)."""
        from pinrec.jobs.monitoring.summary import (
            TableSummary,
            WarehouseSummary,
            summarize,
        )
        from pinrec.schemas.catalog import WAREHOUSE

        look = self.catalog()
        versions = {name: look.commit_id(name) for name in WAREHOUSE}  # a re-created table is a change
        marker = self.artifacts / SUMMARY_MARKER
        meta = json.loads(marker.read_text()) if marker.is_file() else {}
        if self.cache.cfg.enabled and meta.get("versions") == versions:
            return WarehouseSummary(tuple(TableSummary(**t) for t in meta["tables"]),
                                    {(src, reason): n for src, reason, n in meta["quarantine"]})
        result = summarize(self.spark, self.cfg.storage.warehouse)
        marker.write_text(json.dumps({"versions": versions, "tables": [dataclasses.asdict(t) for t in result.tables],
                                      "quarantine": [[s, r, n] for (s, r), n in sorted(result.quarantine.items())]}))
        return result
