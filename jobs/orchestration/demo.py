"""The whole pipeline that exists so far, on the configured dataset (synthetic by default).

generate (or adapt a real dataset) -> ingest every landed day into Delta with validation and
quarantine -> daily feature tables -> the point-in-time training set -> the Pin-Board graph ->
PinSage embeddings (MLflow-tracked) -> the two-tower retrieval model and its pin index -> collaborative
filtering (ALS, the ``cf`` channel) -> the ranker (trained, calibrated, evaluated, ONNX) -> the FAISS index ->
the serving funnel replayed on the candidate -> a serving bundle published behind the blessing gate -> a
warehouse summary. Re-running is safe: the source rewrites the same files
and ingestion replaces the same partitions (the Delta version grows, the row counts do not).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinrec.jobs.config import PinrecConfig, s3_options
from pinrec.jobs.features.training_set import TrainingSetReport
from pinrec.jobs.ingest.ingest import IngestPaths, ingest, landed_days
from pinrec.jobs.ingest.landing import LandingSummary
from pinrec.jobs.ingest.report import IngestReport
from pinrec.jobs.io.tracking import mlflow_artifact_root
from pinrec.jobs.monitoring.summary import WarehouseSummary, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    landing: LandingSummary
    reports: tuple[IngestReport, ...]
    warehouse: WarehouseSummary
    training_set: TrainingSetReport
    ranker: Any
    index: Any
    bundle: Any
    recommendations: dict
    seconds: float
    two_tower: Any = None
    cf: Any = None
    steps: dict[str, float] = field(default_factory=dict)
    report: Path | None = None


class StepTimer:
    """Wall-clock seconds per named step: ``with timed("ranker"): ...``; :meth:`render` is the
    table a run prints at its end (where the time went)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

    def render(self, total: float) -> str:
        """One line per step (in the order they ran) with seconds and share of ``total``, then the total."""
        rows = [f"{name:<26} {s:8.1f} s {100 * s / total if total > 0 else 0.0:5.1f} %"
                for name, s in self.seconds.items()]
        return "\n".join([*rows, f"{'total':<26} {total:8.1f} s"])


def fill_landing(cfg: PinrecConfig) -> LandingSummary:
    """Write the configured source into the landing zone."""
    if cfg.dataset.kind == "synthetic":
        from pinrec.jobs.ingest.synthetic import generate

        return generate(cfg.synthetic, cfg.storage.location("landing"), seed=cfg.seed)
    from pinrec.jobs.ingest.datasets import load_dataset

    return load_dataset(cfg.dataset.kind, cfg.dataset.path, cfg.storage.location("landing"))


def _has_channel(cfg: PinrecConfig) -> bool:
    from pinrec.export.serving.store import Store, read_channel

    return read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name,
                        cfg.publish.channel) is not None


def serve_examples(cfg: PinrecConfig, echo=print, users: int = 3, k: int = 10) -> dict:
    """What a serving team does: load the channel's bundle with the base-install loader and ask
    ``recommend`` for the most active users of the snapshot (and one unknown user)."""
    import numpy as np
    import pyarrow.compute as pc

    from pinrec.export.serving.feature_store import FeatureSnapshot
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender

    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, s3=s3_options(cfg.storage))
    rec = Recommender(bundle, cfg.recommend)
    view = FeatureSnapshot.from_bundle(bundle).view("user")
    ids = np.array([key[0] for key in view.key_tuples()], np.int64)
    saves = pc.fill_null(view.values.column("user__saves_30d"), 0).to_numpy()
    chosen = [int(u) for u in ids[np.lexsort((ids, -saves))[:users]]] + [-1]
    echo(f"[serve] loaded {bundle!r}")
    out = {}
    for user in chosen:
        out[user] = rec.recommend(user, {"surface": "home_feed", "device": "ios", "country": "US"}, k=k)
        shown = ", ".join(f"{r.pin_id}:{r.category}:{r.score:.3f}:{r.channel}" for r in out[user][:6])
        echo(f"[serve] user {user}{' (unknown: cold start)' if user < 0 else ''}: {shown}, ...")
    return out


def run_demo(cfg: PinrecConfig, days_per_batch: int = 0, echo=print) -> DemoResult:
    """Run the pipeline end to end; ``echo`` receives progress lines and, at the end, the seconds
    each step took (:class:`StepTimer`)."""
    from pinrec.jobs.io.spark import get_spark

    start, timed = time.perf_counter(), StepTimer()
    echo(f"[demo] filling the landing zone {cfg.storage.landing} from {cfg.dataset.kind}")
    with timed("landing"):
        landing = fill_landing(cfg)
    days = landed_days(cfg.storage.location("landing"), dt.date.min, dt.date.max)
    echo(f"[demo] {len(days)} day(s) landed: {days[0]} .. {days[-1]}")
    with timed("spark start"):
        spark = get_spark(cfg.spark, cfg.storage.spark_s3)
    paths = IngestPaths(cfg.storage.location("landing"), cfg.storage.warehouse)
    reports: list[IngestReport] = []
    step = days_per_batch if days_per_batch > 0 else len(days)
    with timed("ingest"):
        for i in range(0, len(days), step):
            batch = days[i:i + step]
            for report in ingest(spark, paths, batch, cfg.ingest):
                echo("[ingest] " + report.summary_line())
                reports.append(report)
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.features.training_set import build_training_set

    with timed("features"):
        for table, rows in build_features(spark, cfg.storage.warehouse, days, cfg.features).items():
            echo(f"[features] features_{table:<14} {rows:>9} rows")
    with timed("training set"):
        training = build_training_set(spark, cfg.storage.warehouse, days, cfg.training, cfg.seed)
    echo("[training] " + training.render())
    from pinrec.jobs.graph.graph import evaluation_start, write_graph

    cutoff = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time())
    eval_from = evaluation_start(days, cfg.training.test_days)
    with timed("graph"):
        for table, rows in write_graph(spark, cfg.storage.warehouse, cutoff, eval_from).items():
            echo(f"[graph] {table:<18} {rows:>9} rows")
    from pinrec.jobs.pinsage.pinsage import train_pinsage

    with timed("pinsage"):
        echo("[pinsage] " + train_pinsage(spark, cfg.storage.warehouse, cfg.pinsage, cfg.storage.mlflow_tracking_uri,
                                          artifact_root=mlflow_artifact_root(cfg.storage),
                                          artifacts=cfg.storage.location("artifacts")).render())
    from pinrec.jobs.two_tower.two_tower import train_two_tower

    with timed("two-tower"):
        two_tower = train_two_tower(spark, cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.two_tower,
                                    cfg.index, cfg.storage.mlflow_tracking_uri,
                                    artifact_root=mlflow_artifact_root(cfg.storage))
    echo("[two-tower] " + two_tower.render())
    from pinrec.jobs.cf.cf import train_cf

    # engagement before the test days, as PinSage's training edges: the channel never saw what is evaluated
    with timed("cf"):
        cf = train_cf(spark, cfg.storage.warehouse, cfg.cf, cfg.storage.mlflow_tracking_uri, cutoff=eval_from,
                      artifacts=cfg.storage.location("artifacts"), artifact_root=mlflow_artifact_root(cfg.storage))
    echo("[cf] " + cf.render())
    from pinrec.jobs.ranking.ranker import run_ranker

    with timed("ranker"):
        ranker = run_ranker(spark, cfg)
    echo("[ranker] " + ranker.render())
    from pinrec.jobs.index.pin_index import build_pin_index

    with timed("index"):
        index = build_pin_index(spark, cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.index,
                                cfg.storage.mlflow_tracking_uri, artifact_root=mlflow_artifact_root(cfg.storage))
    echo("[index] " + index.render())
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    with timed("publish (+ funnel replay)"):
        bundle = publish_serving_bundle(spark, cfg)
    if bundle.funnel is not None:  # the candidate's test day replayed through recommend() (funnel.at_publish)
        for line in bundle.funnel.render().splitlines():
            echo("[funnel] " + line)
    echo("[publish] " + bundle.render())
    # a rejected candidate leaves the channel on the previous version: serve that one
    with timed("serve examples"):
        recommendations = serve_examples(cfg, echo) if bundle.promoted or _has_channel(cfg) else {}
    with timed("summary"):
        warehouse = summarize(spark, cfg.storage.warehouse)
    from pinrec.jobs.report import build_report

    with timed("report"):
        report = build_report(cfg, bundle.version, spark=spark)
    echo(f"[report] {report}")
    seconds = time.perf_counter() - start
    for line in timed.render(seconds).splitlines():
        echo("[time] " + line)
    return DemoResult(landing, tuple(reports), warehouse, training, ranker, index, bundle, recommendations,
                      seconds, two_tower, cf=cf, steps=dict(timed.seconds), report=report)
