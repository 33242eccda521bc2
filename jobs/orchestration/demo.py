"""The whole pipeline that exists so far, on the configured dataset (synthetic by default).

generate (or adapt a real dataset) -> ingest every landed day into Delta with validation and
quarantine -> daily feature tables -> the point-in-time training set -> the Pin-Board graph ->
PinSage embeddings (MLflow-tracked) -> the two-tower retrieval model and its pin index -> collaborative
filtering (ALS, the ``cf`` channel) -> the ranker (trained, calibrated, evaluated, ONNX) -> the FAISS index ->
the serving funnel replayed on the candidate -> a serving bundle published behind the blessing gate -> a
warehouse summary. Re-running is safe and cheap: every step goes through the step cache
(:mod:`pinrec.jobs.orchestration.step_cache`), so an unchanged rerun reuses every output, a new
landed day recomputes that day and what depends on it, and a forced or uncached step replaces the
same partitions (the Delta version grows, the row counts do not).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinrec.jobs.config import PinrecConfig, SparkConfig, s3_options
from pinrec.jobs.features.holdout import resolve_for
from pinrec.jobs.features.training_set import TrainingSetReport
from pinrec.jobs.ingest.dataset_info import partition_granularity
from pinrec.jobs.ingest.days import event_days, landed_partitions
from pinrec.jobs.ingest.landing import LandingSummary
from pinrec.jobs.ingest.report import IngestReport
from pinrec.jobs.monitoring.summary import WarehouseSummary
from pinrec.jobs.publish.online_features import export_bundle_features

from .cached_steps import fill_landing

__all__ = ["DemoResult", "StepTimer", "fill_landing", "run_demo", "serve_examples"]

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
    cache: Any = None  # the run's StepCache: which steps were reused (skipped) and which ran
    report: Path | None = None


class StepTimer:
    """Wall-clock seconds per named step: ``with timed("ranker"): ...``; :meth:`render` is the
    table a run prints at its end (where the time went). Steps are listed in the order they started;
    ``beside`` names the steps that ran beside others (their seconds overlap theirs)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.beside: dict[str, str] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.seconds.setdefault(name, 0.0)
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t

    def start_beside(self, name: str, others: str) -> None:
        """List ``name`` here (before ``others``, which it runs beside in another thread)."""
        self.seconds.setdefault(name, 0.0)
        self.beside[name] = others

    def render(self, total: float) -> str:
        """One line per step (in the order they started) with seconds and share of ``total``, then the total."""
        rows = [f"{name:<26} {s:8.1f} s {100 * s / total if total > 0 else 0.0:5.1f} %"
                + (f"  (beside {self.beside[name]})" if name in self.beside else "")
                for name, s in self.seconds.items()]
        return "\n".join([*rows, f"{'total':<26} {total:8.1f} s"])


def _has_channel(cfg: PinrecConfig) -> bool:
    from pinrec.export.serving.store import Store, read_channel

    return read_channel(Store(cfg.bundle_store_uri, s3_options(cfg.storage)), cfg.publish.name,
                        cfg.publish.channel) is not None


def serve_examples(cfg: PinrecConfig, echo=print, users: int = 3, k: int = 10) -> dict:
    """What a serving team does: load the channel's bundle with the base-install loader and ask
    ``recommend`` for the most active users of the snapshot (and one unknown user)."""
    import numpy as np
    import pyarrow.compute as pc

    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
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


#: The heavy modules the steps import, in the order they first need them: about 15 s of imports on this
#: 2-core machine, which :func:`preload_imports` moves beside the landing step and ingest's Spark jobs.
PRELOAD = ("great_expectations", "torch", "torch_geometric", "mlflow", "onnxscript", "matplotlib.pyplot")


def preload_imports(modules: tuple[str, ...] = PRELOAD) -> threading.Thread:
    """Import ``modules`` in a daemon thread and return it. The driver spends most of ingest waiting on
    Spark (the GIL released), so the imports run beside it instead of in front of
    the step that first needs each; a step importing a module still being imported waits for it
    (Python's per-module import lock). A module that fails to import here is left for that step to
    import (and report) itself."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the step that needs it raises the real error
                log.debug("preloading %s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="pinrec-preload", daemon=True)
    thread.start()
    return thread


def _timed(timed: StepTimer, name: str, fn, *args):
    with timed(name):
        return fn(*args)


def _prebuild_snapshots(spark, cfg: PinrecConfig):
    """The feature snapshots publish will build
    (:func:`~pinrec.jobs.publish.bundle_cutoffs.snapshot_cutoffs`), built now."""
    from pinrec.jobs.features.feature_snapshot import prebuild_snapshot
    from pinrec.jobs.publish.bundle import snapshot_cutoffs

    return prebuild_snapshot(spark, cfg.storage.warehouse, snapshot_cutoffs(spark, cfg))


def demo_spark(spark: SparkConfig) -> SparkConfig:
    """The demo's Spark settings: ``spark.quick_jvm`` unset and a local master turn the quick JVM on (the
    demo's JVM lives a few minutes: 5-7 % faster with it; docs/benchmarks.md)."""
    if spark.quick_jvm is None and spark.local:
        return dataclasses.replace(spark, quick_jvm=True)
    return spark


def run_demo(cfg: PinrecConfig, days_per_batch: int = 0, echo=print) -> DemoResult:
    """Run the pipeline end to end; ``echo`` receives progress lines and, at the end, the seconds
    each step took (:class:`StepTimer`). Every step goes through the step cache (``cfg.cache``,
    :mod:`pinrec.jobs.orchestration.step_cache`): an unchanged rerun skips it and prints
    ``[step] cached (fingerprint ...)``."""
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.spark import job_spark

    from .cached_training import PipelineSteps
    from .step_cache import Cached, StepCache

    start, timed, cache = time.perf_counter(), StepTimer(), StepCache(cfg.cache)
    echo(f"[demo] filling the landing zone {cfg.storage.landing} from {cfg.dataset.kind}")
    with timed("spark start"):
        spark = job_spark(cfg, demo_spark(cfg.spark))
    preload_imports()  # after the JVM's start, whose CPU it would take; beside the landing and ingest's first jobs
    steps = PipelineSteps(cfg, spark, cache, echo)
    with timed("landing"):
        landing = steps.landing()
    if isinstance(landing, Cached):
        echo(f"[landing] {landing.render()}")
        landing = landing.output
    partitions = landed_partitions(cfg.storage.location("landing"))
    granularity = partition_granularity(cfg.storage.location("landing"))
    unit = "day" if granularity == "day" else f"{granularity} partition"
    echo(f"[demo] {len(partitions)} {unit}(s) landed: {partitions[0]} .. {partitions[-1]}")
    with timed("ingest"):
        reports, reused = steps.ingest(partitions, days_per_batch)
    for report in reports:
        echo("[ingest] " + report.summary_line())
    if reused:
        echo(f"[ingest] cached: {len(reused)} {unit}(s) ({reused[0]}..{reused[-1]}) unchanged")
    # every step after ingest counts the days that hold events (those of a month partition, not its first day)
    days = event_days(cfg.storage.location("landing"), catalog=Catalog(spark, cfg.storage.warehouse))
    # null training.validation_days / test_days: chosen from these days' impressions, once for every step
    cfg = resolve_for(cfg, lambda: Catalog(spark, cfg.storage.warehouse), days)
    steps.cfg = cfg
    held = f"{cfg.training.validation_days} validation + {cfg.training.test_days} test"
    echo(f"[demo] held out: the last {held} day(s) of {len(days)}")
    if granularity != "day":
        echo(f"[demo] {len(days)} day(s) with events: {days[0]} .. {days[-1]}")
    with timed("features"):
        rows, reused = steps.features(days)
    for table, n in rows.items():
        echo(f"[features] features_{table:<14} {n:>9} rows")
    if reused:
        echo(f"[features] cached: {len(reused)} day(s) ({reused[0]}..{reused[-1]}) unchanged")
    # New features mean a new bundle: its feature snapshots (Spark) are built ahead on the Spark lane, beside
    # the torch steps; publish takes them only for the same cut-offs and versions. (With cores to spare this
    # overlaps; on two busy cores it moves ~10 s from publish to the two-tower: docs/demo.md.)
    snapshots_ahead = len(reused) < len(days)
    from pinrec.jobs.graph.graph import evaluation_start

    cutoff = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time())
    eval_from = evaluation_start(days, cfg.training.test_days)
    # The Spark lane: the training set (Spark jobs, mostly waiting on their latency) runs in a thread beside
    # the graph and PinSage, which do not read it (the two-tower and the ranker after them do), then the
    # bundle's feature snapshots beside the two-tower, CF and the ranker. (Kedro's ThreadRunner idea.)
    with ThreadPoolExecutor(1, thread_name_prefix="pinrec-spark-lane") as lane:
        timed.start_beside("training set", "graph, pinsage")
        pending = lane.submit(_timed, timed, "training set", steps.training_set, days)
        with timed("graph"):
            graph = steps.graph(cutoff, eval_from)
        for line in ([f"{t:<18} {n:>9} rows" for t, n in graph.items()] if isinstance(graph, dict)
                     else [graph.render()]):
            echo("[graph] " + line)
        with timed("pinsage"):
            echo("[pinsage] " + steps.pinsage().render())
        ahead = None
        if snapshots_ahead:  # after PinSage, whose reads are Spark work too: beside the torch steps
            timed.start_beside("snapshots ahead", "two-tower .. index")
            ahead = lane.submit(_timed, timed, "snapshots ahead", _prebuild_snapshots, spark, cfg)
        training = pending.result()
        echo("[training] " + training.render())
        with timed("two-tower"):
            two_tower = steps.two_tower()
        echo("[two-tower] " + two_tower.render())
        # engagement before the test days, as PinSage's training edges: the channel never saw what is evaluated
        with timed("cf"):
            cf = steps.cf(eval_from)
        echo("[cf] " + cf.render())
        with timed("ranker"):
            ranker = steps.ranker()
        echo("[ranker] " + ranker.render())
        with timed("index"):
            index = steps.index()
        echo("[index] " + index.render())
        prebuilt = ahead.result() if ahead is not None else None
    # The warehouse summary (Spark reads of every table) runs beside publishing, serving and its examples,
    # which write no table.
    with ThreadPoolExecutor(1, thread_name_prefix="pinrec-summary") as pool:
        timed.start_beside("summary", "publish, serve examples")
        summarized = pool.submit(_timed, timed, "summary", steps.summary)
        with timed("publish (+ funnel replay)"):
            bundle = steps.publish(prebuilt=prebuilt)
        if getattr(bundle, "funnel", None) is not None:  # the candidate's test day replayed through recommend()
            for line in bundle.funnel.render().splitlines():
                echo("[funnel] " + line)
        echo("[publish] " + bundle.render())
        if cfg.redis.url:  # the online store (`pinrec stack up` runs one): the served bundle's features
            with timed("online features"):
                echo("[online features] " + (export_bundle_features(cfg)["summary"] if _has_channel(cfg)
                                             else "skipped: no version is served yet"))
        # a rejected candidate leaves the channel on the previous version: serve that one
        with timed("serve examples"):
            promoted = getattr(bundle, "promoted", False)
            recommendations = serve_examples(cfg, echo) if promoted or _has_channel(cfg) else {}
    warehouse = summarized.result()
    from pinrec.jobs.report import build_report, default_path

    with timed("report"):
        if isinstance(bundle, Cached) and default_path(cfg, bundle.output).is_file():
            report = default_path(cfg, bundle.output)  # the same bundle: its page is already written
            report = Path(report.path) if not report.is_s3 else report
        else:
            report = build_report(cfg, getattr(bundle, "version", None) or bundle.output, spark=spark)
    echo(f"[report] {report}")
    seconds = time.perf_counter() - start
    if cache.skipped:
        echo(f"[cache] reused: {', '.join(dict.fromkeys(cache.skipped))}; ran: {', '.join(dict.fromkeys(cache.ran)) or 'nothing'}")
    for line in timed.render(seconds).splitlines():
        echo("[time] " + line)
    return DemoResult(landing, tuple(reports), warehouse, training, ranker, index, bundle, recommendations,
                      seconds, two_tower, cf=cf, steps=dict(timed.seconds), cache=cache, report=report)
