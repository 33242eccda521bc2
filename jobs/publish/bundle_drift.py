"""The candidate's drift: the candidate ranker's scores and the features of the newest training-set
day against the training window, which the blessing gate judges (``monitoring.at_publish``)."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

log = logging.getLogger("pinrec.jobs.publish.bundle")  # the name it logged under before the split


def ranker_scorer(ranker_dir: str, embeddings=None):
    """``frame -> {task: (N,) calibrated position-free probabilities}`` of the exported ranker in
    ``ranker_dir`` on training-set rows (pandas), with ``embeddings`` (an
    :class:`~pinrec.export.serving.embedding_features.EmbeddingTable`) supplying the embedding features."""
    from pinrec.export.build.onnx_ranker import run, session
    from pinrec.export.encoding import FeatureEncoder
    from pinrec.export.serving.embedding_features import user_embeddings_of
    from pinrec.jobs.ranking.ranker_inputs import with_embeddings

    encoder = FeatureEncoder.from_json(Path(f"{ranker_dir}/encoder.json").read_text())
    sess = session(f"{ranker_dir}/ranker.onnx")
    users = user_embeddings_of(encoder.spec)

    def score(frame) -> dict[str, np.ndarray]:
        batch = encoder.transform(with_embeddings(frame, embeddings, users))
        out = run(sess, batch.categorical, batch.dense)
        return {name[2:]: values for name, values in out.items() if name.startswith("p_")}

    return score


def candidate_drift(spark, cfg, ranker_dir: str, tasks: tuple[str, ...], embeddings=None, catalog=None):
    """The newest training-set day against the training window (:func:`pinrec.jobs.monitoring.monitoring.monitor_drift`)
    with the candidate ranker's scores for ``tasks``; logged to MLflow. Its ``drift_metrics()`` go
    into the manifest, where the blessing gate reads them. ``catalog``: the one it reads
    ``training_set`` and ``impressions`` through (default: one of its own)."""

    from pinrec.jobs.io.tracking import mlflow_artifact_root
    from pinrec.jobs.monitoring.monitoring import monitor_drift

    scorer = ranker_scorer(ranker_dir, embeddings)

    def scores(frame) -> dict[str, np.ndarray]:
        out = scorer(frame)
        return {t: out[t] for t in tasks}

    report = monitor_drift(spark, catalog if catalog is not None else cfg.storage.warehouse,
                           replace(cfg.monitoring, tasks=tasks),
                           maturity_s=cfg.training.maturity_s, scores=scores,
                           tracking_uri=cfg.storage.mlflow_tracking_uri, seed=cfg.seed,
                           max_feature_drift=cfg.blessing.max_feature_drift,
                           max_category_psi=cfg.blessing.max_category_psi,
                           category_psi_noise_factor=cfg.blessing.category_psi_noise_factor,
                           artifact_root=mlflow_artifact_root(cfg.storage))
    log.info("[publish] %s", report.render())
    return report
