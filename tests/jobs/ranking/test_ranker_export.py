"""The ranker job's export step: the report from the earlier steps' results, the content-hashed
model version, and the ONNX export published with ``metrics.json``."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from pinrec.jobs.ranking.ranker_encode import encode
from pinrec.jobs.ranking.ranker_evaluate import evaluate
from pinrec.jobs.ranking.ranker_export import epoch_logger, export, open_run
from pinrec.jobs.ranking.ranker_read import TrainingSet
from pinrec.jobs.ranking.ranker_train import calibrate, train
from tests.jobs.ranking.training_frames import TASKS, small_configs


@pytest.fixture(scope="module")
def steps(tiny_training_set):
    import torch

    torch.set_num_threads(1)
    cfg = small_configs(no_position_twin=False, int8=False)
    data = encode(TrainingSet(tiny_training_set[0], {"input_versions": {"impressions": 3}}), cfg)
    ranker = calibrate(train(data, cfg.model, cfg.train), data, cfg.calibration)
    return cfg, data, ranker, evaluate(data, ranker, cfg)


def test_export_without_artifacts_or_run_reports_the_steps_results(steps):
    cfg, data, ranker, evaluation = steps
    report = export(data, ranker, evaluation, cfg, meta={"input_versions": {"impressions": 3}})
    assert report.model_version.startswith("ranker-") and len(report.model_version) == len("ranker-") + 16
    assert (report.tasks, report.rows_by_split, report.negative_rate) == (TASKS, data.rows_by_split, 1.0)
    assert (report.best_epoch, report.epochs_run) == (ranker.trained.result.best_epoch,
                                                      len(ranker.trained.result.history))
    assert report.metrics == evaluation.metrics and report.debias == () and report.auc_gaps == ()
    assert report.input_versions == {"impressions": 3} and report.device == "cpu" and report.world_size == 1
    assert math.isnan(report.onnx_max_abs_diff) and report.artifacts == "" and report.run_id is None
    assert report.seconds == 0.0 and report.int8_auc_drop == {}
    # the version hashes the weights, the encoder and the configs: a config change changes it
    assert export(data, ranker, evaluation, cfg, meta={}).model_version == report.model_version
    other = replace(cfg, calibration=replace(cfg.calibration, score_weights=(1.0, 0.5)))
    assert export(data, ranker, evaluation, other, meta={}).model_version != report.model_version


def test_export_publishes_the_onnx_model_checked_on_the_test_rows(steps, tmp_path):
    cfg, data, ranker, evaluation = steps
    report = export(data, ranker, evaluation, cfg, meta={}, embedding_version="", artifacts_dir=str(tmp_path),
                    started=0.0)
    folder = tmp_path / "ranker" / report.model_version
    assert report.artifacts == str(folder) and report.onnx_max_abs_diff < 1e-5 and report.seconds > 0
    assert sorted(p.name for p in folder.iterdir()) == ["calibration.json", "encoder.json", "metrics.json",
                                                        "ranker.onnx"]  # no int8 with ranker_job.int8=false
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model_version"] == report.model_version and len(metrics["metrics"]) == 4


def test_no_tracking_uri_opens_no_run(steps):
    cfg, data, _, _ = steps
    with open_run(None, cfg, data, {}) as run:
        assert run is None and epoch_logger(run) is None
