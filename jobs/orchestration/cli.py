"""``pinrec``: one subcommand per job; each calls the same function a DAG or notebook would.

Every subcommand takes ``--config FILE`` (YAML, see config/pinrec.example.yaml) and any number of
``--set section.key=value`` overrides; besides them only the standard AWS variables are read (the S3
endpoint and region of the bundle store, :func:`~pinrec.jobs.config.load_config`), here, once.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys

from pinrec.jobs.config import (
    ConfigError,
    PinrecConfig,
    load_config,
    parse_overrides,
    s3_options,
)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _config(args) -> PinrecConfig:
    return load_config(args.config, parse_overrides(args.set or []), env=os.environ)


def _spark_and_paths(cfg: PinrecConfig):
    from pinrec.jobs.ingest.ingest import IngestPaths
    from pinrec.jobs.io.spark import get_spark

    return get_spark(cfg.spark, cfg.storage.spark_s3), IngestPaths(cfg.storage.location("landing"), cfg.storage.warehouse)


def scale_world(cfg: PinrecConfig, factor: float) -> PinrecConfig:
    """Multiply the synthetic world's population and traffic by ``factor`` (days stay)."""
    from pinrec.jobs.config import replace

    if factor <= 0:
        raise ConfigError(f"--scale must be positive, got {factor}")
    s = cfg.synthetic
    grown = {k: max(1, round(getattr(s, k) * factor)) for k in ("users", "pins", "impressions_per_day")}
    grown |= {k: round(getattr(s, k) * factor) for k in ("fresh_pins_per_day", "new_users_per_day")}  # 0 stays 0
    return replace(cfg, synthetic=grown)


def cmd_generate(args) -> int:
    from pinrec.jobs.ingest.synthetic import generate

    cfg = scale_world(_config(args), args.scale)
    summary = generate(cfg.synthetic, cfg.storage.location("landing"), seed=cfg.seed)
    for table in sorted(summary.rows):
        print(f"{table:<16} {summary.total(table):>9} rows over {len(summary.rows[table])} day(s)")
    print(f"landing zone: {cfg.storage.landing}")
    return 0


def cmd_load_dataset(args) -> int:
    from pinrec.jobs.ingest.datasets import load_dataset

    cfg = _config(args)
    kind = args.kind or cfg.dataset.kind
    path = args.path or cfg.dataset.path
    if kind == "synthetic" or not path:
        raise ConfigError("load-dataset needs --kind (e.g. movielens-100k) and --path to the dataset folder")
    summary = load_dataset(kind, path, cfg.storage.location("landing"))
    for table in sorted(summary.rows):
        print(f"{table:<16} {summary.total(table):>9} rows over {len(summary.rows[table])} day(s)")
    return 0


def cmd_ingest(args) -> int:
    from pinrec.jobs.ingest.ingest import IngestError, ingest, landed_days

    cfg = _config(args)
    if args.date and (args.start or args.end):
        raise ConfigError("give either --date or --start/--end")
    start = args.date or args.start or dt.date.min
    end = args.date or args.end or dt.date.max
    tables = tuple(args.tables.split(",")) if args.tables else None
    try:
        days = [args.date] if args.date else landed_days(cfg.storage.location("landing"), start, end)
        spark, paths = _spark_and_paths(cfg)
        for report in ingest(spark, paths, days, cfg.ingest, tables=tables):
            print(report.summary_line())
            if report.rows_quarantined:
                print(report.render())
    except IngestError as e:
        print(f"pinrec ingest: {e}", file=sys.stderr)
        return 3
    return 0


def _days(args, cfg: PinrecConfig) -> list[dt.date]:
    from pinrec.jobs.ingest.ingest import landed_days

    if args.date and (args.start or args.end):
        raise ConfigError("give either --date or --start/--end")
    if args.date:
        return [args.date]
    return landed_days(cfg.storage.location("landing"), args.start or dt.date.min, args.end or dt.date.max)


def cmd_features(args) -> int:
    from pinrec.jobs.features.features import build_features

    cfg = _config(args)
    days = _days(args, cfg)
    spark, _ = _spark_and_paths(cfg)
    for table, rows in build_features(spark, cfg.storage.warehouse, days, cfg.features).items():
        print(f"features_{table:<14} {rows:>9} rows for {days[0]}..{days[-1]}")
    return 0


def cmd_training_set(args) -> int:
    from pinrec.jobs.features.training_set import build_training_set

    cfg = _config(args)
    days = _days(args, cfg)
    spark, _ = _spark_and_paths(cfg)
    report = build_training_set(spark, cfg.storage.warehouse, days, cfg.training, cfg.seed)
    print(report.render())
    return 0


def cmd_graph(args) -> int:
    from pinrec.jobs.graph.graph import write_graph
    from pinrec.jobs.ingest.ingest import landed_days

    cfg = _config(args)
    last = landed_days(cfg.storage.location("landing"), dt.date.min, dt.date.max)[-1]
    cutoff = args.cutoff or dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    eval_from = args.eval_from or cutoff - dt.timedelta(days=1)
    spark, _ = _spark_and_paths(cfg)
    for table, rows in write_graph(spark, cfg.storage.warehouse, cutoff, eval_from).items():
        print(f"{table:<18} {rows:>9} rows (cut-off {cutoff}, eval edges from {eval_from})")
    return 0


def cmd_pinsage(args) -> int:
    from pinrec.jobs.pinsage.pinsage import run_job

    run_job(_config(args), args.inference_edges)
    return 0


def cmd_ranker(args) -> int:
    from pinrec.jobs.ranking.ranker import run_job

    run_job(_config(args), echo=lambda line: print(line, flush=True))
    return 0


def cmd_index(args) -> int:
    from pinrec.jobs.index.pin_index import build_pin_index
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    cfg = _config(args)
    spark, _ = _spark_and_paths(cfg)
    print(build_pin_index(spark, cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.index,
                          cfg.storage.mlflow_tracking_uri, queries=args.queries,
                          artifact_root=mlflow_artifact_root(cfg.storage)).render())
    return 0


def cmd_publish(args) -> int:
    from pinrec.export.build.publish import prune, rollback
    from pinrec.export.serving.store import Store

    cfg = _config(args)
    store = Store(cfg.bundle_store_uri, s3_options(cfg.storage))
    if args.action == "rollback":
        if not args.to:
            raise ConfigError("publish rollback needs --to VERSION")
        pointer = rollback(store, cfg.publish.name, cfg.publish.channel, args.to, allow_unblessed=args.force)
        print(f"channel {cfg.publish.channel} of {cfg.publish.name} -> {pointer.version}")
        return 0
    if args.action == "prune":
        removed = prune(store, cfg.publish.name, keep_blessed=cfg.publish.keep_blessed,
                        keep_unblessed=cfg.publish.keep_unblessed, incomplete_grace_s=cfg.publish.incomplete_grace_s)
        print(f"removed {len(removed)} version(s): {', '.join(removed) or '-'}")
        return 0
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    spark, _ = _spark_and_paths(cfg)
    report = publish_serving_bundle(spark, cfg, index_dir=args.index_dir, ranker_dir=args.ranker_dir,
                                    cutoff=args.cutoff, force=args.force)
    print(report.render())
    return 0 if report.promoted or not args.fail_unblessed else 3


def cmd_recommend(args) -> int:
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender

    cfg = _config(args)
    context = {}
    for item in args.context or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--context expects key=value, got {item!r}")
        try:
            context[key] = dt.datetime.fromisoformat(value) if key == "now" else \
                int(value) if key in ("hour", "day_of_week") else value
        except ValueError:
            raise ConfigError(f"--context {key} expects {'an ISO time' if key == 'now' else 'an int'}, "
                              f"got {value!r}") from None
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, version=args.version,
                  s3=s3_options(cfg.storage))
    rec = Recommender(bundle, cfg.recommend)
    print(f"bundle {bundle.name}/{bundle.version}")
    for user in args.user:
        items = rec.recommend(user, context, k=args.k)
        print(f"user {user}: " + (", ".join(f"{r.pin_id} ({r.category}, {r.score:.3f}, {r.channel})" for r in items)
                                   or "-"))
    return 0


def cmd_eval_retrieval(args) -> int:
    from pinrec.jobs.io.lake import as_location
    from pinrec.jobs.retrieval.retrieval_data import evaluate_storage

    cfg = _config(args)
    spark = None
    if args.spark:
        from pinrec.jobs.io.spark import get_spark

        spark = get_spark(cfg.spark, cfg.storage.spark_s3)
    embeddings = None
    if args.pinsage:
        from pinrec.jobs.pinsage.pinsage_eval import landing_model

        embeddings = {"pinsage": landing_model(cfg.storage.location("landing"), cfg.pinsage)}
    report = evaluate_storage(cfg.retrieval_eval, cfg.storage.location("landing"), cfg.storage.warehouse, spark,
                              embeddings=embeddings, model_version=args.model_version)
    print(report.render())
    out = as_location(args.out, s3_options(cfg.storage)) if args.out else \
        cfg.storage.location("artifacts") / "retrieval_eval"
    print(f"written to {report.write(out)}")
    return 0


def cmd_feature_snapshot(args) -> int:
    import dataclasses

    from pinrec.jobs.features.feature_snapshot import (
        build_feature_snapshot,
        open_snapshot,
    )
    from pinrec.jobs.io.lake import as_location

    cfg = _config(args)
    spark, _ = _spark_and_paths(cfg)
    out = as_location(args.out, s3_options(cfg.storage)) if args.out else \
        cfg.storage.location("artifacts") / "feature_snapshot" / f"{args.cutoff:%Y%m%dT%H%M%S}"
    print(build_feature_snapshot(spark, cfg.storage.warehouse, args.cutoff, out).render())
    url = args.redis_url or cfg.redis.url
    if url:
        if not args.bundle_version:
            raise ConfigError("--redis-url needs --bundle-version (Redis keys are versioned by bundle)")
        from pinrec.jobs.features.redis_export import export_snapshot

        print(export_snapshot(open_snapshot(out), args.bundle_version,
                              dataclasses.replace(cfg.redis, url=url)).render())
    return 0


def cmd_monitor(args) -> int:
    from pinrec.jobs.io.tracking import mlflow_artifact_root
    from pinrec.jobs.monitoring.monitoring import monitor_drift

    cfg = _config(args)
    spark, _ = _spark_and_paths(cfg)
    print(monitor_drift(spark, cfg.storage.warehouse, cfg.monitoring, maturity_s=cfg.training.maturity_s,
                        day=args.date, tracking_uri=cfg.storage.mlflow_tracking_uri, seed=cfg.seed,
                        artifact_root=mlflow_artifact_root(cfg.storage)).render())
    return 0


def cmd_tables(args) -> int:
    from pinrec.jobs.monitoring.summary import summarize

    cfg = _config(args)
    spark, _ = _spark_and_paths(cfg)
    print(summarize(spark, cfg.storage.warehouse).render())
    return 0


def cmd_task(args) -> int:
    import json

    from pinrec.jobs.io.lake import Location

    from .spark_submit import SKIPPED, run_step, write_result
    from .tasks import NotEnoughHistoryError

    cfg = _config(args)
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

    cfg = _config(args)
    result = run_demo(cfg, days_per_batch=args.days_per_batch)
    print()
    print(result.warehouse.render())
    print(f"\n[demo] done in {result.seconds:.0f} s; warehouse: {cfg.storage.warehouse}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .spark_submit import STEPS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="YAML config (defaults in pinrec.jobs.config; see config/pinrec.example.yaml)")
    common.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one config value, e.g. --set synthetic.days=2 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")

    parser = argparse.ArgumentParser(prog="pinrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", parents=[common], help="write the synthetic world into the landing zone")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply users, pins and impressions/day (default world: 80k impressions; "
                        "--scale 125 makes 10M)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("load-dataset", parents=[common], help="adapt a real dataset into the landing zone")
    p.add_argument("--kind", choices=["movielens-100k"], help="dataset adapter (default: dataset.kind)")
    p.add_argument("--path", help="dataset folder, e.g. /data/ml-100k (default: dataset.path)")
    p.set_defaults(func=cmd_load_dataset)

    p = sub.add_parser("ingest", parents=[common],
                       help="validate landed days into Delta; bad rows go to quarantine")
    p.add_argument("--date", type=_date, help="one day (YYYY-MM-DD); its mandatory partitions must exist")
    p.add_argument("--start", type=_date, help="first day of a range (the days impressions landed on)")
    p.add_argument("--end", type=_date, help="last day of a range, inclusive")
    p.add_argument("--tables", help="comma-separated subset of raw tables (default: all, in FK order)")
    p.set_defaults(func=cmd_ingest)

    days = argparse.ArgumentParser(add_help=False)
    days.add_argument("--date", type=_date, help="one day (YYYY-MM-DD)")
    days.add_argument("--start", type=_date, help="first day of a range (default: the first landed day)")
    days.add_argument("--end", type=_date, help="last day of a range, inclusive (default: the last landed day)")

    p = sub.add_parser("features", parents=[common, days],
                       help="build the daily user, pin and user x category feature tables")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("training-set", parents=[common, days],
                       help="build the point-in-time training set (labels, negatives, features, split)")
    p.set_defaults(func=cmd_training_set)

    p = sub.add_parser("graph", parents=[common], help="build the Pin-Board graph (edges, node features) for PinSage")
    p.add_argument("--cutoff", type=dt.datetime.fromisoformat,
                   help="graph as of this time (default: the end of the last landed day)")
    p.add_argument("--eval-from", type=dt.datetime.fromisoformat,
                   help="edges saved from this time on are evaluation edges (default: cut-off - 1 day)")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("pinsage", parents=[common],
                       help="train PinSage on the graph tables and write every pin's embedding (pin_embeddings)",
                       epilog="Under torchrun (python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli "
                              "pinsage ...) rank 0 reads, logs and writes, and every rank trains (DDP).")
    p.add_argument("--inference-edges", choices=["train", "all"], default="train",
                   help="edges the neighbourhoods of the written embeddings use: train (fair evaluation, "
                        "default) or all (serving)")
    p.set_defaults(func=cmd_pinsage)

    p = sub.add_parser("ranker", parents=[common],
                       help="train, calibrate, evaluate and export (ONNX) the DCN-v2 + MMoE ranker",
                       epilog="Under torchrun (python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli "
                              "ranker ...) rank 0 reads, evaluates, exports and logs, and every rank trains.")
    p.set_defaults(func=cmd_ranker)

    p = sub.add_parser("index", parents=[common],
                       help="build the tuned, sharded FAISS index over the current pin embeddings")
    p.add_argument("--queries", type=int, default=1000, help="held-out pins to tune and measure on (default 1000)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("publish", parents=[common],
                       help="publish the newest index + ranker as a serving bundle behind the blessing gate")
    p.add_argument("action", nargs="?", choices=["bundle", "rollback", "prune"], default="bundle",
                   help="bundle (default): assemble and publish; rollback --to VERSION; prune old versions")
    p.add_argument("--to", metavar="VERSION", help="rollback: the stored version the channel moves to")
    p.add_argument("--force", action="store_true",
                   help="bundle: promote even if the gate rejects it (logged); rollback: allow an unblessed version")
    p.add_argument("--index-dir", help="index folder (default: <artifacts>/index/<current embedding version>)")
    p.add_argument("--ranker-dir", help="ranker folder (default: the newest under <artifacts>/ranker)")
    p.add_argument("--cutoff", type=dt.datetime.fromisoformat,
                   help="feature snapshot as of (default: end of the newest landed day + features.publish_delay_s)")
    p.add_argument("--fail-unblessed", action="store_true", help="exit 3 when the candidate is not promoted")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("recommend", parents=[common],
                       help="load the published bundle (as serving does) and print recommendations")
    p.add_argument("--user", type=int, action="append", required=True, help="user id (repeatable)")
    p.add_argument("--k", type=int, default=10, help="pins per user (default 10)")
    p.add_argument("--context", action="append", metavar="KEY=VALUE",
                   help="surface, device, country, hour, day_of_week or now=ISO time (repeatable)")
    p.add_argument("--version", help="a stored bundle version instead of the channel's")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("eval-retrieval", parents=[common],
                       help="HR@K / NDCG@K / MRR of pin embeddings vs popularity, ALS and BPR (leave-one-out, "
                            "same-board pairs, latent agreement)")
    p.add_argument("--spark", action="store_true",
                   help="read the Delta tables (interactions, graph_edges, pin_embeddings) instead of the landing zone")
    p.add_argument("--model-version", help="pin_embeddings model_version to evaluate (default: the table's)")
    p.add_argument("--pinsage", action="store_true",
                   help="also train PinSage (config section pinsage) on each split's training log and evaluate it")
    p.add_argument("--out", help="folder for report.json + negatives.parquet (default: <artifacts>/retrieval_eval)")
    p.set_defaults(func=cmd_eval_retrieval)

    p = sub.add_parser("feature-snapshot", parents=[common],
                       help="online feature snapshot as of a cut-off, with the training join's rules (+ Redis)")
    p.add_argument("--cutoff", type=dt.datetime.fromisoformat, required=True, help="as-of time (ISO 8601)")
    p.add_argument("--out", help="folder for features_<view>.parquet (default: <artifacts>/feature_snapshot/<cutoff>)")
    p.add_argument("--redis-url", help="also export to this Redis (default: redis.url)")
    p.add_argument("--bundle-version", help="bundle version the Redis keys belong to")
    p.set_defaults(func=cmd_feature_snapshot)

    p = sub.add_parser("monitor", parents=[common],
                       help="drift of the newest day vs the training window: score PSI, feature shift, label rate")
    p.add_argument("--date", type=_date, help="the day to compare (default: the newest in the training set)")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("tables", parents=[common], help="summarise the warehouse: rows, days, Delta versions")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("task", parents=[common],
                       help="run one DAG task for one day exactly as the DAG does; print its XCom (JSON)")
    p.add_argument("step", choices=list(STEPS),
                   help="the task: pinrec.jobs.orchestration.tasks.ingest_day, features_day, training_set_window (the training "
                        "window ending at --date; skipped while too short), graph_day")
    p.add_argument("--date", type=_date, required=True, help="the DAG run's day (its logical date: the start of its data interval)")
    p.add_argument("--result", metavar="URI",
                   help="also write the result to this path or fsspec URL (how spark-submit hands it back)")
    p.set_defaults(func=cmd_task)

    p = sub.add_parser("demo", parents=[common], help="run the whole pipeline on the configured dataset")
    p.add_argument("--days-per-batch", type=int, default=0,
                   help="days ingested per batch: 1 = as a daily schedule would, 0 (default) = all landed "
                        "days in one backfill batch (fastest)")
    p.set_defaults(func=cmd_demo)

    from .stack import add_stack_parser

    add_stack_parser(sub)  # pinrec stack up|status|down: local servers for the cluster topology
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"pinrec {args.command}: configuration error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:  # a missing file, an unreachable store, a malformed request
        print(f"pinrec {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
