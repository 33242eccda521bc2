"""Train, calibrate, evaluate and export the DCN-v2 + MMoE ranker from the point-in-time training set.

:func:`train_ranker` runs six steps, each a function with typed inputs and outputs:

1. read (:mod:`~pinrec.jobs.ranking.ranker_read`): ``<warehouse>/training_set`` at its current Delta
   version (pinned; the commit's ``userMetadata`` gives ``negative_rate`` and the input versions) into
   pandas through Arrow, or a ready pandas/pyarrow frame (``negative_rate`` then follows from
   ``sample_weight``) -> ``TrainingSet``;
2. encode (:mod:`~pinrec.jobs.ranking.ranker_encode`): fit the :class:`~pinrec.export.encoding.FeatureEncoder`
   on the ``train`` split only and encode all splits -> ``EncodedData``;
3. train (:mod:`~pinrec.jobs.ranking.ranker_train`): :class:`~pinrec.models.ranker.Ranker` (DCN-v2, Wang et al.
   2021, + MMoE, Ma et al. 2018) with :class:`~pinrec.models.ranker_trainer.RankerTrainer` (CUDA when there
   is one), every epoch's metrics to MLflow -> ``TrainedRanker``;
4. calibrate: each task on ``validation`` (Platt or isotonic, :mod:`pinrec.models.calibration`); final
   score = sum_t w_t P(task t) -> ``CalibratedRanker``;
5. evaluate (:mod:`~pinrec.jobs.ranking.ranker_evaluate`) on ``test``: AUC, log-loss, ECE, NDCG@k per
   session for the ranker (calibrated, position-free: as served), the ranker's with-position
   likelihood, a twin trained without the position feature, the baselines, and on the synthetic
   world the oracle (``truth_dir`` = ``<landing>/_truth``) with the Kendall-tau debiasing comparison;
   every AUC with a session-bootstrap interval, and the oracle's AUC minus the ranker's and the
   debiased model's tau minus the twin's, each with the interval of that paired difference
   (``bootstrap_resamples``; the tau comparison trains ``debias_seeds`` pairs and resamples them
   too, since one pair's difference is mostly training noise); before it, with ``ranker_job.prerank``,
   the pre-ranker (:mod:`~pinrec.jobs.ranking.ranker_prerank`: logistic regression on the features serving
   precomputes, calibrated like the ranker) is trained and scored as the model ``pre-ranker`` -> ``Evaluation``;
6. export (:mod:`~pinrec.jobs.ranking.ranker_export`): ONNX (calibration inside) and int8 into
   ``<artifacts>/ranker/<model_version>/`` with the encoder and calibration JSON, ``prerank.onnx``
   (with the pre-ranker) and ``metrics.json``;
   the ONNX outputs are checked against the training path on the test rows, the int8 AUC drop is
   measured there; the MLflow record -> :class:`~pinrec.jobs.ranking.ranker_report.RankerReport`.

``model_version`` = ``ranker-`` + a content hash of the weights, the encoder and the configs.

Under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli ranker``) rank 0
runs all of the above and every rank trains each ranker with it (:mod:`pinrec.jobs.ranking.ranker_ddp`).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pinrec.jobs.io.lake import Location

from .config import RankerJobConfig
from .ranker_configs import RankerConfigs
from .ranker_encode import encode
from .ranker_inputs import read_training_set, read_truth
from .ranker_read import read
from .ranker_report import RankerReport

if TYPE_CHECKING:  # torch-free at import time: pinrec.jobs.config imports RankerJobConfig
    from pinrec.jobs.io.tracking import ArtifactRoot
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig

__all__ = ["RankerReport", "read_training_set", "read_truth", "run_job", "run_ranker", "train_ranker"]


def train_ranker(source, warehouse, model_cfg: RankerConfig, train_cfg: RankerTrainConfig,
                 calibration_cfg: CalibrationConfig, job: RankerJobConfig, tracking_uri: str | None,
                 artifacts_dir: str | Location | None, truth_dir: str | Location | None = None, embeddings=None, *,
                 artifact_root: ArtifactRoot | None = None) -> RankerReport:
    """Read, encode, train, calibrate, evaluate and export (module docstring). ``source``: a SparkSession
    (with ``warehouse``: a path, Location or :class:`~pinrec.jobs.io.catalog.Catalog`) or a ready
    pandas/pyarrow frame (``warehouse`` None); ``tracking_uri`` None logs nothing;
    ``artifacts_dir`` None exports nothing; ``truth_dir`` (the synthetic world's ``<landing>/_truth``)
    adds the oracle rows and the Kendall-tau comparison; ``embeddings`` (an
    :class:`~pinrec.export.serving.embedding_features.EmbeddingTable`) adds the embedding features;
    ``artifact_root``: the MLflow experiment's artifact root if the run creates it."""
    from .ranker_evaluate import evaluate
    from .ranker_export import epoch_logger, export, open_run
    from .ranker_prerank import MODEL, train_prerank
    from .ranker_train import calibrate, train

    started = time.perf_counter()
    cfg = RankerConfigs(model_cfg, train_cfg, calibration_cfg, job.resolved())
    version = None if embeddings is None else embeddings.version
    training = read(source, warehouse, cfg, embeddings)
    data = encode(training, cfg, embeddings)
    with open_run(tracking_uri, cfg, data, training.meta, version, artifact_root) as run:
        ranker = calibrate(train(data, model_cfg, train_cfg, hook=epoch_logger(run)), data, calibration_cfg)
        prerank = train_prerank(data, cfg)
        evaluation = evaluate(data, ranker, cfg, read_truth(truth_dir) if truth_dir else None,
                              extra={MODEL: prerank.test} if prerank is not None else None)
        return export(data, ranker, evaluation, cfg, meta=training.meta, embedding_version=version or "",
                      artifacts_dir=artifacts_dir, run=run, started=started, prerank=prerank)


def run_ranker(spark, cfg, catalog=None) -> RankerReport:
    """:func:`train_ranker` with the sections of a :class:`~pinrec.jobs.config.PinrecConfig` (the CLI, DAG and
    demo entry point); the synthetic world's truth is used for the oracle rows when it exists. ``catalog``:
    the :class:`~pinrec.jobs.io.catalog.Catalog` every table (``training_set``, ``pin_embeddings``) is read
    through (default: one of its own), so that a caller sees what the job read (the step cache checks it)."""
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    catalog = catalog if catalog is not None else Catalog(spark, cfg.storage.warehouse)
    truth = cfg.storage.location("landing") / "_truth"
    if cfg.dataset.kind != "synthetic" or not truth.is_dir():
        truth = None
    table = None
    if cfg.ranker_job.embeddings:
        from pinrec.export.serving.embedding_features import EmbeddingTable
        from pinrec.jobs.index.pin_index import read_embeddings

        if catalog.exists("pin_embeddings"):
            ids, vectors, version, _ = read_embeddings(spark, catalog)
            table = EmbeddingTable(ids, vectors, version)
    return train_ranker(spark, catalog, cfg.ranker, cfg.ranker_train, cfg.calibration, cfg.ranker_job,
                        cfg.storage.mlflow_tracking_uri, cfg.storage.location("artifacts"), truth, embeddings=table,
                        artifact_root=mlflow_artifact_root(cfg.storage))


def run_job(cfg, echo=print) -> RankerReport | None:
    """:func:`run_ranker` with a Spark session from ``cfg.spark``, alone or as one rank under
    torchrun (:mod:`pinrec.jobs.ranking.ranker_ddp`): rank 0 runs the job and returns its report; any other rank
    trains each ranker with it and returns None. ``echo`` gets the report (or what a rank trained).
    ``pinrec ranker`` comes here, alone or under torchrun."""
    from pinrec.jobs.io.distributed import process_group
    from pinrec.jobs.io.spark import job_spark

    from .ranker_ddp import follow, release
    from .ranker_train import train

    with process_group() as rank:
        if rank > 0:
            echo(f"[ranker] rank {rank}: trained {follow(train)} ranker(s) with rank 0")
            return None
        report = run_ranker(job_spark(cfg), cfg)
        release()  # not after a failure: rank 0 exits and torchrun stops the ranks waiting on it
    echo("[ranker] " + report.render())
    return report
