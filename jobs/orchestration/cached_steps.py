"""The pipeline's steps behind the step cache (:mod:`pinrec.jobs.orchestration.step_cache`).

:class:`Steps` runs each step the demo (and ``pinrec demo``) runs, in order, and skips it when the
fingerprint recorded with its output equals the one computed now. What each fingerprint covers:

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

Each method returns the job's own report when the step ran, else a
:class:`~pinrec.jobs.orchestration.step_cache.Cached`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from pinrec.jobs.config import PinrecConfig
from pinrec.jobs.features.holdout import holdout_days
from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.fingerprint import code_hash, file_digest, fingerprint
from pinrec.jobs.io.lake import as_location

from .step_cache import (
    Cached,
    StepCache,
    day_fingerprints,
)

LANDING_MARKER = "_pinrec_landing.json"
SUMMARY_MARKER = "warehouse_summary.json"  # in <artifacts>: tables are read through the catalog only

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


def landing_dataset(cfg: PinrecConfig):
    """``cfg.dataset`` as the pipeline lands it: ``negative_impressions`` null becomes 1 when the ranker
    learns ``closeup`` (a landed log has a closeup on every interaction: without impressions nobody
    engaged with, that task would have one label value); otherwise it stays null, which the landing
    resolves from the data (1 for a log whose every interaction is a save, else 0)."""
    ds = cfg.dataset
    if ds.negative_impressions is None and "closeup" in cfg.ranker.tasks:
        return dataclasses.replace(ds, negative_impressions=1)
    return ds


def fill_landing(cfg: PinrecConfig):
    """Write the configured source into the landing zone (no cache: :meth:`Steps.landing` is the cached step)."""
    if cfg.dataset.kind == "synthetic":
        from pinrec.jobs.ingest.synthetic import generate

        return generate(cfg.synthetic, cfg.storage.location("landing"), seed=cfg.seed)
    from pinrec.jobs.ingest.log_reader import land_configured

    summary = land_configured(landing_dataset(cfg), cfg.storage.location("landing"))
    check_pipeline_can_run(summary, cfg)
    return summary


def check_pipeline_can_run(summary, cfg: PinrecConfig) -> None:
    """Raise a ValueError right after landing a dataset (not after an hour of steps) when the pipeline
    cannot train on it: a ranker task with one label value, every interaction on one day (the
    graph's train/eval split and the training set's windows need days), or fewer days with
    interactions than the training set's validation and test days leave one to train on. A landed log has an
    impression with a closeup per interaction, a save where its rating reaches the threshold, and
    ``dataset.negative_impressions`` impressions without either per interaction (``summary.labels``)."""
    impressions, closeups, saves = (summary.labels.get(k, 0) for k in ("impressions", "closeup", "save"))
    constant = {}
    if closeups >= impressions:
        constant["closeup"] = ("every landed impression has a closeup (no sampled negative impressions: "
                               "dataset.negative_impressions=0, or no pin left to draw)")
    if saves <= 0 or saves >= impressions:
        constant["save"] = (f"{'none' if saves <= 0 else 'every one'} of the {impressions:,} impressions is a save "
                            f"(saves: rating >= dataset.save_threshold; a log without ratings makes every "
                            f"interaction a save)")
    if bad := [task for task in cfg.ranker.tasks if task in constant]:
        raise ValueError(f"dataset {cfg.dataset.path}: the ranker's task(s) {bad} would have one label value: "
                         f"{'; '.join(constant[t] for t in bad)}. Set ranker.tasks to tasks with both labels "
                         "(and dataset.rating_column / save_threshold), or dataset.negative_impressions >= 1 to "
                         "sample impressions nobody engaged with. `pinrec eval-retrieval` evaluates retrieval "
                         "without them.")
    days = len(summary.rows.get("impressions", {}))
    if summary.partition == "day" and days < 2:
        raise ValueError(f"dataset {cfg.dataset.path}: every interaction is on one day (dataset.timestamps="
                         f"{cfg.dataset.timestamps}; a log without time lands at 2000-01-01): the pipeline splits "
                         "by day and needs several. `pinrec eval-retrieval` works without time.")
    if summary.partition == "day":  # (by month or year the event days are known after ingest: checked there)
        try:
            holdout_days(summary.rows.get("impressions", {}), cfg.training)
        except ValueError as err:
            raise ValueError(f"dataset {cfg.dataset.path}: {err}") from None


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


class Steps:
    """The steps of one pipeline run over ``cfg`` with ``spark``, reusing outputs per ``cache``;
    :attr:`fingerprints` holds every step's fingerprint once it is known (for the steps after it)."""

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
                               f"pinrec.jobs.orchestration.cached_steps.READS[{step!r}]")

    # -- landing --------------------------------------------------------------------------------
    def landing_digests(self) -> dict[str, str]:
        """``{relative path: content digest}`` of every file of the landing zone (the truth included)."""
        root = self.cfg.storage.location("landing")
        prefix = root.path.rstrip("/") + "/"
        return {f.path[len(prefix):]: file_digest(f, self.spark) for f in root.files_below()
                if f.path[len(prefix):] != LANDING_MARKER}

    def landing(self):
        """Write the configured source into the landing zone unless the marker says it holds it already."""
        from pinrec.jobs.ingest.landing import LandingSummary

        cfg, root = self.cfg, self.cfg.storage.location("landing")
        if cfg.dataset.kind == "synthetic":
            fp = fingerprint("landing", code=code_hash("pinrec.jobs.ingest.synthetic"),
                             config={"synthetic": cfg.synthetic, "seed": cfg.seed})
        else:
            inputs = {}
            for tag, path in (("", cfg.dataset.path), ("items:", cfg.dataset.items)):  # a log's item file too
                source = as_location(path) if path else None
                files = [] if source is None else source.files_below() if source.is_dir() else [source]
                inputs |= {tag + f.path[len(source.path):]: file_digest(f, self.spark) for f in files}
            fp = fingerprint("landing", code=code_hash("pinrec.jobs.ingest.log_reader"),  # its closure: datasets too
                             config={k: v for k, v in dataclasses.asdict(landing_dataset(cfg)).items()
                                     if k not in ("path", "items")},
                             inputs=inputs)
        self.fingerprints["landing"] = fp
        marker = root / LANDING_MARKER
        meta = json.loads(marker.read_text()) if marker.is_file() else {}
        # reused while every file the source wrote is as it wrote it (days landed since by others may be added)
        current = self.landing_digests() if meta.get("fingerprint") == fp else {}
        intact = bool(meta.get("files")) and all(current.get(k) == v for k, v in meta["files"].items())
        if self.cache.hit("landing", fp, meta.get("fingerprint") if intact else None):
            rows = {t: {dt.date.fromisoformat(d): n for d, n in per.items()} for t, per in meta["rows"].items()}
            summary = LandingSummary(rows, meta["faults"], meta["duplicates"], meta.get("partition", "day"),
                                     meta.get("labels", {}), meta.get("negatives", 0))
            return Cached("landing", fp, f"{sum(map(len, rows.values()))} partitions", summary)
        summary = self._fill()
        marker.write_text(json.dumps({
            "fingerprint": fp, "files": self.landing_digests(), "faults": summary.faults,
            "duplicates": summary.duplicates, "partition": summary.partition, "labels": summary.labels,
            "negatives": summary.negatives,
            "rows": {t: {d.isoformat(): n for d, n in per.items()} for t, per in summary.rows.items()}},
            sort_keys=True))
        return summary

    def landing_fingerprint(self) -> str | None:
        """The landing step's fingerprint: this run's, else the one the landing marker records (a DAG task
        does not fill the landing zone); None when neither exists."""
        if "landing" not in self.fingerprints:
            marker = self.cfg.storage.location("landing") / LANDING_MARKER
            self.fingerprints["landing"] = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
        return self.fingerprints["landing"]

    def _fill(self):
        return fill_landing(self.cfg)

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
