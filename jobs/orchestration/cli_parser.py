"""The ``pinrec`` command line: every subcommand, its options and its help, and nothing else.

Building the parser imports only the standard library (and the stack's default state folder), so
``pinrec --help`` and ``pinrec <cmd> --help`` start without the jobs, the config or any heavy
library. Each leaf parser names its command body in ``handler`` (a key of
:data:`pinrec.jobs.orchestration.cli_jobs.COMMANDS` or :data:`pinrec.jobs.orchestration.cli_ops.COMMANDS`);
:mod:`~pinrec.jobs.orchestration.cli` runs it.
"""
from __future__ import annotations

import argparse
import datetime as dt

from .stack import DEFAULT_STATE_DIR

# = pinrec.jobs.config.PIPELINE_STEPS (a test checks): `--help` must not import the config
PIPELINE_STEPS = ("landing", "ingest", "features", "training_set", "graph", "retrieval_settings",
                  "pinsage", "two_tower", "cf", "ranker", "index", "publish", "funnel")

DESCRIPTION = "pinrec: one subcommand per job; each calls the same function a DAG or notebook would."
# `pinrec task` step name -> the pinrec.jobs.orchestration.tasks function a DAG task calls for one day
STEPS = {"ingest": "ingest_day", "features": "features_day", "training-set": "training_set_window",
         "graph": "graph_day"}
TORCHRUN = ("Under torchrun (python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli "
            "{cmd} ...) {what}")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time YYYY-MM-DD[THH:MM[:SS]], got {text!r}") from None


def _at_least(low: int):
    """An argparse type: an integer >= ``low`` (argparse names the option and exits 2 otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _verbose(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log at INFO level and show the traceback of any error")


def _leaf(sub, name: str, handler: str, parents: list[argparse.ArgumentParser], **kw) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=parents, **kw)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``pinrec`` parser. ``-v`` is accepted before or after the subcommand (``verbose``); each
    leaf sets ``handler`` ("ingest", "publish rollback", ...), also the name errors are reported under."""
    verbose = argparse.ArgumentParser(add_help=False)
    _verbose(verbose, argparse.SUPPRESS)  # a subcommand's unset -v keeps the top-level one
    common = argparse.ArgumentParser(add_help=False, parents=[verbose])
    common.add_argument("--config", metavar="FILE", help="YAML config (defaults in pinrec.jobs.config; see config/pinrec.example.yaml)")
    common.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one config value, e.g. --set synthetic.days=2 (repeatable)")
    days = argparse.ArgumentParser(add_help=False)
    days.add_argument("--date", type=_date, help="one day (YYYY-MM-DD)")
    days.add_argument("--start", type=_date, help="first day of a range (default: the first landed day)")
    days.add_argument("--end", type=_date, help="last day of a range, inclusive (default: the last landed day)")

    parser = argparse.ArgumentParser(prog="pinrec", description=DESCRIPTION,
                                     epilog="Errors print one line and exit 2 (3: data or candidate rejected); "
                                            "-v shows the traceback.")
    _verbose(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _leaf(sub, "generate", "generate", [common], help="write the synthetic world into the landing zone")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply users, pins and impressions/day (default world: 80k impressions; "
                        "--scale 125 makes 10M)")

    p = _leaf(sub, "load-dataset", "load-dataset", [common], help="adapt a real dataset into the landing zone")
    p.add_argument("--kind", choices=["movielens-100k", "log"],
                   help="dataset adapter, or log: any CSV / TSV / Parquet interaction log (default: dataset.kind)")
    p.add_argument("--path", help="dataset folder (e.g. /data/ml-100k) or log file (default: dataset.path)")
    for flag, key in (("user", "user_column"), ("item", "item_column"), ("timestamp", "timestamp_column"),
                      ("rating", "rating_column"), ("weight", "weight_column"), ("items", "items"),
                      ("category", "category_column"), ("labels", "labels_column")):
        p.add_argument(f"--{flag}", help=f"kind log: sets dataset.{key} (docs/datasets.md)")
    p.add_argument("--timestamps", choices=["auto", "column", "row_order", "none"],
                   help="kind log: how the log gives time (sets dataset.timestamps)")
    p.add_argument("--max-partitions", type=int, help="at most this many partitions per table: more days land "
                                                      "by month or year (sets dataset.max_partitions; 0: one per day)")
    p.add_argument("--negative-impressions", type=int, help="sampled negative impressions per interaction (sets "
                                                 "dataset.negative_impressions; default: 1 when ranker.tasks holds "
                                                 "closeup or every interaction is a save, else 0)")

    p = _leaf(sub, "ingest", "ingest", [common], help="validate landed days into Delta; bad rows go to quarantine")
    p.add_argument("--date", type=_date, help="one day (YYYY-MM-DD); its mandatory partitions must exist")
    p.add_argument("--start", type=_date, help="first day of a range (the days impressions landed on)")
    p.add_argument("--end", type=_date, help="last day of a range, inclusive")
    p.add_argument("--tables", help="comma-separated subset of raw tables (default: all, in FK order)")

    _leaf(sub, "features", "features", [common, days], help="build the daily user, pin and user x category feature tables")
    _leaf(sub, "training-set", "training-set", [common, days],
          help="build the point-in-time training set (labels, negatives, features, split)")

    p = _leaf(sub, "graph", "graph", [common], help="build the Pin-Board graph (edges, node features) for PinSage")
    p.add_argument("--cutoff", type=_time,
                   help="graph as of this time (default: the end of the last landed day)")
    p.add_argument("--eval-from", type=_time,
                   help="edges saved from this time on are evaluation edges (default: cut-off - 1 day)")

    p = _leaf(sub, "pinsage", "pinsage", [common],
              help="train PinSage on the graph tables and write every pin's embedding (pin_embeddings)",
              epilog=TORCHRUN.format(cmd="pinsage", what="rank 0 reads, logs and writes, and every rank trains (DDP)."))
    p.add_argument("--inference-edges", choices=["train", "all"], default="train",
                   help="edges the neighbourhoods of the written embeddings use: train (fair evaluation, "
                        "default) or all (serving)")

    _leaf(sub, "two-tower", "two-tower", [common],
          help="train the two-tower retrieval model on the training set and index its pin tower (section two_tower)")

    p = _leaf(sub, "cf", "cf", [common],
              help="collaborative filtering: ALS on saves/closeups before the cut-off -> <artifacts>/cf/<version> "
                   "(the cf channel)")
    p.add_argument("--cutoff", type=_time,
                   help="engagement before this time (default: the start of the training.test_days held-out "
                        "days of the landed days, as the demo's graph)")

    _leaf(sub, "ranker", "ranker", [common], help="train, calibrate, evaluate and export (ONNX) the DCN-v2 + MMoE ranker",
          epilog=TORCHRUN.format(cmd="ranker", what="rank 0 reads, evaluates, exports and logs, and every rank trains."))

    p = _leaf(sub, "index", "index", [common], help="build the tuned, sharded FAISS index over the current pin embeddings")
    p.add_argument("--queries", type=_at_least(1), default=1000, help="held-out pins to tune and measure on (default 1000)")

    _add_publish(sub, common)

    p = _leaf(sub, "recommend", "recommend", [common],
              help="load the published bundle (as serving does) and print recommendations",
              epilog="Prints the bundle, the feature source (redis URL and its export generation, or the bundle "
                     "snapshot), then one line per user; a user served from the snapshot because Redis failed is "
                     "reported on stderr.")
    p.add_argument("--user", action="append", required=True,
                   help="user id, a log's own where its ids were renumbered on landing (repeatable)")
    p.add_argument("--k", type=_at_least(1), default=10, help="pins per user (default 10)")
    p.add_argument("--context", action="append", metavar="KEY=VALUE",
                   help="surface, device, country, hour, day_of_week or now=ISO time (repeatable)")
    p.add_argument("--version", help="a stored bundle version instead of the channel's")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--redis-url", metavar="URL",
                        help="serve features from this Redis (the bundle version's export by feature-snapshot "
                             "--redis-url --bundle-version), with the other redis.* settings; exit 2 if it cannot "
                             "serve at start (default: redis.url, where an unusable Redis leaves the snapshot "
                             "serving, said on stderr; unset: the bundle's snapshot)")
    source.add_argument("--no-redis", action="store_true",
                        help="serve features from the bundle's snapshot even when redis.url is set")

    p = _leaf(sub, "eval-retrieval", "eval-retrieval", [common],
              help="HR@K / NDCG@K / MRR of pin embeddings vs popularity, ALS, BPR and EASE (leave-one-out, "
                   "same-board pairs, latent agreement)")
    p.add_argument("--spark", action="store_true",
                   help="read the Delta tables (interactions, graph_edges, pin_embeddings) instead of the landing zone")
    p.add_argument("--model-version", help="pin_embeddings model_version to evaluate (default: the table's)")
    p.add_argument("--pinsage", action="store_true",
                   help="also train PinSage (config section pinsage) on each split's training log and evaluate it")
    p.add_argument("--two-tower", action="store_true",
                   help="also train the two-tower model (config section two_tower) on each split's training log, "
                        "temperature chosen on validation, reading PinSage's embeddings of the split with --pinsage")
    p.add_argument("--tune", action="store_true",
                   help="first choose the data-dependent settings (PinSage positives, window, half-life, id scale; "
                        "baseline hyper-parameters) on the validation split (sets retrieval_eval.tune)")
    p.add_argument("--negatives", metavar="FILE",
                   help="leave-one-out negatives to use (NCF test.negative layout: '(user,item)<TAB>neg...', any "
                        "count per user); the user's own pins among them are reported and dropped")
    p.add_argument("--out", help="folder for report.json + negatives.parquet (default: <artifacts>/retrieval_eval)")

    p = _leaf(sub, "eval-funnel", "eval-funnel", [common],
              help="replay a test day through recommend() on a stored bundle, with the features as of the day's "
                   "start: candidate recall per channel, HR/NDCG of the served top-k, channel shares, diversity")
    p.add_argument("--version", help="a stored bundle version (default: the one publish.channel points to)")
    p.add_argument("--date", type=_date, help="the day to replay (default: the newest landed day)")
    p.add_argument("--out", help="folder for funnel.json (default: <artifacts>/funnel/<bundle version>)")

    p = _leaf(sub, "feature-snapshot", "feature-snapshot", [common],
              help="online feature snapshot as of a cut-off, with the training join's rules (+ Redis)")
    p.add_argument("--cutoff", type=_time, required=True,
                   help="serve features as known at this time (ISO 8601, UTC), e.g. 2026-01-09T00:00:00")
    p.add_argument("--out", help="folder for features_<view>.parquet (default: <artifacts>/feature_snapshot/<cutoff>)")
    p.add_argument("--redis-url", help="also export to this Redis, with the other redis.* settings "
                                       "(default: redis.url; none: no export)")
    p.add_argument("--bundle-version", help="bundle version the Redis keys belong to (needed for the export)")

    p = _leaf(sub, "monitor", "monitor", [common],
              help="drift of the newest day vs the training window: score PSI, feature shift, label rate")
    p.add_argument("--date", type=_date, help="the day to compare (default: the newest in the training set)")

    _leaf(sub, "tables", "tables", [common], help="summarise the warehouse: rows, days, Delta versions")

    p = _leaf(sub, "lineage", "lineage", [common],
              help="the chain from a bundle, table version or MLflow run back to the landing partitions")
    p.add_argument("ref", help="<table>@<version> (<table>@: the current one), an MLflow run id, a bundle "
                               "<name>/<version>, or a bundle version of publish.name")

    p = _leaf(sub, "report", "report", [common],
              help="write the run report of a bundle version: one static HTML file (rows, quarantine, drift, "
                   "PinSage loss and stability, recall, ranker calibration, index, blessing)")
    p.add_argument("ref", nargs="?", help="a bundle version of publish.name, or <name>/<version> (default: the "
                                          "newest published version, promoted or not)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: <artifacts>/reports/<version>.html)")

    p = _leaf(sub, "task", "task", [common], help="run one DAG task for one day exactly as the DAG does; print its XCom (JSON)")
    p.add_argument("step", choices=list(STEPS),
                   help="the task: pinrec.jobs.orchestration.tasks.ingest_day, features_day, training_set_window (the "
                        "training window ending at --date; skipped while too short), graph_day")
    p.add_argument("--date", type=_date, required=True, help="the DAG run's day (its logical date: the start of its data interval)")
    p.add_argument("--result", metavar="URI",
                   help="also write the result to this path or fsspec URL (how spark-submit hands it back)")

    p = _leaf(sub, "demo", "demo", [common], help="run the whole pipeline on the configured dataset")
    p.add_argument("--days-per-batch", type=_at_least(0), default=0,
                   help="days ingested per batch: 1 = as a daily schedule would, 0 (default) = all landed "
                        "days in one backfill batch (fastest)")
    p.add_argument("--force", action="append", metavar="STEP", choices=list(PIPELINE_STEPS),
                   help="recompute STEP even when the step cache holds it (repeatable; cache.force); steps: "
                        + ", ".join(PIPELINE_STEPS))
    p.add_argument("--no-cache", action="store_true",
                   help="recompute every step (cache.enabled=false); by default a step whose code, config and "
                        "inputs did not change since its last output is skipped and that output reused")

    _add_stack(sub, verbose)
    _add_config(sub, common, verbose)
    return parser


def _add_config(sub, common: argparse.ArgumentParser, verbose: argparse.ArgumentParser) -> None:
    """``pinrec config show|docs`` (:mod:`pinrec.jobs.config`, :mod:`pinrec.jobs.config_schema`)."""
    p = sub.add_parser("config", help="print the resolved config; regenerate its reference page and JSON Schema")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _leaf(actions, "show", "config show", [common],
          help="print the config --config and --set resolve to (YAML, every key), after validation")
    a = _leaf(actions, "docs", "config docs", [verbose],
              help="write docs/config-reference.md and config/pinrec.schema.json from the config's types")
    a.add_argument("--root", default=".", help="repository root (default: .)")
    a.add_argument("--check", action="store_true", help="write nothing; exit 1 when either file is stale")


def _add_publish(sub, common: argparse.ArgumentParser) -> None:
    """``pinrec publish bundle|rollback|online-features|prune``: each action with only its own options; no default action."""
    p = sub.add_parser("publish", help="publish a serving bundle behind the blessing gate; roll a channel back; prune")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = _leaf(actions, "bundle", "publish bundle", [common],
              help="assemble the newest index + ranker into a bundle and publish it behind the blessing gate")
    a.add_argument("--force", action="store_true", help="promote even if the gate rejects it (logged)")
    a.add_argument("--index-dir", help="index folder (default: <artifacts>/index/<current embedding version>)")
    a.add_argument("--ranker-dir", help="ranker folder (default: the newest under <artifacts>/ranker)")
    a.add_argument("--cf-dir", help="cf folder (default: the newest under <artifacts>/cf; none there: no cf channel)")
    a.add_argument("--cutoff", type=_time,
                   help="feature snapshot as of (default: end of the newest landed day + features.publish_delay_s)")
    a.add_argument("--fail-unblessed", action="store_true", help="exit 3 when the candidate is not promoted")
    a = _leaf(actions, "rollback", "publish rollback", [common],
              help="move the channel (publish.channel) back to a stored version")
    a.add_argument("--to", metavar="VERSION", required=True, help="the stored version the channel moves to")
    a.add_argument("--force", action="store_true", help="allow a version the blessing gate did not bless")
    a = _leaf(actions, "online-features", "publish online-features", [common],
              help="export the feature snapshot of the bundle the channel serves to Redis, the online store")
    a.add_argument("--version", help="a stored bundle version (default: the one publish.channel points to)")
    a.add_argument("--redis-url", help="the Redis to export to, with the other redis.* settings (default: redis.url)")
    a = _leaf(actions, "prune", "publish prune", [common],
              help="delete old versions (never one a channel points to) beyond the newest kept, and stale "
                   "incomplete ones")
    a.add_argument("--keep-blessed", type=int, metavar="N", help="promoted versions kept (default: publish.keep_blessed)")
    a.add_argument("--keep-unblessed", type=int, metavar="N",
                   help="rejected versions kept (default: publish.keep_unblessed)")
    a.add_argument("--grace-s", type=int, metavar="S",
                   help="age after which an incomplete version goes (default: publish.incomplete_grace_s)")


def _add_stack(sub, verbose: argparse.ArgumentParser) -> None:
    """``pinrec stack up|status|down`` (:mod:`pinrec.jobs.orchestration.stack`)."""
    p = sub.add_parser("stack", help="start, check or stop local S3 + Spark + MLflow (+ Redis) servers on 127.0.0.1")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False, parents=[verbose])
    where.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                       help=f"PIDs, logs, data, pinrec.yaml and env.sh (default: {DEFAULT_STATE_DIR})")
    a = _leaf(actions, "up", "stack up", [where], help="start the stack (nothing happens if it is running)")
    a.add_argument("--worker-cores", type=_at_least(1), default=2, help="cores the Spark worker offers (default 2)")
    a.add_argument("--worker-memory", default="2g", help="memory the Spark worker offers (default 2g)")
    _leaf(actions, "status", "stack status", [where], help="each service running or dead; exit 1 if any is dead")
    a = _leaf(actions, "down", "stack down", [where], help="stop the recorded processes (by PID)")
    a.add_argument("--timeout", type=float, default=20.0, help="seconds from SIGTERM to SIGKILL (default 20)")
