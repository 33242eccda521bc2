"""Step 6 of the ranker job, export: the :class:`~pinrec.jobs.ranking.ranker_report.RankerReport`, the
ONNX (+ int8) export checked against the training path on the test rows, the copy to
``<artifacts>/ranker/<model_version>/`` and the MLflow record (:mod:`pinrec.jobs.ranking.ranker_artifacts`).

``model_version`` = ``ranker-`` + a content hash of the weights, the encoder and the configs. The
MLflow run (:func:`open_run`) is opened before training, so that every epoch's metrics land in it.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pinrec.jobs.io.lake import Location, as_location

from .ranker_artifacts import export_onnx, log_run, model_version, publish_artifacts
from .ranker_configs import RankerConfigs
from .ranker_encode import EncodedData
from .ranker_evaluate import Evaluation
from .ranker_report import RankerReport
from .ranker_train import CalibratedRanker

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from pinrec.jobs.io.tracking import ArtifactRoot, TrackedRun

    from .ranker_prerank import TrainedPrerank


def open_run(tracking_uri: str | None, cfg: RankerConfigs, data: EncodedData, meta: dict[str, Any],
             embedding_version: str | None = None, artifact_root: ArtifactRoot | None = None
             ) -> AbstractContextManager[TrackedRun | None]:
    """The MLflow run ``ranker`` in ``ranker_job.experiment`` with the configs, rows, input versions and
    encoder sizes as params; a context yielding None when ``tracking_uri`` is None (nothing logged)."""
    from pinrec.jobs.io.distributed import world_size
    from pinrec.jobs.io.tracking import tracked_run

    if not tracking_uri:
        return contextlib.nullcontext()
    params = {**cfg.as_params(), "negative_rate": data.negative_rate, "rows": data.rows_by_split,
              "input_versions": meta.get("input_versions", {}), "training_set_version": meta.get("training_set_version"),
              "encoder": {"categorical": len(data.encoder.cardinalities), "dense": len(data.encoder.dense_names)},
              "embedding_version": embedding_version, "world_size": world_size()}
    return tracked_run(tracking_uri, cfg.job.experiment, "ranker", params, {"job": "ranker"},
                       artifact_root=artifact_root)


def epoch_logger(run: TrackedRun | None) -> Callable[[int, dict[str, float]], None] | None:
    """The training hook that logs each epoch's metrics to ``run`` (None: no hook)."""
    return None if run is None else (lambda epoch, metrics: run.log_metrics(metrics, step=epoch))


def export(data: EncodedData, ranker: CalibratedRanker, evaluation: Evaluation, cfg: RankerConfigs, *,
           meta: dict[str, Any], embedding_version: str = "", artifacts_dir: str | Location | None = None,
           run: TrackedRun | None = None, started: float | None = None,
           prerank: TrainedPrerank | None = None) -> RankerReport:
    """The run's report; with ``artifacts_dir``, ONNX (+ int8 with ``ranker_job.int8``), encoder and
    calibration JSON and ``metrics.json`` published to ``<artifacts_dir>/ranker/<model_version>/``
    (``onnx_max_abs_diff``, ``int8_auc_drop`` and ``artifacts`` in the report); with ``prerank``, its
    inputs in the report's ``prerank`` and, with ``artifacts_dir``, ``prerank.onnx`` beside the
    ranker (its ``onnx_max_abs_diff`` on the test rows in ``prerank``); with ``run``, the
    metrics, plots, report and files logged to it. ``started``: the job's ``time.perf_counter()`` at
    its start (``seconds`` is measured from it, else 0)."""
    from pinrec.jobs.io.distributed import world_size

    trained, cal, job = ranker.trained, ranker.calibration, cfg.job
    version = model_version(trained.trainer.model, data.encoder, cfg.as_params())
    report = RankerReport(version, data.tasks, data.rows_by_split, data.negative_rate, trained.result.best_epoch,
                          len(trained.result.history), trained.device, evaluation.metrics, evaluation.debias,
                          evaluation.auc_gaps, input_versions=meta.get("input_versions", {}),
                          run_id=None if run is None else run.run_id, embedding_version=embedding_version,
                          world_size=world_size())
    y, w, probs = data.labels["test"], data.weights["test"], evaluation.probabilities
    with tempfile.TemporaryDirectory() as tmp:
        files, extra = export_onnx(trained.trainer, cal, data.encoder, trained.result, version, data.batches, y, w,
                                   probs, tmp, job, embedding_version) if artifacts_dir else ({}, {})
        if prerank is not None:
            summary = prerank.summary()
            if artifacts_dir:
                from .ranker_prerank import PRERANK_FILE, export_prerank

                files[PRERANK_FILE], summary["onnx_max_abs_diff"] = export_prerank(prerank, tmp, data.batches["test"],
                                                                                   version)
            extra["prerank"] = summary
        report = replace(report, **extra, seconds=0.0 if started is None else time.perf_counter() - started)
        if artifacts_dir:
            report = replace(report, artifacts=publish_artifacts(files, as_location(artifacts_dir) / "ranker" / version,
                                                                 report))
        if run is not None:
            log_run(run, report, files, y, probs, evaluation.with_position, evaluation.oracle_free, data.positions,
                    w, data.tasks)
    return report
