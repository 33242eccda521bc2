"""The whole-table steps behind the step cache: training set, graph, models, index, publish.

:class:`PipelineSteps` adds them to :class:`~pinrec.jobs.orchestration.day_steps.Steps` (what each
fingerprint covers: the table of :mod:`pinrec.jobs.orchestration.steps_base`). A step whose output is a
Delta table records its fingerprint in the commit; one whose output is an artifact folder in
``_fingerprint.json`` there; publish in the manifest. The folders of the steps before publish are handed
to it explicitly, so the bundle holds exactly what this run built or reused.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.fingerprint import fingerprint
from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.tracking import mlflow_artifact_root

from .day_steps import Steps
from .step_cache import (
    FINGERPRINT_FILE,
    Cached,
    folder_fingerprint,
    folder_record,
    mark_folder,
    table_fingerprint,
)
from .steps_base import _bundle_config

log = logging.getLogger(__name__)


def _folder_of(result: Any) -> str:
    """The artifact folder a step's result names (its report's field, or a Cached output)."""
    if isinstance(result, Cached):
        return str(result.output)
    for name in ("folder", "artifacts"):
        value = getattr(result, name, None)
        if value:
            return str(value)
    raise ValueError(f"{type(result).__name__} names no artifact folder")


class PipelineSteps(Steps):
    """:class:`Steps` plus the steps after the features (module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.embedding_version: str | None = None
        self.folders: dict[str, str] = {}
        self.published_manifest = None  # the manifest of the bundle publish reused

    def _embedding_version(self) -> str | None:
        try:  # the data's commit: an OPTIMIZE after it records no model version
            return self.catalog().user_metadata("pin_embeddings").get("model_version")
        except FileNotFoundError:
            return None

    def training_set(self, days: list[dt.date]):
        from pinrec.jobs.features.training_set import build_training_set

        fp = self._whole("training_set", {"training": self.cfg.training, "seed": self.cfg.seed},
                         {"days": days, "features": [self.fingerprints["features"][d] for d in days]})
        if self.cache.hit("training_set", fp, table_fingerprint(self.catalog(), "training_set", "training_set")):
            return Cached("training_set", fp, f"{days[0]}..{days[-1]}")
        catalog = self.catalog({"step": "training_set", "fingerprint": fp})
        report = build_training_set(self.spark, catalog, days, self.cfg.training, self.cfg.seed)
        self._check_reads("training_set", catalog)
        self.last_catalog = catalog
        return report

    def graph(self, cutoff: dt.datetime, eval_from: dt.datetime):
        from pinrec.jobs.graph.graph import write_graph

        fp = self._whole("graph", None, {"cutoff": cutoff, "eval_from": eval_from})
        look = self.catalog()
        tables = ("graph_edges", "graph_pin_nodes", "graph_board_nodes")
        recorded = {table_fingerprint(look, t, "graph") for t in tables}
        if self.cache.hit("graph", fp, fp if recorded == {fp} else None):
            return Cached("graph", fp, f"as of {cutoff}")
        catalog = self.catalog({"step": "graph", "fingerprint": fp})
        rows = write_graph(self.spark, catalog, cutoff, eval_from)
        self._check_reads("graph", catalog)
        self.last_catalog = catalog
        return rows

    def retrieval_settings(self):
        """PinSage's settings chosen on the graph's validation split (the training DAG's search,
        :func:`~pinrec.jobs.pinsage.pinsage_settings.choose_settings`), reused while the settings file of the
        graph's version records this fingerprint (the search runs against a time budget: a rerun keeps the
        choice); a skipped choice, reading nothing, unless ``retrieval_eval.tune_in_training``."""
        from pinrec.jobs.pinsage.pinsage_settings import (
            choose_settings,
            read_choice,
            settings_file,
        )

        cfg, storage = self.cfg, self.cfg.storage
        if not cfg.retrieval_eval.tune_in_training:
            return choose_settings(None, storage.warehouse, cfg.retrieval_eval, cfg.pinsage, enabled=False)
        fp = self._whole("retrieval_settings", {"retrieval_eval": cfg.retrieval_eval, "pinsage": cfg.pinsage})
        edges = self.inputs["retrieval_settings"]["graph_edges"]
        target = settings_file(self.artifacts, edges) if edges is not None else None
        recorded = read_choice(target) if target is not None and target.is_file() else None
        if self.cache.hit("retrieval_settings", fp, recorded[1].get("fingerprint") if recorded else None):
            return Cached("retrieval_settings", fp, str(target), recorded[0])
        catalog = self.catalog({"step": "retrieval_settings", "fingerprint": fp})
        choice = choose_settings(self.spark, catalog, cfg.retrieval_eval, cfg.pinsage, artifacts=self.artifacts,
                                 tracking_uri=storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(storage),
                                 stamp={"step": "retrieval_settings", "fingerprint": fp})
        self._check_reads("retrieval_settings", catalog)
        return choice

    def pinsage(self):
        from pinrec.jobs.pinsage.pinsage import train_pinsage

        # the previous embeddings are read for the warm start, but they are this step's own output:
        # what the fingerprint covers is the graph it trains on (its tables' versions)
        commits = self._commits("pinsage")
        commits.pop("pin_embeddings")
        fp = fingerprint("pinsage", code=self.code("pinsage"), config=self.cfg.pinsage, inputs={"tables": commits})
        self.fingerprints["pinsage"] = fp
        if self.cache.hit("pinsage", fp, table_fingerprint(self.catalog(), "pin_embeddings", "pinsage")):
            self.embedding_version = self._embedding_version()
            return Cached("pinsage", fp, f"embeddings {self.embedding_version}")
        catalog = self.catalog({"step": "pinsage", "fingerprint": fp})
        storage = self.cfg.storage
        report = train_pinsage(self.spark, catalog, self.cfg.pinsage, storage.mlflow_tracking_uri,
                               artifact_root=mlflow_artifact_root(storage), artifacts=self.artifacts)
        self._check_reads("pinsage", catalog)
        self.embedding_version = report.model_version
        return report

    def embeddings(self) -> str | None:
        """The embedding version the steps after PinSage build on: the one this run's PinSage step made or
        reused, else the newest in ``pin_embeddings`` (a DAG task runs in a process of its own)."""
        if self.embedding_version is None:
            self.embedding_version = self._embedding_version()
        return self.embedding_version

    def _artifact_step(self, step: str, config: Any, folder: Location | None, run, extra: dict | None = None,
                       embeddings: bool = True, catalog: Catalog | None = None):
        """Reuse ``folder`` when it records this step's fingerprint, else ``run()`` and mark its folder.
        ``embeddings``: whether the step reads the pin embeddings (their version is then an input);
        ``catalog``: the one ``run`` reads through, whose reads the fingerprint must cover (checked)."""
        fp = self._whole(step, config, {"embeddings": self.embeddings() if embeddings else None, **(extra or {})})
        if self.cache.hit(step, fp, folder_fingerprint(folder, step)):
            self.folders[step] = str(folder)
            return Cached(step, fp, str(folder), str(folder))
        if folder is not None:  # a run that dies half-way through rewriting the folder must not look cached
            (folder / FINGERPRINT_FILE).delete()
        result = run()
        if catalog is not None:
            self._check_reads(step, catalog)
            self.last_catalog = catalog
        self.folders[step] = _folder_of(result)
        mark_folder(as_location(self.folders[step], self.artifacts.s3), step, fp)
        return result

    def two_tower(self):
        from pinrec.jobs.two_tower.two_tower import train_two_tower, two_tower_folder

        cfg, storage = self.cfg, self.cfg.storage
        folder = two_tower_folder(self.artifacts, self.embeddings()) if self.embeddings() else None
        catalog = self.catalog()
        return self._artifact_step(
            "two_tower", {"two_tower": cfg.two_tower, "index": cfg.index_for("two_tower")}, folder,
            lambda: train_two_tower(self.spark, catalog, self.artifacts, cfg.two_tower, cfg.index_for("two_tower"),
                                    storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(storage)),
            catalog=catalog)

    def cf(self, cutoff: dt.datetime):
        from pinrec.jobs.cf.cf import newest_cf, train_cf

        storage, catalog = self.cfg.storage, self.catalog()
        return self._artifact_step(
            "cf", self.cfg.cf, newest_cf(self.artifacts),
            lambda: train_cf(self.spark, catalog, self.cfg.cf, storage.mlflow_tracking_uri, cutoff=cutoff,
                             artifacts=self.artifacts, artifact_root=mlflow_artifact_root(storage)),
            {"cutoff": cutoff}, embeddings=False, catalog=catalog)  # (the DAG trains it beside PinSage: no embeddings)

    def ranker(self):
        from pinrec.jobs.publish.bundle import newest_ranker
        from pinrec.jobs.ranking.ranker import run_ranker

        cfg, catalog = self.cfg, self.catalog()
        try:
            folder = newest_ranker(self.artifacts)
        except FileNotFoundError:
            folder = None
        config = {"ranker": cfg.ranker, "ranker_train": cfg.ranker_train, "calibration": cfg.calibration,
                  "ranker_job": cfg.ranker_job, "dataset": cfg.dataset.kind}
        return self._artifact_step("ranker", config, folder, lambda: run_ranker(self.spark, cfg, catalog),
                                   {"landing": self.landing_fingerprint()}, catalog=catalog)  # the world's truth

    def index(self):
        from pinrec.jobs.index.pin_index import build_pin_index, index_folder

        storage, catalog = self.cfg.storage, self.catalog()
        folder = index_folder(self.artifacts, self.embeddings()) if self.embeddings() else None
        return self._artifact_step(
            "index", self.cfg.index_for("ann"), folder,
            lambda: build_pin_index(self.spark, catalog, self.artifacts, self.cfg.index_for("ann"),
                                    storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(storage)),
            catalog=catalog)

    def publish(self, cutoff: dt.datetime | None = None, champion: tuple[str, dict] | None = None,
                folders: dict[str, str] | None = None, prebuilt=None):
        """Publish the bundle of this run's folders (or ``folders``: ``{step: folder}`` for index, ranker,
        two_tower, cf, as a DAG task is handed them) with the features as of ``cutoff`` (None: the job's
        default), unless the newest bundle of the name records this fingerprint; ``champion``: as
        :func:`~pinrec.jobs.publish.serving_bundle.publish_serving_bundle`'s, as is ``prebuilt``."""
        from pinrec.export.build.publish import PublishError
        from pinrec.export.serving.store import Store
        from pinrec.jobs.config import s3_options
        from pinrec.jobs.publish.bundle import finish_publish, publish_serving_bundle
        from pinrec.schemas.manifest import Manifest

        cfg, f = self.cfg, {**self.folders, **(folders or {})}
        # the steps it bundles by the fingerprints their outputs record, not their paths (a moved lake is
        # no change); an output that records none (built outside the cache) is never reused
        # (with the run that wrote each: a step forced to run again wrote new content under the same fingerprint)
        records = {s: folder_record(as_location(f[s], self.artifacts.s3), s) if f.get(s) else {}
                   for s in ("two_tower", "cf", "ranker", "index")}
        recorded = {s: r.get("fingerprint") for s, r in records.items()}
        recorded["pinsage"] = table_fingerprint(self.catalog(), "pin_embeddings", "pinsage")
        runs = {s: r.get("run") for s, r in records.items()}
        fp = self._whole("publish", _bundle_config(cfg), {**recorded, "runs": runs, "cutoff": cutoff})
        store, name = Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name
        newest = None
        for version in store.list_dir(f"bundles/{name}"):
            key = f"bundles/{name}/{version}/manifest.json"
            if store.exists(key):
                manifest = Manifest.from_json(store.get_bytes(key))
                newest = manifest if newest is None or manifest.created_at > newest.created_at else newest
        known = None not in recorded.values()
        if newest and known and newest.lineage.fingerprint == fp and self.cache.reuse("publish"):
            try:  # stored, but its publish died before the channel moved: finish it, not "cached"
                finished = finish_publish(cfg, newest)
            except PublishError as e:
                log.warning("[publish] %s", e)
                newest = None  # a stale verdict: publish (and judge) again
            else:
                if finished is not None:
                    self.cache.ran.append("publish")
                    self.published_manifest = newest
                    return finished
        if self.cache.hit("publish", fp, newest.lineage.fingerprint or None if newest and known else None):
            self.published_manifest = newest
            return Cached("publish", fp, f"bundle {name}/{newest.version}", newest.version)
        catalog = self.catalog()  # the champion's replay reads through its own: the funnel step's, checked there
        report = publish_serving_bundle(self.spark, cfg, index_dir=f.get("index"), ranker_dir=f.get("ranker"),
                                        two_tower_dir=f.get("two_tower"), cf_dir=f.get("cf"), cutoff=cutoff,
                                        champion=champion, replay_champion=lambda _spark, _cfg, at: self.champion(at),
                                        fingerprint=fp, prebuilt=prebuilt, catalog=catalog)
        self._check_reads("publish", catalog)
        self.last_catalog = catalog
        return report

    def funnel(self, version: str, day: dt.date):
        """The funnel replay of the stored bundle ``version`` on ``day``
        (:func:`~pinrec.jobs.funnel.funnel.eval_funnel`), written to its funnel folder unless that folder
        records this fingerprint: then a :class:`Cached` whose output is the stored
        :class:`~pinrec.jobs.funnel.replay.FunnelReport`. A bundle version never changes, so the
        version stands for the bundle; the day, the replay's config, the tables it reads and the
        landing (the synthetic truth) complete the fingerprint. Raises
        :class:`~pinrec.jobs.funnel.replay.NothingToReplay` on a day nobody saved a pin."""
        from pinrec.jobs.funnel.funnel import eval_funnel, funnel_folder, read_funnel

        cfg = self.cfg
        folder = funnel_folder(cfg, version)
        config = {"funnel": cfg.funnel, "recommend": cfg.recommend, "publish_delay_s": cfg.features.publish_delay_s,
                  "dataset": cfg.dataset.kind}
        fp = self._whole("funnel", config, {"bundle": version, "day": day, "landing": self.landing_fingerprint()})
        if self.cache.hit("funnel", fp, folder_fingerprint(folder, "funnel")):
            self.folders["funnel"] = str(folder)
            return Cached("funnel", fp, f"bundle {version} on {day}", read_funnel(folder / "funnel.json"))
        (folder / FINGERPRINT_FILE).delete()
        catalog = self.catalog()
        report, _ = eval_funnel(self.spark, cfg, version=version, day=day, out=folder, catalog=catalog)
        self._check_reads("funnel", catalog)
        mark_folder(folder, "funnel", fp)
        self.folders["funnel"] = str(folder)
        return report

    def champion(self, cutoff: dt.datetime) -> tuple[str, dict[str, float]] | None:
        """(version, funnel metrics) of the bundle ``publish.channel`` serves now, replayed through
        :meth:`funnel` on the day a candidate of ``cutoff`` is replayed on
        (:func:`~pinrec.jobs.publish.bundle_cutoffs.champion_day`); None while the channel points nowhere."""
        from pinrec.export.serving.store import Store, read_channel
        from pinrec.jobs.config import s3_options
        from pinrec.jobs.publish.bundle import champion_day

        cfg = self.cfg
        pointer = read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name,
                               cfg.publish.channel)
        if pointer is None:
            return None
        result = self.funnel(pointer.version, champion_day(cfg, cutoff))
        return pointer.version, (result.output if isinstance(result, Cached) else result).metrics
