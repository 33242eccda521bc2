"""The bodies of ``pinrec``'s pipeline commands (generate ... demo): each reads the config, calls the
job function a DAG task or notebook calls, and prints its report. The jobs are imported inside
each body, so that a command loads only its own job.

Every body takes the parsed arguments (:func:`pinrec.jobs.orchestration.cli_parser.build_parser`)
and returns the exit code; bad input raises :class:`~pinrec.jobs.config.ConfigError`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from pinrec.jobs.config import (
    ConfigError,
    PinrecConfig,
    load_config,
    parse_overrides,
    replace,
    s3_options,
)


def config_of(args, shortcuts: Mapping[str, Any] | None = None) -> PinrecConfig:
    """``--config`` + ``--set`` + the AWS variables (:func:`~pinrec.jobs.config.load_config`);
    ``shortcuts``: options that set one config key ("redis.url" -> ``--redis-url``), applied last
    when given (None: not given)."""
    overrides = parse_overrides(args.set or [])
    for key, value in (shortcuts or {}).items():
        if value is not None:
            *sections, name = key.split(".")
            node = overrides
            for i, section in enumerate(sections):
                node = node.setdefault(section, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"--set gave {'.'.join(sections[:i + 1])} a value ({node!r}), so the option "
                                      f"for {key} has no key to set")
            node[name] = value
    return load_config(args.config, overrides, env=os.environ)


def spark_and_paths(cfg: PinrecConfig):
    """The Spark session of ``cfg`` and the landing zone + warehouse paths of ingestion."""
    from pinrec.jobs.ingest.ingest import IngestPaths
    from pinrec.jobs.io.spark import job_spark

    return job_spark(cfg), IngestPaths(cfg.storage.location("landing"), cfg.storage.warehouse)


def scale_world(cfg: PinrecConfig, factor: float) -> PinrecConfig:
    """Multiply the synthetic world's population and traffic by ``factor`` (days stay)."""
    if not math.isfinite(factor) or factor <= 0:
        raise ConfigError(f"--scale must be a positive finite number, got {factor}")
    s = cfg.synthetic
    grown = {k: max(1, round(getattr(s, k) * factor)) for k in ("users", "pins", "impressions_per_day")}
    grown |= {k: round(getattr(s, k) * factor) for k in ("fresh_pins_per_day", "new_users_per_day")}  # 0 stays 0
    return replace(cfg, synthetic=grown)


def _print_landed(summary) -> None:
    for table in sorted(summary.rows):
        print(f"{table:<16} {summary.total(table):>9} rows over {len(summary.rows[table])} day(s)")
    if summary.negatives:
        print(f"impressions include {summary.negatives} sampled negative(s) per interaction "
              "(dataset.negative_impressions)")


def cmd_generate(args) -> int:
    from pinrec.jobs.ingest.synthetic import generate

    cfg = scale_world(config_of(args), args.scale)
    _print_landed(generate(cfg.synthetic, cfg.storage.location("landing"), seed=cfg.seed))
    print(f"landing zone: {cfg.storage.landing}")
    return 0


def cmd_load_dataset(args) -> int:
    from pinrec.jobs.ingest.log_reader import land_configured

    flags = {"user": "user_column", "item": "item_column", "timestamp": "timestamp_column",
             "rating": "rating_column", "weight": "weight_column", "items": "items",
             "category": "category_column", "labels": "labels_column", "timestamps": "timestamps",
             "max_partitions": "max_partitions", "negative_impressions": "negative_impressions", "kind": "kind", "path": "path"}
    from .cached_steps import landing_dataset

    cfg = config_of(args, {f"dataset.{key}": getattr(args, flag, None) for flag, key in flags.items()})
    ds = landing_dataset(cfg)
    if ds.kind == "synthetic" or not ds.path:
        raise ConfigError("load-dataset needs --kind (movielens-100k or log) and --path to the dataset")
    _print_landed(land_configured(ds, cfg.storage.location("landing")))
    return 0


def _days(args, cfg: PinrecConfig, events: bool = False) -> list[dt.date]:
    """``--date``, or in ``--start``..``--end`` (each open end: all) the landed partitions' first days
    (``events``: the days with events, which differ for a landing by month or year:
    :mod:`pinrec.jobs.ingest.days`)."""
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.ingest.ingest import landed_days

    if args.date and (args.start or args.end):
        raise ConfigError("give either --date or --start/--end")
    if args.start and args.end and args.start > args.end:
        raise ConfigError(f"--start {args.start} is after --end {args.end}")
    if args.date:
        return [args.date]
    landing, start, end = cfg.storage.location("landing"), args.start or dt.date.min, args.end or dt.date.max
    return event_days(landing, start, end, _catalog(cfg)) if events else landed_days(landing, start, end)


def _catalog(cfg: PinrecConfig):
    """A function returning the warehouse's catalog (Spark starts only when it is called)."""
    from pinrec.jobs.io.catalog import Catalog

    return lambda: Catalog(spark_and_paths(cfg)[0], cfg.storage.warehouse)


def cmd_ingest(args) -> int:
    from pinrec.jobs.ingest.ingest import ingest

    cfg = config_of(args)
    days = _days(args, cfg)
    spark, paths = spark_and_paths(cfg)
    for report in ingest(spark, paths, days, cfg.ingest, tables=tuple(args.tables.split(",")) if args.tables else None):
        print(report.summary_line())
        if report.rows_quarantined:
            print(report.render())
    return 0


def cmd_features(args) -> int:
    from pinrec.jobs.features.features import build_features

    cfg = config_of(args)
    days = _days(args, cfg, events=True)
    spark, _ = spark_and_paths(cfg)
    for table, rows in build_features(spark, cfg.storage.warehouse, days, cfg.features).items():
        print(f"features_{table:<14} {rows:>9} rows for {days[0]}..{days[-1]}")
    return 0


def cmd_training_set(args) -> int:
    from pinrec.jobs.features.training_set import build_training_set

    cfg = config_of(args)
    days = _days(args, cfg, events=True)
    spark, _ = spark_and_paths(cfg)
    print(build_training_set(spark, cfg.storage.warehouse, days, cfg.training, cfg.seed).render())
    return 0


def cmd_graph(args) -> int:
    from pinrec.jobs.graph.graph import write_graph
    from pinrec.jobs.ingest.days import event_days

    cfg = config_of(args)
    last = event_days(cfg.storage.location("landing"), catalog=_catalog(cfg))[-1]
    cutoff = args.cutoff or dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    eval_from = args.eval_from or cutoff - dt.timedelta(days=1)
    spark, _ = spark_and_paths(cfg)
    for table, rows in write_graph(spark, cfg.storage.warehouse, cutoff, eval_from).items():
        print(f"{table:<18} {rows:>9} rows (cut-off {cutoff}, eval edges from {eval_from})")
    return 0


def cmd_pinsage(args) -> int:
    """Alone or under torchrun: every rank parses the same arguments; rank 0 runs the job (``run_job``)."""
    from pinrec.jobs.pinsage.pinsage import run_job

    run_job(config_of(args), args.inference_edges)
    return 0


def cmd_two_tower(args) -> int:
    from pinrec.jobs.two_tower.two_tower import run_job

    run_job(config_of(args), echo=lambda line: print(line, flush=True))
    return 0


def cmd_cf(args) -> int:
    from pinrec.jobs.cf.cf import train_cf
    from pinrec.jobs.features.holdout import resolve_for
    from pinrec.jobs.graph.graph import evaluation_start
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    cfg = config_of(args)
    if args.cutoff:
        cutoff = args.cutoff
    else:
        days = event_days(cfg.storage.location("landing"), catalog=_catalog(cfg))
        cutoff = evaluation_start(days, resolve_for(cfg, _catalog(cfg), days).training.test_days)
    spark, _ = spark_and_paths(cfg)
    print(train_cf(spark, cfg.storage.warehouse, cfg.cf, cfg.storage.mlflow_tracking_uri, cutoff=cutoff,
                   artifacts=cfg.storage.location("artifacts"), artifact_root=mlflow_artifact_root(cfg.storage)).render())
    return 0


def cmd_ranker(args) -> int:
    """Alone or under torchrun, as :func:`cmd_pinsage`."""
    from pinrec.jobs.ranking.ranker import run_job

    run_job(config_of(args), echo=lambda line: print(line, flush=True))
    return 0


def cmd_index(args) -> int:
    from pinrec.jobs.index.pin_index import build_pin_index
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    print(build_pin_index(spark, cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.index_for("ann"),
                          cfg.storage.mlflow_tracking_uri, queries=args.queries,
                          artifact_root=mlflow_artifact_root(cfg.storage)).render())
    return 0


def cmd_eval_retrieval(args) -> int:
    from pinrec.jobs.io.lake import as_location
    from pinrec.jobs.retrieval.retrieval_data import evaluate_storage

    cfg = config_of(args, {"retrieval_eval.tune": True if args.tune else None})
    landing = cfg.storage.location("landing")
    spark = None
    if args.spark:
        from pinrec.jobs.io.spark import job_spark

        spark = job_spark(cfg)
    make_pinsage = None
    if args.pinsage:
        from pinrec.jobs.pinsage.pinsage_eval import landing_model

        def make_pinsage(pinsage_cfg):
            return landing_model(landing, pinsage_cfg)
    negatives = None
    if args.negatives:
        from pinrec.jobs.ingest.dataset_info import read_id_map
        from pinrec.jobs.retrieval.retrieval_data import read_ncf_negatives

        negatives = read_ncf_negatives(args.negatives, read_id_map(landing, "user"), read_id_map(landing, "item"))
    sources = None
    if args.two_tower:
        from pinrec.jobs.retrieval.two_tower_eval import landing_two_tower

        sources = {"two-tower": landing_two_tower(landing, cfg.two_tower)}
    report = evaluate_storage(cfg.retrieval_eval, landing, cfg.storage.warehouse, spark,
                              model_version=args.model_version, negatives=negatives,
                              pinsage_cfg=cfg.pinsage, make_pinsage=make_pinsage, scorer_sources=sources)
    print(report.render())
    if report.selection is not None:
        from pinrec.jobs.io.tracking import mlflow_artifact_root
        from pinrec.jobs.retrieval.tuning import log_selection

        run_id = log_selection(report.selection, cfg.storage.mlflow_tracking_uri,
                               artifact_root=mlflow_artifact_root(cfg.storage))
        print(f"settings and validation table logged to MLflow run {run_id}")
    out = as_location(args.out, s3_options(cfg.storage)) if args.out else \
        cfg.storage.location("artifacts") / "retrieval_eval"
    print(f"written to {report.write(out)}")
    return 0


def cmd_eval_funnel(args) -> int:
    from pinrec.jobs.funnel.funnel import eval_funnel

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    report, where = eval_funnel(spark, cfg, version=args.version, day=args.date, out=args.out)
    print(report.render())
    print(f"written to {where}")
    return 0


def cmd_monitor(args) -> int:
    from pinrec.jobs.io.tracking import mlflow_artifact_root
    from pinrec.jobs.monitoring.monitoring import monitor_drift

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    print(monitor_drift(spark, cfg.storage.warehouse, cfg.monitoring, maturity_s=cfg.training.maturity_s,
                        day=args.date, tracking_uri=cfg.storage.mlflow_tracking_uri, seed=cfg.seed,
                        artifact_root=mlflow_artifact_root(cfg.storage)).render())
    return 0


def cmd_tables(args) -> int:
    from pinrec.jobs.monitoring.summary import summarize

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    print(summarize(spark, cfg.storage.warehouse).render())
    return 0


def cmd_task(args) -> int:
    """One DAG task for one day; a window still too short is a skip (exit 0), as in the DAG."""
    from pinrec.jobs.io.lake import Location

    from .spark_submit import SKIPPED, run_step, write_result
    from .tasks import NotEnoughHistoryError

    cfg = config_of(args)
    try:
        result = run_step(args.step, cfg, args.date)
    except NotEnoughHistoryError as e:
        print(f"pinrec task {args.step}: skipped: {e}", file=sys.stderr)
        result = {SKIPPED: str(e)}
    if args.result:
        write_result(result, Location(args.result, s3_options(cfg.storage)))
    print(json.dumps(result, sort_keys=True))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    cfg = config_of(args, {"cache.enabled": False if args.no_cache else None,
                           "cache.force": tuple(args.force) if args.force else None})
    result = run_demo(cfg, days_per_batch=args.days_per_batch)
    print()
    print(result.warehouse.render())
    print(f"\n[demo] done in {result.seconds:.0f} s; warehouse: {cfg.storage.warehouse}")
    return 0


COMMANDS: dict[str, Callable[[Any], int]] = {
    "generate": cmd_generate, "load-dataset": cmd_load_dataset, "ingest": cmd_ingest, "features": cmd_features,
    "training-set": cmd_training_set, "graph": cmd_graph, "pinsage": cmd_pinsage, "two-tower": cmd_two_tower,
    "cf": cmd_cf, "ranker": cmd_ranker,
    "index": cmd_index, "eval-retrieval": cmd_eval_retrieval, "eval-funnel": cmd_eval_funnel,
    "monitor": cmd_monitor, "tables": cmd_tables,
    "task": cmd_task, "demo": cmd_demo,
}
