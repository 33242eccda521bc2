"""The ranker job: training set -> encoder, ranker, calibration, evaluation, ONNX export, MLflow."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pinrec.jobs.ranking.config import RankerJobConfig

TASKS = ("save", "closeup")


def test_job_config_validates():
    assert RankerJobConfig().baselines == ("logreg", "dcnmix")
    with pytest.raises(ValueError, match="baselines"):
        RankerJobConfig(baselines=("xgboost",))
    with pytest.raises(ValueError, match="baselines"):
        RankerJobConfig(baselines=("logreg", "logreg"))
    with pytest.raises(ValueError, match="ndcg_k"):
        RankerJobConfig(ndcg_k=0)
    with pytest.raises(ValueError, match="bootstrap_resamples"):
        RankerJobConfig(bootstrap_resamples=-1)
    with pytest.raises(ValueError, match="debias_seeds"):
        RankerJobConfig(debias_seeds=0)
    assert RankerJobConfig().prerank == "logistic"  # the pre-ranker is on by default
    with pytest.raises(ValueError, match="prerank"):
        RankerJobConfig(prerank="lightgbm")
    with pytest.raises(ValueError, match="prerank_iterations"):
        RankerJobConfig(prerank_iterations=0)
    with pytest.raises(ValueError, match="prerank_l2"):
        RankerJobConfig(prerank_l2=-1.0)
    assert RankerJobConfig().user_embeddings == ("closeups",)
    from pinrec.export.serving.embedding_features import USER_EMBEDDINGS
    from pinrec.jobs.ranking.config import USER_EMBEDDING_KINDS
    assert set(USER_EMBEDDING_KINDS.values()) == set(USER_EMBEDDINGS)  # every kind has a column serving knows
    for bad in ((), ("boards",), ("saves", "saves")):
        with pytest.raises(ValueError, match="user_embeddings"):
            RankerJobConfig(user_embeddings=bad)


@pytest.fixture(scope="module")
def trained(spark, tiny_world, tmp_path_factory):
    import importlib.util

    import torch

    from pinrec.jobs.ranking.ranker import train_ranker
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig

    torch.set_num_threads(1)
    cfg, _ = tiny_world
    root = tmp_path_factory.mktemp("ranker")
    baselines = ("logreg", "dcnmix") if importlib.util.find_spec("deepctr_torch") else ("logreg",)
    job = RankerJobConfig(baselines=baselines, baseline_epochs=1, debias_seeds=2, evaluation="full")
    uri = f"sqlite:///{root}/mlflow.db"
    report = train_ranker(spark, cfg.storage.warehouse, RankerConfig(),
                          RankerTrainConfig(epochs=10, batch_size=64, lr=0.01, patience=3, progress=False,
                                            device="cpu"),
                          CalibrationConfig(), job, uri, str(root / "artifacts"), f"{cfg.storage.landing}/_truth")
    print(report.render())  # shown with -s or on failure
    return cfg, report, uri, root


@pytest.mark.spark
@pytest.mark.slow
def test_train_ranker_metrics_and_report(trained):
    _, report, _, _ = trained
    assert report.tasks == TASKS and report.model_version.startswith("ranker-")
    assert set(report.rows_by_split) == {"train", "validation", "test"} and min(report.rows_by_split.values()) > 1000
    assert report.negative_rate == 1.0 and report.epochs_run >= 1 and report.device == "cpu"
    models = {m.model for m in report.metrics}
    assert {"ranker", "ranker (with position)", "oracle", "oracle (position-free)", "ranker, no position",
            "logistic regression"} <= models
    # the position tower learns the examination bias: the likelihood ranks closeups far better than
    # the same model without position (measured 0.58-0.63 vs 0.46-0.48 over three row orders)
    with_position = report.metric("ranker (with position)", "closeup", "auc")
    assert with_position > 0.55 and with_position > report.metric("ranker, no position", "closeup", "auc") + 0.05
    assert report.metric("oracle", "closeup", "auc") > report.metric("ranker (with position)", "closeup", "auc") - 0.05
    # position-free AUCs are not bounded from below here: the tiny world trains on its first day, when no
    # feature view has a row yet, and its test day holds ~30 saves
    for task in TASKS:
        assert 0 < report.metric("ranker", task, "auc") < 1
        assert 0 < report.metric("ranker", task, "ece") < 0.05  # calibrated on validation
        assert 0 < report.metric("ranker", task, "ndcg") <= 1
    assert len(report.debias) == 2 and all(-1 <= d.tau_debiased <= 1 for d in report.debias)
    for d in report.debias:  # the difference's session-bootstrap interval holds the point estimate
        assert d.low <= d.tau_debiased - d.tau_no_position <= d.high and d.verdict in ("closer", "farther", "tie")
        # two training seeds of each model: the taus are their means, the difference each pair's
        assert len(d.seed_differences) == 2 and d.seed_differences[0] != d.seed_differences[1]
        assert np.mean(d.seed_differences) == pytest.approx(d.tau_debiased - d.tau_no_position)
    # every AUC has its session-bootstrap interval; the oracle gaps are paired differences
    for row in report.metrics:
        assert row.auc_low <= row.auc <= row.auc_high, row
    gaps = {(g.model, g.reference, g.task): g for g in report.auc_gaps}
    assert set(gaps) == {(m, r, t) for m, r in (("ranker (with position)", "oracle"), ("ranker", "oracle (position-free)"))
                         for t in TASKS}
    for g in gaps.values():
        expected = report.metric(g.reference, g.task, "auc") - report.metric(g.model, g.task, "auc")
        assert g.gap == pytest.approx(expected) and g.low <= g.gap <= g.high and g.resamples == 200
    text = report.render()
    assert report.model_version in text and "kendall tau" in text and "oracle" in text
    assert "AUC interval" in text and "AUC gap oracle - ranker (with position) (save)" in text


@pytest.mark.spark
@pytest.mark.slow
def test_exported_onnx_reproduces_the_training_path_on_the_test_rows(trained, spark):
    from pinrec.export.build.onnx_ranker import run, session
    from pinrec.export.encoding import FeatureEncoder
    from pinrec.models.metrics import auc

    cfg, report, _, _ = trained
    assert report.onnx_max_abs_diff < 1e-5
    assert set(report.int8_auc_drop) == set(TASKS) and all(abs(d) < 0.05 for d in report.int8_auc_drop.values())
    folder = report.artifacts
    encoder = FeatureEncoder.from_json(Path(folder, "encoder.json").read_text())
    test = (spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set").where("split = 'test'")
            .toArrow().to_pandas())
    batch = encoder.transform(test)
    out = run(session(f"{folder}/ranker.onnx"), batch.categorical, batch.dense)
    for task in TASKS:  # the shipped encoder + ONNX graph give the job's test AUC
        got = auc(test[task].to_numpy(), out[f"p_{task}"], test["sample_weight"].to_numpy())
        # float32 graph vs float64 numpy calibration: a few near-tied pairs may swap (1e-4 ~ 50 of 560k pairs)
        assert got == pytest.approx(report.metric("ranker", task, "auc"), abs=1e-4)
    np.testing.assert_allclose(out["score"], 1.0 * out["p_save"] + 0.3 * out["p_closeup"], rtol=1e-5)
    metrics = json.loads(Path(folder, "metrics.json").read_text())
    assert metrics["model_version"] == report.model_version and len(metrics["metrics"]) == len(report.metrics)


@pytest.mark.spark
@pytest.mark.slow
def test_train_ranker_logs_to_mlflow(trained):
    import mlflow

    _, report, uri, _ = trained
    client = mlflow.MlflowClient(uri)
    run = client.get_run(report.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["model_version"] == report.model_version
    assert run.data.params["ranker_train.epochs"] == "10"
    assert run.data.metrics["test_ranker_auc_closeup"] == pytest.approx(report.metric("ranker", "closeup", "auc"))
    gap = next(g for g in report.auc_gaps if g.model == "ranker (with position)" and g.task == "save")
    assert run.data.metrics["auc_gap_oracle_minus_ranker_with_position_save"] == pytest.approx(gap.gap)
    assert run.data.metrics["auc_gap_oracle_minus_ranker_with_position_save_high"] == pytest.approx(gap.high)
    assert run.data.metrics["test_ranker_auc_low_save"] <= run.data.metrics["test_ranker_auc_save"]
    curve = client.get_metric_history(report.run_id, "val_logloss")
    assert len(curve) == report.epochs_run
    names = {a.path for a in client.list_artifacts(report.run_id, "plots")}
    assert names == {"plots/reliability.png", "plots/ctr_by_position.png"}
    assert {a.path for a in client.list_artifacts(report.run_id, "ranker")} >= {"ranker/ranker.onnx",
                                                                                "ranker/encoder.json"}


def test_fast_evaluation_trains_the_ranker_and_the_prerank_only(tiny_training_set):
    import dataclasses

    import torch

    from pinrec.jobs.ranking.ranker import train_ranker
    from tests.jobs.ranking.training_frames import small_configs

    torch.set_num_threads(1)
    cfg = small_configs(baselines=("logreg",), debias_seeds=2, bootstrap_resamples=20, evaluation="fast")
    job = cfg.job
    assert job.resolved() == dataclasses.replace(job, baselines=(), no_position_twin=False, debias_seeds=1,
                                                 bootstrap_resamples=0, int8=False)
    full = dataclasses.replace(job, evaluation="full")
    assert full.resolved() is full and RankerJobConfig().evaluation == "fast"
    report = train_ranker(tiny_training_set[0], None, cfg.model, cfg.train, cfg.calibration, job, None, None)
    assert {m.model for m in report.metrics} == {"ranker", "ranker (with position)", "pre-ranker"}
    assert report.debias == () and report.auc_gaps == () and all(math.isnan(m.auc_low) for m in report.metrics)


def test_train_ranker_is_its_steps_in_order(tiny_training_set, tmp_path):
    """The pipeline adds nothing to its steps: the same report, field for field, as calling read,
    encode, train, calibrate, evaluate and export one by one (the truth read from parquet there; the
    ONNX export is tested in test_ranker_export.py)."""
    import torch

    from pinrec.jobs.ranking.ranker import train_ranker
    from pinrec.jobs.ranking.ranker_artifacts import report_dict
    from pinrec.jobs.ranking.ranker_encode import encode
    from pinrec.jobs.ranking.ranker_evaluate import evaluate
    from pinrec.jobs.ranking.ranker_export import export
    from pinrec.jobs.ranking.ranker_prerank import MODEL, train_prerank
    from pinrec.jobs.ranking.ranker_read import read
    from pinrec.jobs.ranking.ranker_train import calibrate, train
    from tests.jobs.ranking.training_frames import small_configs

    torch.set_num_threads(1)
    frame, truth = tiny_training_set
    (tmp_path / "truth" / "impressions" / "dt=2026-01-01").mkdir(parents=True)
    truth.to_parquet(tmp_path / "truth" / "impressions" / "dt=2026-01-01" / "part-0.parquet")
    cfg = small_configs(baselines=("logreg",), debias_seeds=2, int8=False)
    report = train_ranker(frame, None, cfg.model, cfg.train, cfg.calibration, cfg.job, None, None,
                          str(tmp_path / "truth"))
    training = read(frame, None, cfg)
    data = encode(training, cfg)
    ranker = calibrate(train(data, cfg.model, cfg.train), data, cfg.calibration)
    prerank = train_prerank(data, cfg)
    evaluation = evaluate(data, ranker, cfg, truth, extra={MODEL: prerank.test})
    steps = export(data, ranker, evaluation, cfg, meta=training.meta, prerank=prerank)

    def fields(r) -> str:  # JSON: NaN (an undefined tau) compares equal to itself there
        return json.dumps({k: v for k, v in report_dict(r).items() if k != "seconds"}, sort_keys=True, default=str)

    assert fields(report) == fields(steps)
    assert len(report.metrics) == 14 and len(report.debias) == 2 and len(report.auc_gaps) == 4
    assert [m.model for m in report.metrics[-2:]] == [MODEL, MODEL] and report.prerank["model"] == "logistic"
    assert report.model_version.startswith("ranker-") and report.seconds > 0 == steps.seconds


@pytest.mark.spark
def test_train_ranker_rejects_a_constant_label(spark, tiny_world):
    from pinrec.jobs.ranking.ranker import train_ranker
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig

    cfg, _ = tiny_world
    frame = spark.read.format("delta").load(f"{cfg.storage.warehouse}/training_set").toArrow().to_pandas()
    frame["closeup"] = 1  # as on MovieLens, where every rating is a closeup
    with pytest.raises(ValueError, match="ranker.tasks=\\[save\\]"):
        train_ranker(frame, None, RankerConfig(), RankerTrainConfig(epochs=1), CalibrationConfig(), RankerJobConfig(),
                     None, None)
    assert math.isfinite(frame["sample_weight"].sum())


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.full  # make test runs torchrun in every trainer's two-process gloo test; the jobs' torchrun tests: test-all
def test_the_job_under_torchrun_trains_on_both_ranks(tiny_world, tmp_path):
    from tests.support.repo import REPO, torchrun

    cfg, _ = tiny_world
    overrides = [f"storage.warehouse={cfg.storage.warehouse}", f"storage.landing={cfg.storage.landing}",
                 f"storage.artifacts={tmp_path / 'artifacts'}", f"storage.mlflow_tracking_uri=sqlite:///{tmp_path}/m.db",
                 "spark.master=local[1]", "spark.shuffle_partitions=1", f"spark.jars_dir={REPO / 'var' / 'jars'}",
                 "ranker_train.epochs=10", "ranker_train.batch_size=64", "ranker_train.lr=0.01",
                 "ranker_train.patience=3", "ranker_train.progress=false",
                 "ranker_train.device=cpu", "ranker_job.baselines=[]", "ranker_job.int8=false",
                 "ranker_job.debias_seeds=1", "ranker_job.bootstrap_resamples=20", "ranker_job.evaluation=full"]
    stdout = torchrun("-m", "pinrec.jobs.orchestration.cli", "ranker", *(a for o in overrides for a in ("--set", o)), timeout=900,
                      env={"SPARK_LOCAL_IP": "127.0.0.1"})
    # rank 1 trained the served ranker and its no-position twin with rank 0; only rank 0 reports
    assert "[ranker] rank 1: trained 2 ranker(s) with rank 0" in stdout
    assert stdout.count("[ranker] ranker ") == 1 and "cpu x 2 ranks (DDP)" in stdout
    (folder,) = (tmp_path / "artifacts" / "ranker").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["model_version"] == folder.name
    assert (folder / "ranker.onnx").exists() and metrics["onnx_max_abs_diff"] < 1e-5
    auc = {(m["model"], m["task"]): m["auc"] for m in metrics["metrics"]}
    # it learned: the position tower ranks closeups (see test_train_ranker_metrics_and_report)
    assert auc[("ranker (with position)", "closeup")] > max(0.55, auc[("ranker, no position", "closeup")] + 0.05)
