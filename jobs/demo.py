"""The whole pipeline that exists so far, on the configured dataset (synthetic by default).

generate (or adapt a real dataset) -> ingest every landed day into Delta with validation and
quarantine -> daily feature tables -> the point-in-time training set -> the Pin-Board graph ->
PinSage embeddings (MLflow-tracked) -> the ranker (trained, calibrated, evaluated, ONNX) -> the
FAISS index -> a serving bundle published behind the blessing gate -> a warehouse summary. Re-running is safe: the source rewrites the same files
and ingestion replaces the same partitions (the Delta version grows, the row counts do not).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from .config import PinrecConfig
from .ingest import IngestPaths, ingest, landed_days
from .landing import LandingSummary
from .report import IngestReport
from .summary import WarehouseSummary, summarize
from .training_set import TrainingSetReport

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
    seconds: float


def fill_landing(cfg: PinrecConfig) -> LandingSummary:
    """Write the configured source into the landing zone."""
    if cfg.dataset.kind == "synthetic":
        from .synthetic import generate

        return generate(cfg.synthetic, cfg.storage.landing, seed=cfg.seed)
    from .datasets import load_dataset

    return load_dataset(cfg.dataset.kind, cfg.dataset.path, cfg.storage.landing)


def run_demo(cfg: PinrecConfig, days_per_batch: int = 0, echo=print) -> DemoResult:
    """Run the pipeline end to end; ``echo`` receives progress lines."""
    from .spark import get_spark

    start = time.perf_counter()
    echo(f"[demo] filling the landing zone {cfg.storage.landing} from {cfg.dataset.kind}")
    landing = fill_landing(cfg)
    days = landed_days(cfg.storage.landing, dt.date.min, dt.date.max)
    echo(f"[demo] {len(days)} day(s) landed: {days[0]} .. {days[-1]}")
    spark = get_spark(cfg.spark)
    paths = IngestPaths(cfg.storage.landing, cfg.storage.warehouse)
    reports: list[IngestReport] = []
    step = days_per_batch if days_per_batch > 0 else len(days)
    for i in range(0, len(days), step):
        batch = days[i:i + step]
        for report in ingest(spark, paths, batch, cfg.ingest):
            echo("[ingest] " + report.summary_line())
            reports.append(report)
    from .features import build_features
    from .training_set import build_training_set

    for table, rows in build_features(spark, cfg.storage.warehouse, days, cfg.features).items():
        echo(f"[features] features_{table:<14} {rows:>9} rows")
    training = build_training_set(spark, cfg.storage.warehouse, days, cfg.training, cfg.seed)
    echo("[training] " + training.render())
    from .graph import write_graph

    cutoff = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time())
    for table, rows in write_graph(spark, cfg.storage.warehouse, cutoff, cutoff - dt.timedelta(days=1)).items():
        echo(f"[graph] {table:<18} {rows:>9} rows")
    from .pinsage import train_pinsage

    echo("[pinsage] " + train_pinsage(spark, cfg.storage.warehouse, cfg.pinsage,
                                      cfg.storage.mlflow_tracking_uri).render())
    from .ranker import run_ranker

    ranker = run_ranker(spark, cfg)
    echo("[ranker] " + ranker.render())
    from .pin_index import build_pin_index

    index = build_pin_index(spark, cfg.storage.warehouse, cfg.storage.artifacts, cfg.index,
                            cfg.storage.mlflow_tracking_uri)
    echo("[index] " + index.render())
    from .bundle import publish_serving_bundle

    bundle = publish_serving_bundle(spark, cfg)
    echo("[publish] " + bundle.render())
    warehouse = summarize(spark, cfg.storage.warehouse)
    return DemoResult(landing, tuple(reports), warehouse, training, ranker, index, bundle, time.perf_counter() - start)
