"""Gather one bundle version's :class:`~pinrec.jobs.report.facts.RunFacts` from where the run left them.

Everything starts from the bundle's manifest (:func:`resolve`), which names the versions and runs
the rest is read from:

* the index tuner's record: the bundle's own ``index/index.json``;
* the ranker: its model version from the bundle's ONNX metadata (``pinrec.model_version``), then
  ``<artifacts>/ranker/<model version>/metrics.json``, and from the ranker's MLflow run (the lineage's
  ``ranker`` run) its ``ranker_job.evaluation`` param and its reliability / position plots;
* PinSage: the ``pin_embeddings`` commit of the lineage's version (model version, warm start,
  stability, MLflow run) and that run's ``loss`` history;
* ingestion: the raw-table versions the lineage reaches (:func:`~pinrec.jobs.publish.lineage.bundle_lineage`
  over the Delta commits), for each the ingest batches that wrote its day partitions (their commit
  metadata: valid rows, and the batch's accounting where recorded) and the quarantine table's rows
  of those batches by reason (:mod:`~pinrec.jobs.report.commits`);
* drift: the manifest's ``metrics.drift`` and its monitoring run's ``drift.json`` (the windows, what
  is still in warm-up);
* ``pinrec eval-retrieval``'s ``report.json`` under ``<artifacts>/retrieval_eval`` when there is one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from pinrec.jobs.io.catalog import Catalog
from pinrec.schemas.manifest import Manifest

from .commits import LookingCatalog, ingestion_facts
from .facts import PinSageFacts, RankerFacts, RunFacts

#: the ranker run's figures (MLflow artifact path -> name on the page)
RANKER_PLOTS = {"plots/reliability.png": "reliability", "plots/ctr_by_position.png": "ctr_by_position"}


def resolve(store, name: str, ref: str | None) -> Manifest:
    """The manifest of ``ref`` (a version of ``name``, or ``<name>/<version>``); None: the newest
    complete version by ``created_at``, promoted or not. FileNotFoundError naming what exists."""
    from pinrec.export.serving.store import read_manifest
    from pinrec.schemas.manifest import ManifestError

    if ref:
        other, _, version = ref.rpartition("/")
        try:
            return read_manifest(store, other or name, version)[0]
        except FileNotFoundError:
            known = store.list_dir(f"bundles/{other or name}")
            raise FileNotFoundError(f"no bundle {other or name}/{version} in {store.uri}; stored versions: "
                                    f"{', '.join(sorted(known)) or 'none'}") from None
    manifests = []
    for version in store.list_dir(f"bundles/{name}"):
        try:
            manifests.append(read_manifest(store, name, version)[0])
        except (FileNotFoundError, ManifestError):  # incomplete (being published or deleted): not a run's result
            continue
    if not manifests:
        raise FileNotFoundError(f"no published bundle of {name!r} in {store.uri}: run `pinrec publish bundle` "
                                f"(or `pinrec demo`) first")
    return max(manifests, key=lambda m: (m.created_at, m.version))


def _bundle_file(store, manifest: Manifest, role: str) -> bytes:
    from pinrec.schemas.manifest import bundle_prefix

    return store.get_bytes(bundle_prefix(manifest.name, manifest.version) + manifest.of_role(role)[0].path)


def ranker_facts(store, manifest: Manifest, artifacts, tracking_uri: str | None) -> RankerFacts | str:
    """The bundle's ranker (module docstring), or why its evaluation cannot be shown."""
    import onnx

    model = onnx.load_model_from_string(_bundle_file(store, manifest, "ranker"))
    version = {p.key: p.value for p in model.metadata_props}.get("pinrec.model_version")
    if not version:
        return "the bundle's ranker.onnx records no pinrec.model_version: its evaluation cannot be found"
    folder = artifacts / "ranker" / version
    if not (folder / "metrics.json").is_file():
        return f"no {folder}/metrics.json: the ranker's evaluation is not in the artifacts (pruned or moved)"
    report = json.loads((folder / "metrics.json").read_text())
    run_id = manifest.lineage.mlflow_run_ids.get("ranker")
    evaluation, plots = None, ("the ranker's run was not tracked in MLflow (none in the lineage): no figures"
                               if not run_id else "storage.mlflow_tracking_uri is not set: the ranker's MLflow "
                               "figures cannot be read")
    if run_id and tracking_uri:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            run = MlflowClient(tracking_uri).get_run(run_id)
        except MlflowException as e:  # a cleaned or another tracking store: the section says so
            plots = f"MLflow run {run_id} is not readable in {tracking_uri}: {e.message}"
        else:
            evaluation = run.data.params.get("ranker_job.evaluation")
            plots = _artifacts(tracking_uri, run_id, RANKER_PLOTS)
    return RankerFacts(version, folder.uri, tuple(report.get("metrics") or ()), tuple(report.get("debias") or ()),
                       tuple(report.get("auc_gaps") or ()), evaluation, run_id, plots)


@contextlib.contextmanager
def _no_progress_bars():
    """MLflow draws a progress bar on stderr for every download; the report fetches a few small files."""
    key, before = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _artifacts(tracking_uri: str, run_id: str, paths: dict[str, str]) -> dict[str, bytes] | str:
    """{name: bytes} of a run's artifacts at ``paths``; a sentence when none of them is there."""
    import mlflow.artifacts

    out = {}
    with tempfile.TemporaryDirectory(prefix="pinrec-report-") as tmp, _no_progress_bars():
        for path, name in paths.items():
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                                            tracking_uri=tracking_uri)
            except (OSError, mlflow.exceptions.MlflowException):
                continue
            out[name] = Path(local).read_bytes()
    return out or f"MLflow run {run_id} holds none of {', '.join(paths)}"


def drift_facts(manifest: Manifest, tracking_uri: str | None) -> dict | str:
    """The ``drift.json`` of the bundle's monitoring run (publish's drift comparison), or why there is none."""
    run_id = manifest.lineage.mlflow_run_ids.get("monitoring")
    if not run_id or not tracking_uri:
        return "no monitoring run in the lineage (monitoring.at_publish off, or MLflow tracking off)"
    found = _artifacts(tracking_uri, run_id, {"drift.json": "drift"})
    return found if isinstance(found, str) else json.loads(found["drift"])


def pinsage_facts(catalog: Catalog, manifest: Manifest, tracking_uri: str | None) -> PinSageFacts | str:
    """The bundle's embedding version (module docstring), or why it cannot be shown."""
    version = manifest.lineage.delta_versions.get("pin_embeddings")
    if not catalog.exists("pin_embeddings"):
        return "no pin_embeddings table in the warehouse"
    meta = catalog.user_metadata("pin_embeddings", version)
    if not meta.get("model_version"):
        return f"the pin_embeddings commit {version} records no PinSage model version"
    run_id = meta.get("mlflow_run_id")
    loss: tuple[tuple[int, float], ...] | str = "PinSage ran without MLflow tracking: no loss curve was logged"
    if run_id and tracking_uri:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            history = MlflowClient(tracking_uri).get_metric_history(run_id, "loss")
        except MlflowException as e:  # a cleaned or another tracking store: the section says so
            loss = f"MLflow run {run_id} is not readable in {tracking_uri}: {e.message}"
        else:
            loss = tuple(sorted((int(m.step), float(m.value)) for m in history)) or \
                f"MLflow run {run_id} logged no 'loss' metric"
    stability = {k: float(v) for k, v in (meta.get("stability") or {}).items() if isinstance(v, (int, float))}
    return PinSageFacts(meta["model_version"], version, run_id, loss, stability, meta.get("warm_start_from"),
                        str(meta.get("warm_start") or ""))


def retrieval_eval_facts(artifacts) -> dict | str:
    """``<artifacts>/retrieval_eval/report.json`` with ``where`` and ``modified`` added, or why there is none."""
    at = artifacts / "retrieval_eval" / "report.json"
    if not at.is_file():
        return f"no {at}: `pinrec eval-retrieval` has not been run on these artifacts"
    body = json.loads(at.read_text())
    modified = at.fs.modified(at.path)
    return {**body, "where": at.uri, "modified": modified.astimezone(dt.UTC).isoformat(timespec="seconds")}


def gather(spark, cfg, ref: str | None = None) -> RunFacts:
    """:class:`RunFacts` of bundle ``ref`` of ``cfg.publish.name`` (None: the newest) from ``cfg.publish``'s
    store, the warehouse, the artifacts and MLflow of ``cfg.storage``."""
    from pinrec.export.serving.store import Store, read_channel
    from pinrec.jobs.config import s3_options
    from pinrec.jobs.io.tracking import _export_s3_endpoint, mlflow_artifact_root

    store = Store(cfg.bundle_store_uri, s3_options(cfg.storage))
    manifest = resolve(store, cfg.publish.name, ref)
    pointer = read_channel(store, cfg.publish.name, cfg.publish.channel)
    catalog, artifacts, tracking = LookingCatalog(spark, cfg.storage.warehouse), cfg.storage.location("artifacts"), \
        cfg.storage.mlflow_tracking_uri
    root = mlflow_artifact_root(cfg.storage)
    if root is not None:  # artifacts MLflow keeps on S3 itself (no proxying server): its client reads the endpoint
        _export_s3_endpoint(root)  # from the environment, as when the jobs logged them
    return RunFacts(
        manifest=manifest, store_uri=cfg.bundle_store_uri, channel=cfg.publish.channel,
        channel_version=pointer.version if pointer else None,
        ingestion=ingestion_facts(catalog, manifest), pinsage=pinsage_facts(catalog, manifest, tracking),
        ranker=ranker_facts(store, manifest, artifacts, tracking),
        index=json.loads(_bundle_file(store, manifest, "index_meta")),
        retrieval_eval=retrieval_eval_facts(artifacts), drift=drift_facts(manifest, tracking),
        max_feature_drift=cfg.blessing.max_feature_drift, max_null_rate_shift=cfg.blessing.max_null_rate_shift,
        max_category_psi=cfg.blessing.max_category_psi,
        category_psi_noise_factor=cfg.blessing.category_psi_noise_factor,
        max_unseen_category_share=cfg.blessing.max_unseen_category_share,
        tracking_uri=tracking)
