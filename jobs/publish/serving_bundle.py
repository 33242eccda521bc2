"""The publish job: assemble a serving bundle from the newest index and ranker and publish it
behind the blessing gate (``pinrec publish``).

The candidate holds
* ``index/``: the index built over the current pin embeddings (``<artifacts>/index/<embedding version>``,
  :mod:`pinrec.jobs.index.pin_index`);
* ``ranker/``: the ONNX ranker and its encoder (``<artifacts>/ranker/<model version>``,
  :mod:`pinrec.jobs.ranking.ranker`; the newest by default);
* ``pins/pins.parquet``: every pin's serving metadata (:data:`pinrec.schemas.manifest.PIN_COLUMNS`, sorted
  by pin_id; ``blocked`` is false until a moderation table exists);
* ``extra/pin_embeddings.npy``: (N, D) float32, row i = pins row i (zeros for a pin PinSage did not
  embed), what the loader queries the index with;
* ``extra/features_<view>.parquet``: the online feature snapshot as of the cut-off
  (:mod:`pinrec.jobs.features.feature_snapshot`), so the loader serves the features the ranker was trained on;
* ``extra/prerank.onnx``: the pre-ranker, when the ranker folder has one (:mod:`pinrec.jobs.ranking.ranker_prerank`).
* ``extra/two_tower_*``: the two-tower model of the same embedding version, when one was built
  (``<artifacts>/two_tower/<embedding version>``, :mod:`pinrec.jobs.two_tower.two_tower`; one built on
  other embeddings is refused).
* ``extra/cf_items.faiss``, ``cf_items.parquet``, ``cf_users.parquet``, ``cf.json``: the newest
  collaborative-filtering artifacts (``<artifacts>/cf/<version>``, :mod:`pinrec.jobs.cf.cf`), when
  there are any: the ``cf`` channel; their MLflow run and ``actions`` version go into the lineage.

Metrics come from the index's ``index.json`` (recall@k, latency) and the ranker's ``metrics.json``
(per-task AUC and ECE of the served, calibrated, position-free scores), and with ``funnel.at_publish``
from the serving funnel replayed on the candidate (:func:`~pinrec.jobs.publish.bundle_funnel.candidate_funnel`),
and the embedding stability the ``pin_embeddings`` commit records
(:func:`~pinrec.jobs.publish.bundle_sources.embedding_stability`); lineage records the git sha, a hash of
the configuration, the MLflow runs and the Delta version of every input of the files. After publishing,
the ranker and index are registered in the MLflow Model Registry pointing at the bundle.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pinrec.jobs.io.folders import local_folder
from pinrec.jobs.io.lake import Location, as_location

from .bundle_cutoffs import default_cutoff
from .bundle_drift import candidate_drift
from .bundle_funnel import candidate_funnel, champion_funnel
from .bundle_sources import (
    code_version,
    config_hash,
    embedding_stability,
    newest_ranker,
    pin_metadata,
    ranker_metrics,
)

log = logging.getLogger("pinrec.jobs.publish.bundle")  # the name it logged under before the split


@dataclass(frozen=True)
class BundleReport:
    version: str
    promoted: bool
    blessed: bool
    reasons: tuple[str, ...]
    store_uri: str
    name: str
    channel: str
    files: int
    bytes: int
    registered: dict[str, str]
    funnel: Any = None  # the candidate's FunnelReport (pinrec.jobs.funnel.replay), None when not replayed

    def render(self) -> str:
        verdict = "blessed" if self.blessed else "NOT blessed (" + "; ".join(self.reasons) + ")"
        moved = f"channel {self.channel} -> {self.version}" if self.promoted else f"channel {self.channel} unchanged"
        return (f"bundle           {self.name}/{self.version}: {self.files} files, {self.bytes / 2**20:.1f} MiB, "
                f"{verdict}; {moved}; {self.store_uri}" + (f"; MLflow {self.registered}" if self.registered else ""))


def publish_serving_bundle(spark, cfg, *, index_dir: str | Location | None = None,
                           ranker_dir: str | Location | None = None, cutoff: dt.datetime | None = None,
                           force: bool = False, register: bool = True,
                           two_tower_dir: str | Location | None = None, cf_dir: str | Location | None = None,
                           champion: tuple[str, dict[str, float]] | None = None, replay_champion=None,
                           fingerprint: str = "", prebuilt=None, catalog=None) -> BundleReport:
    """Assemble the candidate (module docstring) and publish it with ``cfg.publish`` / ``cfg.blessing``
    to the store :func:`~pinrec.jobs.config.s3_options` of ``cfg.storage`` connects to.
    ``cfg`` is the whole :class:`~pinrec.jobs.config.PinrecConfig`; ``cutoff`` of the feature snapshot
    defaults to the newest ``feature_ts`` servable (the end of the newest landed day plus the
    features' publish delay). The index and ranker folders (local, or on S3 with ``cfg.storage``'s
    server, where they are downloaded to a temporary folder) default to those under
    ``storage.artifacts`` (``cf_dir``: the newest cf folder, none when there is none). With
    ``funnel.at_publish`` the candidate's funnel is compared with the champion's on the same day:
    ``champion`` (version, metrics) when the caller replayed it already (the DAG's funnel task),
    else ``replay_champion(spark, cfg, cutoff)`` replays it here (default
    :func:`~pinrec.jobs.publish.bundle_funnel.champion_funnel`; the step cache passes one that reuses a stored
    replay). ``fingerprint``: the publish step's cache fingerprint, kept in ``lineage.fingerprint``
    (:mod:`pinrec.jobs.orchestration.step_cache`). ``prebuilt``: feature snapshot tables built ahead for
    :func:`~pinrec.jobs.publish.bundle_cutoffs.snapshot_cutoffs` (a
    :class:`~pinrec.jobs.features.feature_snapshot.PrebuiltSnapshot`; a view built from another version
    of its table is built again here). ``catalog``: the :class:`~pinrec.jobs.io.catalog.Catalog` every table
    is read through, the candidate's drift and funnel included (default: one of its own), so that a caller
    sees all it read (the step cache checks it); the manifest's lineage holds the tables the bundle's
    files were built from (``pin_embeddings``, ``pins``, the feature tables)."""
    import pyarrow.parquet as pq

    from pinrec.export.build.publish import BundleFiles, publish_bundle
    from pinrec.export.serving.embedding_features import EmbeddingTable
    from pinrec.export.serving.store import Store
    from pinrec.jobs.cf.cf import fetch_cf, newest_cf
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.features.feature_snapshot import build_feature_snapshot
    from pinrec.jobs.index.pin_index import index_folder, read_embeddings
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.manifest import Lineage, Metrics

    from .champion_stability import champion_stability
    from .registry import check_registry_source

    if register and cfg.storage.mlflow_tracking_uri:  # before anything is built or published
        check_registry_source(cfg.storage.mlflow_tracking_uri, cfg.bundle_store_uri)
    artifacts = cfg.storage.location("artifacts")
    catalog = catalog if catalog is not None else Catalog(spark, cfg.storage.warehouse)
    ids, vectors, emb_version, emb_delta = read_embeddings(spark, catalog)
    index_at = as_location(index_dir, artifacts.s3) if index_dir else index_folder(artifacts, emb_version)
    if not (index_at / "index.json").is_file():
        raise FileNotFoundError(f"no index at {index_at} for embeddings {emb_version}: run `pinrec index` first")
    index_meta = json.loads((index_at / "index.json").read_text())
    if index_meta.get("embedding_version", "unknown") not in ("unknown", emb_version):
        raise ValueError(f"the index in {index_at} was built over {index_meta['embedding_version']} but pin_embeddings "
                         f"holds {emb_version}: rebuild it (`pinrec index`) so index, ranker and pins share one version")
    ranker_at = as_location(ranker_dir, artifacts.s3) if ranker_dir else newest_ranker(artifacts)
    auc, ece, ranker_report = ranker_metrics(ranker_at)
    trained_on = ranker_report.get("embedding_version") or ""
    if trained_on and trained_on != emb_version:
        raise ValueError(f"the ranker in {ranker_at} uses embedding features of {trained_on} but pin_embeddings "
                         f"holds {emb_version}: retrain the ranker (`pinrec ranker`) so serving computes what it learnt")
    cutoff = cutoff if cutoff is not None else default_cutoff(spark, cfg, catalog)
    from pinrec.jobs.two_tower.two_tower import bundle_files, locate

    two_tower_at = locate(artifacts, emb_version, two_tower_dir, artifacts.s3)
    with (tempfile.TemporaryDirectory(prefix="pinrec-bundle-") as tmp, local_folder(index_at) as index_local,
          local_folder(ranker_at) as ranker_local,
          local_folder(two_tower_at) if two_tower_at else contextlib.nullcontext() as two_tower_local):
        two_tower_extras, two_tower_report = bundle_files(two_tower_local, emb_version) if two_tower_local else ((), {})
        pins, aligned, pins_delta = pin_metadata(spark, catalog, ids, vectors)
        pq.write_table(pins, f"{tmp}/pins.parquet")
        np.save(f"{tmp}/pin_embeddings.npy", aligned, allow_pickle=False)
        snapshot = build_feature_snapshot(spark, catalog, cutoff, f"{tmp}/features", prebuilt=prebuilt)
        cf_at = as_location(cf_dir, artifacts.s3) if cf_dir else newest_cf(artifacts)
        cf_files, cf_meta = fetch_cf(cf_at, f"{tmp}/cf") if cf_at is not None else ((), {})
        files = BundleFiles(
            index_meta=f"{index_local}/index.json",
            index_shards=tuple(f"{index_local}/{s['file']}" for s in index_meta["shards"]),
            ranker=f"{ranker_local}/ranker.onnx", encoder=f"{ranker_local}/encoder.json", pins=f"{tmp}/pins.parquet",
            extras=(f"{tmp}/pin_embeddings.npy", *sorted(snapshot.files.values()), *two_tower_extras, *cf_files))
        if (ranker_at / "prerank.onnx").is_file():  # the pre-ranker, exported beside the ranker
            files = replace(files, extras=(*files.extras, f"{ranker_local}/prerank.onnx"))
        measured = index_meta["measured"]
        drift = candidate_drift(spark, cfg, ranker_local, tuple(sorted(auc)), EmbeddingTable(ids, vectors, emb_version),
                                catalog) if cfg.monitoring.at_publish else None
        metrics = Metrics(k=int(measured.get("k", index_meta["k"])), recall_at_k=measured["recall_at_k"],
                          latency_p50_ms=measured["latency"]["p50_ms"], latency_p99_ms=measured["latency"]["p99_ms"],
                          auc=auc, calibration_error=ece, drift=drift.drift_metrics() if drift else {},
                          stability={**embedding_stability(catalog),
                                     **champion_stability(Store(cfg.bundle_store_uri, s3_options(cfg.storage)),
                                                          cfg.publish.name, cfg.publish.channel, ids, vectors)})
        runs = {"ranker": ranker_report.get("run_id"), "two_tower": two_tower_report.get("run_id"),
                "cf": cf_meta.get("mlflow_run_id")}
        if drift and drift.mlflow_run_id:
            runs["monitoring"] = drift.mlflow_run_id
        # what the files were built from (pin_embeddings, pins, the feature tables; not what the gate's drift
        # and funnel read, though the catalog records that too), what the ranker was trained on
        inputs = {"pin_embeddings": emb_delta, "pins": pins_delta, **snapshot.input_versions,
                  **{f"ranker:{k}": int(v) for k, v in (ranker_report.get("input_versions") or {}).items()
                     if isinstance(v, int)},
                  **{f"cf:{k}": int(v) for k, v in (cf_meta.get("input_versions") or {}).items()}}
        training_set = catalog.version("training_set")
        if training_set is not None:
            inputs["training_set"] = training_set
        lineage = Lineage(code_version(), config_hash(cfg), {k: v for k, v in runs.items() if v}, inputs,
                          fingerprint=fingerprint)
        funnel = candidate_funnel(spark, cfg, files, metrics, lineage, cutoff, prebuilt, catalog) \
            if cfg.funnel.at_publish else None
        if funnel is not None:
            log.info("[publish] %s", funnel.render())
            metrics = replace(metrics, funnel=funnel.metrics)
            champion = champion if champion is not None else (replay_champion or champion_funnel)(spark, cfg, cutoff)
        result = publish_bundle(replace(cfg.publish, store_uri=cfg.bundle_store_uri), files, metrics, lineage,
                                blessing=cfg.blessing, s3=s3_options(cfg.storage), force=force,
                                baseline_funnel=champion if funnel is not None else None)
    registered: dict[str, str] = {}
    if register and cfg.storage.mlflow_tracking_uri:
        from .registry import register_bundle

        registered = register_bundle(cfg.storage.mlflow_tracking_uri, cfg.bundle_store_uri, result.manifest,
                                     channel=cfg.publish.channel if result.promoted else None)
    m = result.manifest
    return BundleReport(m.version, result.promoted, m.blessing.blessed, m.blessing.reasons, cfg.bundle_store_uri,
                        m.name, cfg.publish.channel, len(m.files), m.total_bytes, registered, funnel)
