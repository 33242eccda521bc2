"""MLflow tracking for every job that trains, evaluates or publishes something.

One context manager, :func:`tracked_run`, opens a run in an experiment of the configured tracking
server (``sqlite:///var/mlflow.db`` by default, any ``http://`` server in tests) and hands back a
:class:`TrackedRun` with the few calls the jobs need. Keeping MLflow behind this seam means the
models (pure torch) never import it, and a job logs the same way from the CLI, a DAG or a notebook.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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
                tags: Mapping[str, Any] | None = None) -> Iterator[TrackedRun]:
    """Open an MLflow run; params (nested mappings are flattened) and tags are logged up front.

    The run ends FINISHED on success and FAILED when the body raises (the exception propagates).
    """
    import mlflow

    if not tracking_uri:
        raise ValueError("tracking_uri is empty: set storage.mlflow_tracking_uri")
    _ensure_sqlite_parent(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    experiment_id = exp.experiment_id if exp is not None else mlflow.create_experiment(
        experiment, artifact_location=_artifact_location(tracking_uri))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        handle = TrackedRun(mlflow, run)
        if params:
            handle.log_params(params)
        if tags:
            handle.set_tags(tags)
        yield handle
