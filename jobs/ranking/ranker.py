"""Train, calibrate, evaluate and export the DCN-v2 + MMoE ranker from the point-in-time training set.

1. read ``<warehouse>/training_set`` at its current Delta version (pinned; the commit's
   ``userMetadata`` gives ``negative_rate`` and the input versions) into pandas through Arrow, or
   take a ready pandas/pyarrow frame (``negative_rate`` then follows from ``sample_weight``);
2. fit the :class:`~pinrec.export.encoding.FeatureEncoder` on the ``train`` split only and encode all splits;
3. train :class:`~pinrec.models.ranker.Ranker` with :class:`~pinrec.models.ranker_trainer.RankerTrainer` (CUDA when
   there is one), every epoch's metrics to MLflow; calibrate each task on ``validation``
   (Platt or isotonic, :mod:`pinrec.models.calibration`); final score = sum_t w_t P(task t);
4. evaluate on ``test`` (:mod:`pinrec.jobs.ranking.ranker_eval`): AUC, log-loss, ECE, NDCG@k per session for the
   ranker (calibrated, position-free: as served), the ranker's with-position likelihood, a twin
   trained without the position feature, the baselines, and on the synthetic world the oracle
   (``truth_dir`` = ``<landing>/_truth``) with the Kendall-tau debiasing comparison; every AUC
   with a session-bootstrap interval, and the oracle's AUC minus the ranker's and the debiased
   model's tau minus the twin's, each with the interval of that paired difference
   (``bootstrap_resamples``; the tau comparison trains ``debias_seeds`` pairs and resamples
   them too, since one pair's difference is mostly training noise);
5. export ONNX (calibration inside) and int8 into ``<artifacts>/ranker/<model_version>/`` with the
   encoder and calibration JSON and ``metrics.json``; the ONNX outputs are checked against the
   training path on the test rows, the int8 AUC drop is measured there.

``model_version`` = ``ranker-`` + a content hash of the weights, the encoder and the configs.

Under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.ranking.ranker``) rank 0
runs all of the above and every rank trains each ranker with it (:mod:`pinrec.jobs.ranking.ranker_ddp`).
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pinrec.jobs.io.lake import Location, as_location

from .config import USER_EMBEDDING_KINDS, RankerJobConfig
from .ranker_artifacts import export_onnx, log_run, model_version, publish_artifacts
from .ranker_inputs import (
    infer_negative_rate,
    needed_columns,
    read_training_set,
    read_truth,
    with_embeddings,
)

if TYPE_CHECKING:  # torch-free at import time: pinrec.jobs.config imports RankerJobConfig
    from pinrec.jobs.io.tracking import ArtifactRoot
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig

    from .ranker_eval import AucGap, DebiasComparison, MetricRow

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class RankerReport:
    model_version: str
    tasks: tuple[str, ...]
    rows_by_split: dict[str, int]
    negative_rate: float
    best_epoch: int
    epochs_run: int
    device: str
    metrics: tuple[MetricRow, ...]
    debias: tuple[DebiasComparison, ...] = ()
    auc_gaps: tuple[AucGap, ...] = ()
    int8_auc_drop: dict[str, float] = field(default_factory=dict)
    onnx_max_abs_diff: float = math.nan
    artifacts: str = ""
    input_versions: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    seconds: float = 0.0
    embedding_version: str = ""
    world_size: int = 1

    def metric(self, model: str, task: str, name: str) -> float:
        for row in self.metrics:
            if row.model == model and row.task == task:
                return getattr(row, name)
        raise KeyError(f"no metrics for model {model!r} and task {task!r}")

    def render(self) -> str:
        from .ranker_eval import render_table

        splits = ", ".join(f"{k}={v}" for k, v in sorted(self.rows_by_split.items()))
        lines = [(f"ranker           {self.model_version}; rows ({splits}); negative_rate={self.negative_rate}; "
                  f"best epoch {self.best_epoch} of {self.epochs_run}; {self.device}"
                  + (f" x {self.world_size} ranks (DDP)" if self.world_size > 1 else "") + f"; {self.seconds:.1f} s"
                  + (f"; embedding features from {self.embedding_version}" if self.embedding_version else "")),
                 "", render_table(self.metrics)]
        lines += [d.render() for d in self.debias]
        lines += [g.render() for g in self.auc_gaps]
        if not math.isnan(self.onnx_max_abs_diff):
            lines.append(f"onnx vs torch on the test rows: max |diff| = {self.onnx_max_abs_diff:.2e}")
        for task, drop in self.int8_auc_drop.items():
            lines.append(f"int8 AUC drop ({task}): {drop:+.5f}")
        if self.artifacts:
            lines.append(f"artifacts: {self.artifacts}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- training
def _train(encoded, labels, weights, enc, model_cfg, train_cfg, negative_rate, hook=None, position=True):
    """Seeded Ranker + trainer fitted on train/validation; ``position=False`` zeroes the position
    (index 0 = unknown) in every split, so the position tower is a constant."""
    import numpy as np
    import torch

    from pinrec.models.ranker import Ranker
    from pinrec.models.ranker_trainer import RankerData, RankerTrainer

    from .ranker_ddp import announce

    announce(encoded, labels, weights, enc, model_cfg, train_cfg, negative_rate, position)  # torchrun: all ranks train
    data = {}
    for s in SPLITS:
        batch = encoded[s] if position else type(encoded[s])(encoded[s].categorical, encoded[s].dense,
                                                              np.zeros_like(encoded[s].position))
        data[s] = RankerData.from_batch(batch, labels[s], weights[s])
    torch.manual_seed(train_cfg.seed)
    model = Ranker(enc.cardinalities, len(enc.dense_names), enc.num_positions, model_cfg)
    trainer = RankerTrainer(model, train_cfg, on_epoch_end=hook)
    with tempfile.TemporaryDirectory() as tmp:
        result = trainer.fit(data["train"], data["validation"], negative_rate, checkpoint=os.path.join(tmp, "ckpt.pt"))
    return trainer, result, data


def train_ranker(source, warehouse: str | None, model_cfg: RankerConfig, train_cfg: RankerTrainConfig,
                 calibration_cfg: CalibrationConfig, job: RankerJobConfig, tracking_uri: str | None,
                 artifacts_dir: str | Location | None, truth_dir: str | Location | None = None, embeddings=None, *,
                 artifact_root: ArtifactRoot | None = None) -> RankerReport:
    """Read, fit, calibrate, evaluate, export and log (module docstring). ``tracking_uri`` None
    logs nothing; ``artifacts_dir`` None exports nothing; ``truth_dir`` (the synthetic world's
    ``<landing>/_truth``) adds the oracle rows and the Kendall-tau comparison; ``embeddings``
    (an :class:`~pinrec.export.serving.embedding_features.EmbeddingTable`) adds the embedding features;
    ``artifact_root``: the MLflow experiment's artifact root if the run creates it."""
    import numpy as np

    from pinrec.export.encoding import FeatureEncoder, training_set_spec
    from pinrec.jobs.io.distributed import world_size
    from pinrec.jobs.io.tracking import tracked_run
    from pinrec.models.calibration import fit_calibration

    from . import ranker_eval as ev

    start = time.perf_counter()
    tasks = tuple(model_cfg.tasks)
    from pinrec.export.serving.embedding_features import PIN_EMBEDDING, USER_EMBEDDINGS

    users = tuple(USER_EMBEDDING_KINDS[k] for k in job.user_embeddings)
    columns = needed_columns(training_set_spec(ids=job.id_features, max_position=job.max_position), tasks)
    if embeddings is not None:
        columns = list(dict.fromkeys([*columns, "pin_id", *(USER_EMBEDDINGS[u] for u in users)]))
    spec = training_set_spec(ids=job.id_features, max_position=job.max_position,
                             embeddings=None if embeddings is None else
                             {PIN_EMBEDDING: embeddings.dim, **{u: embeddings.dim for u in users}})
    frame, meta = read_training_set(source, warehouse, columns)
    frames = {s: frame[frame["split"] == s].reset_index(drop=True) for s in SPLITS}
    empty = [s for s in SPLITS if frames[s].empty]
    if empty:
        raise ValueError(f"the training set has no rows in split(s) {empty}")
    for s in ("train", "validation"):
        for task in tasks:
            if frames[s][task].nunique() < 2:
                raise ValueError(f"task {task!r} has one label value only in the {s} split (on MovieLens every "
                                 f"rating is a closeup): set ranker.tasks=[save] and calibration.score_weights=[1.0]")
    negative_rate = float(meta.get("negative_rate") or infer_negative_rate(frame, tasks))
    inputs = {s: with_embeddings(frames[s], embeddings, users) for s in SPLITS}
    enc = FeatureEncoder(spec).fit(inputs["train"])
    encoded = {s: enc.transform(inputs[s]) for s in SPLITS}
    del inputs
    labels = {s: frames[s][list(tasks)].to_numpy(np.float32) for s in SPLITS}
    weights = {s: frames[s]["sample_weight"].to_numpy(np.float32) for s in SPLITS}
    configs = {"ranker": asdict(model_cfg), "ranker_train": asdict(train_cfg),
               "calibration": asdict(calibration_cfg), "ranker_job": asdict(job)}
    params = {**configs, "negative_rate": negative_rate, "rows": {s: len(frames[s]) for s in SPLITS},
              "input_versions": meta.get("input_versions", {}), "training_set_version": meta.get("training_set_version"),
              "encoder": {"categorical": len(enc.cardinalities), "dense": len(enc.dense_names)},
              "embedding_version": None if embeddings is None else embeddings.version, "world_size": world_size()}
    track = tracked_run(tracking_uri, job.experiment, "ranker", params, {"job": "ranker"}, artifact_root=artifact_root) \
        if tracking_uri else contextlib.nullcontext()
    with track as run:
        hook = None if run is None else (lambda epoch, m: run.log_metrics(m, step=epoch))
        trainer, result, data = _train(encoded, labels, weights, enc, model_cfg, train_cfg, negative_rate, hook)
        cal = fit_calibration(trainer.predict_logits(data["validation"]), labels["validation"], tasks,
                              calibration_cfg, weights["validation"])
        test, y, w = frames["test"], labels["test"], weights["test"]
        sessions = test["session_id"].to_numpy()
        free_logits = trainer.predict_logits(data["test"])
        probs = cal.apply(free_logits)
        with_pos = 1 / (1 + np.exp(-trainer.predict_logits(data["test"], with_position=True).astype(np.float64)))

        scored: dict[str, np.ndarray] = {}

        def rows(name, p):
            scored[name] = p
            return ev.task_metrics(name, y, p, tasks, sessions, w, job.ece_bins, job.ndcg_k)

        metrics = rows("ranker", probs) + rows("ranker (with position)", with_pos)
        oracle_free = None
        if truth_dir:
            oracle_obs, oracle_free = ev.oracle_probabilities(read_truth(truth_dir), test["event_id"], tasks)
            metrics += rows("oracle", oracle_obs) + rows("oracle (position-free)", oracle_free)
        debias: list = []
        if job.no_position_twin:
            def served(seed: int, position: bool):
                """Calibrated position-free test probabilities of a ranker trained with ``seed``."""
                model, _, split = _train(encoded, labels, weights, enc, model_cfg, replace(train_cfg, seed=seed),
                                         negative_rate, position=position)
                fitted = fit_calibration(model.predict_logits(split["validation"]), labels["validation"], tasks,
                                         calibration_cfg, weights["validation"])
                return fitted.apply(model.predict_logits(split["test"]))

            twin_probs = served(train_cfg.seed, position=False)
            metrics += rows("ranker, no position", twin_probs)
            if oracle_free is not None:
                extra = range(train_cfg.seed + 1, train_cfg.seed + job.debias_seeds)
                debiased = np.stack([probs, *(served(s, True) for s in extra)])
                no_position = np.stack([twin_probs, *(served(s, False) for s in extra)])
                debias = ev.debias_comparison(oracle_free, debiased, no_position, tasks, sessions,
                                              job.bootstrap_resamples, seed=train_cfg.seed)
        device = str(trainer.device)
        for name in job.baselines:
            if name == "logreg":
                p = ev.logistic_baseline(encoded["train"], labels["train"], encoded["test"], enc.cardinalities,
                                         weights["train"], seed=train_cfg.seed)
            else:
                p = ev.dcnmix_baseline(encoded["train"], labels["train"], encoded["test"], enc.cardinalities,
                                       job.baseline_epochs, train_cfg.batch_size, model_cfg.embedding_dim,
                                       train_cfg.seed, "cuda:0" if device.startswith("cuda") else "cpu")
            metrics += rows({"logreg": "logistic regression", "dcnmix": "deepctr DCNMix"}[name], p)
        gaps: list = []
        if job.bootstrap_resamples:
            pairs = [("ranker (with position)", "oracle"), ("ranker", "oracle (position-free)")] if truth_dir else []
            metrics, gaps = ev.auc_intervals(metrics, y, scored, tasks, sessions, w, pairs, job.bootstrap_resamples,
                                             seed=train_cfg.seed)
        version = model_version(trainer.model, enc, configs)
        report = RankerReport(version, tasks, {s: len(frames[s]) for s in SPLITS}, negative_rate, result.best_epoch,
                              len(result.history), device, tuple(metrics), tuple(debias), tuple(gaps),
                              input_versions=meta.get("input_versions", {}), run_id=None if run is None else run.run_id,
                              embedding_version="" if embeddings is None else embeddings.version,
                              world_size=world_size())
        with tempfile.TemporaryDirectory() as tmp:
            files, extra = export_onnx(trainer, cal, enc, result, version, encoded, y, w, probs, tmp, job,
                                       report.embedding_version) \
                if artifacts_dir else ({}, {})
            report = replace(report, **extra, seconds=time.perf_counter() - start)
            if artifacts_dir:
                target = as_location(artifacts_dir) / "ranker" / version
                report = replace(report, artifacts=publish_artifacts(files, target, report))
            if run is not None:
                log_run(run, report, files, y, probs, with_pos, oracle_free, test["position"].to_numpy(), w, tasks)
    return report


def run_ranker(spark, cfg) -> RankerReport:
    """:func:`train_ranker` with the sections of a :class:`~pinrec.jobs.config.PinrecConfig` (the CLI, DAG and
    demo entry point); the synthetic world's truth is used for the oracle rows when it exists."""
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    truth = cfg.storage.location("landing") / "_truth"
    if cfg.dataset.kind != "synthetic" or not truth.is_dir():
        truth = None
    table = None
    if cfg.ranker_job.embeddings:
        from pinrec.export.serving.embedding_features import EmbeddingTable
        from pinrec.jobs.index.pin_index import read_embeddings
        from pinrec.jobs.io.catalog import Catalog

        if Catalog(spark, cfg.storage.warehouse).exists("pin_embeddings"):
            ids, vectors, version, _ = read_embeddings(spark, cfg.storage.warehouse)
            table = EmbeddingTable(ids, vectors, version)
    return train_ranker(spark, cfg.storage.warehouse, cfg.ranker, cfg.ranker_train, cfg.calibration, cfg.ranker_job,
                        cfg.storage.mlflow_tracking_uri, cfg.storage.location("artifacts"), truth, embeddings=table,
                        artifact_root=mlflow_artifact_root(cfg.storage))


def run_job(cfg, echo=print) -> RankerReport | None:
    """:func:`run_ranker` with a Spark session from ``cfg.spark``, alone or as one rank under
    torchrun (:mod:`pinrec.jobs.ranking.ranker_ddp`): rank 0 runs the job and returns its report; any other rank
    trains each ranker with it and returns None. ``echo`` gets the report (or what a rank trained).
    ``pinrec ranker`` and ``python -m pinrec.jobs.ranking.ranker`` both come here."""
    from pinrec.jobs.io.distributed import process_group
    from pinrec.jobs.io.spark import get_spark

    from .ranker_ddp import follow, release

    with process_group() as rank:
        if rank > 0:
            echo(f"[ranker] rank {rank}: trained {follow(_train)} ranker(s) with rank 0")
            return None
        report = run_ranker(get_spark(cfg.spark, cfg.storage.spark_s3), cfg)
        release()  # not after a failure: rank 0 exits and torchrun stops the ranks waiting on it
    echo("[ranker] " + report.render())
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m pinrec.jobs.ranking.ranker [--config FILE] [--set section.key=value ...]``, alone or under
    torchrun (:func:`run_job`)."""
    import argparse

    from pinrec.jobs.config import load_config, parse_overrides

    parser = argparse.ArgumentParser(prog="pinrec.jobs.ranking.ranker", description=__doc__.splitlines()[0],
                                     epilog="Under torchrun (python -m torch.distributed.run --nproc_per_node=K "
                                            "-m pinrec.jobs.ranking.ranker ...) rank 0 reads, evaluates, exports and logs, and "
                                            "every rank trains.")
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    run_job(load_config(args.config, parse_overrides(args.set)), echo=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
