"""Register a published bundle's ranker and index in the MLflow Model Registry.

Each bundle version becomes one model version of ``<prefix>-<bundle>-ranker`` and one of
``<prefix>-<bundle>-index``, whose ``source`` is the file inside the bundle (the ONNX ranker,
``index/index.json``): the registry points at the published, checksummed artifact instead of
holding a second copy. Tags carry the bundle version, the file's sha256, the manifest's code
version and config hash and the blessing verdict; when ``channel`` is given the registered model's
alias of that name (``prod``) moves to the new model version, mirroring the channel pointer.
Registering the same bundle version again returns the existing model versions. Through a tracking
server (``http(s)://``) the bundle store must be shared storage (``s3://``): a server refuses a
model version whose source is a local path (:func:`check_registry_source`).

MLflow is imported only when a function runs.
"""
from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

from pinrec.schemas.manifest import Manifest, bundle_prefix

log = logging.getLogger(__name__)

#: (registered model suffix, manifest role of the file it points at, MLflow run id key in the lineage)
KINDS = (("ranker", "ranker", "ranker"), ("index", "index_meta", "index"))


def _absolute(store_uri: str) -> str:
    """A registry source MLflow can download from anywhere: local roots become absolute ``file://``
    URIs, ``s3a://`` (Hadoop's scheme, which ``pinrec stack`` writes) becomes ``s3://`` (MLflow has
    no s3a artifact repository), as :func:`pinrec.jobs.io.tracking.mlflow_artifact_root` does."""
    parsed = urlparse(store_uri)
    if parsed.scheme in ("", "file"):
        return "file://" + os.path.abspath(parsed.path if parsed.scheme else store_uri)
    if parsed.scheme == "s3a":
        store_uri = "s3://" + store_uri[len("s3a://"):]
    return store_uri.rstrip("/")


def check_registry_source(tracking_uri: str, store_uri: str) -> None:
    """Raises ValueError when ``tracking_uri`` is an MLflow server and ``store_uri`` a local folder:
    the server would refuse every model version (a local source must lie inside the run's own
    artifacts), and the registry would point at files only this machine can read."""
    if not tracking_uri:
        raise ValueError("tracking_uri is empty: set storage.mlflow_tracking_uri")
    if urlparse(tracking_uri).scheme in ("http", "https") and urlparse(store_uri).scheme in ("", "file"):
        raise ValueError(f"the MLflow server {tracking_uri} cannot register bundles of the local store {store_uri!r}: "
                         f"publish to shared storage (publish.store_uri or storage.artifacts = s3://...), or "
                         f"use a sqlite:/// storage.mlflow_tracking_uri")


def register_bundle(tracking_uri: str, store_uri: str, manifest: Manifest, *, channel: str | None = None,
                    prefix: str = "pinrec") -> dict[str, str]:
    """Create (or find) the model versions of ``manifest``'s ranker and index; returns
    ``{"ranker": <model version>, "index": <model version>}``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_registry_source(tracking_uri, store_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    root = f"{_absolute(store_uri)}/{bundle_prefix(manifest.name, manifest.version)}"
    out = {}
    for kind, role, run_key in KINDS:
        model = f"{prefix}-{manifest.name}-{kind}"
        entry = manifest.of_role(role)[0]
        try:
            client.create_registered_model(model, description=f"pinrec {kind} of bundle {manifest.name!r}")
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        found = client.search_model_versions(f"name = '{model}' and tags.bundle_version = '{manifest.version}'")
        if found:
            version = found[0].version
        else:
            run_id = manifest.lineage.mlflow_run_ids.get(run_key)
            if run_id is not None and not _run_exists(client, run_id):
                log.warning("MLflow run %s of the %s is not in %s; registering without a run link", run_id, kind,
                            tracking_uri)
                run_id = None
            tags = {"bundle_name": manifest.name, "bundle_version": manifest.version, "bundle_path": entry.path,
                    "sha256": entry.sha256, "size": str(entry.size), "code_version": manifest.lineage.code_version,
                    "config_hash": manifest.lineage.config_hash, "blessed": str(manifest.blessing.blessed).lower(),
                    "manifest_format_version": str(manifest.format_version)}
            mv = client.create_model_version(model, source=root + entry.path, run_id=run_id, tags=tags,
                                             description=f"bundle {manifest.name}/{manifest.version}")
            version = mv.version
        if channel is not None:
            client.set_registered_model_alias(model, channel, version)
        out[kind] = str(version)
    log.info("registered %s/%s in MLflow: %s", manifest.name, manifest.version, out)
    return out


def _run_exists(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
        return True
    except MlflowException:
        return False
