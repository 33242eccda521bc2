"""MLflow tracking for every job that trains, evaluates or publishes something.

One context manager, :func:`tracked_run`, opens a run in an experiment of the configured tracking
server (``sqlite:///var/mlflow.db`` by default, any ``http://`` server in tests) and hands back a
:class:`TrackedRun` with the few calls the jobs need. Keeping MLflow behind this seam means the
models (pure torch) never import it, and a job logs the same way from the CLI, a DAG or a notebook.
An :class:`ArtifactRoot` (from ``storage.mlflow_artifacts``, :func:`mlflow_artifact_root`) puts a new
experiment's artifacts on S3 or in a chosen folder, with or without a tracking server.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pinrec.jobs.config import StorageConfig, s3_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactRoot:
    """Where a new MLflow experiment keeps its run artifacts, instead of the tracking store's default.

    ``uri``: ``s3://bucket/prefix`` or an absolute ``file://`` URI (what MLflow understands; build it
    with :func:`mlflow_artifact_root`). ``s3_endpoint_url``: the S3 server MLflow's boto3 client uploads to
    and reads from (None: ``MLFLOW_S3_ENDPOINT_URL`` if set, else AWS itself). Keys are never here.
    """

    uri: str
    s3_endpoint_url: str | None = None

    def __post_init__(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme not in ("s3", "file") or (parsed.scheme == "s3" and not parsed.netloc):
            raise ValueError(f"an MLflow artifact root must be s3://bucket[/prefix] or file:///absolute/path, "
                             f"got {self.uri!r}")


def mlflow_artifact_root(storage: StorageConfig) -> ArtifactRoot | None:
    """``storage.mlflow_artifacts`` as MLflow needs it (``s3a://`` becomes ``s3://``, a local path an
    absolute ``file://`` URI), with the S3 endpoint of :func:`~pinrec.jobs.config.s3_options`, the one
    resolution every S3 client of the jobs uses; None when it is not set."""
    uri = storage.mlflow_artifacts
    if uri is None:
        return None
    scheme = urlparse(uri).scheme
    if scheme == "s3a":
        uri = "s3://" + uri[len("s3a://"):]
    elif scheme in ("", "file"):
        uri = Path(uri.removeprefix("file://")).resolve().as_uri()
    return ArtifactRoot(uri.rstrip("/"), s3_options(storage).endpoint_url)


def _export_s3_endpoint(root: ArtifactRoot) -> None:
    """MLflow's S3 artifact repository takes no endpoint argument: it reads ``MLFLOW_S3_ENDPOINT_URL``
    from the environment each time it builds its boto3 client, so the configured endpoint is
    exported to this process before the first upload. A variable the user set wins."""
    if root.uri.startswith("s3://") and root.s3_endpoint_url and "MLFLOW_S3_ENDPOINT_URL" not in os.environ:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = root.s3_endpoint_url


def _ensure_sqlite_parent(uri: str) -> None:
    """``sqlite:///var/mlflow.db`` fails when ``var/`` does not exist yet: create it."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)


def _artifact_location(uri: str) -> str | None:
    """Where a new experiment of a SQLite store keeps its artifacts: ``mlartifacts/`` beside the
    database file (MLflow's own default is ``./mlruns`` in whatever the working directory is).
    None for a tracking server, whose ``--default-artifact-root`` decides."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{"a.b": "value"}`` (MLflow params are flat strings, 6000 chars max)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flat(value, f"{name}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:6000]
    return out


class TrackedRun:
    """A thin handle on an active MLflow run (``run_id``, ``experiment_id``)."""

    def __init__(self, mlflow_module, run) -> None:
        self._mlflow = mlflow_module
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params(_flat(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite numeric metrics; NaN/inf and non-numbers are skipped with a warning."""
        clean = {}
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                log.warning("metric %s=%r is not a number; not logged", key, value)
                continue
            if math.isfinite(number):
                clean[key] = number
            else:
                log.warning("metric %s=%r is not finite; not logged", key, value)
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self._mlflow.log_dict(obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._mlflow.log_text(text, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self._mlflow.log_figure(figure, artifact_file)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(local_path, artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})


@contextlib.contextmanager
def tracked_run(tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any] | None = None,
                tags: Mapping[str, Any] | None = None, *,
                artifact_root: ArtifactRoot | None = None) -> Iterator[TrackedRun]:
    """Open an MLflow run; params (nested mappings are flattened) and tags are logged up front.

    ``artifact_root``: where the experiment keeps its artifacts if this call creates it (None: beside a
    SQLite store, the server's own root); an existing experiment keeps the location it was created
    with. The run ends FINISHED on success and FAILED when the body raises (the exception propagates).
    """
    import mlflow

    if not tracking_uri:
        raise ValueError("tracking_uri is empty: set storage.mlflow_tracking_uri")
    _ensure_sqlite_parent(tracking_uri)
    if artifact_root is not None:
        _export_s3_endpoint(artifact_root)
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        location = artifact_root.uri if artifact_root is not None else _artifact_location(tracking_uri)
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = exp.experiment_id
        if artifact_root is not None and exp.artifact_location.rstrip("/") != artifact_root.uri:
            log.warning("MLflow experiment %r keeps its artifacts at %s (storage.mlflow_artifacts=%s applies to "
                        "new experiments only)", experiment, exp.artifact_location, artifact_root.uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        handle = TrackedRun(mlflow, run)
        if params:
            handle.log_params(params)
        if tags:
            handle.set_tags(tags)
        yield handle
