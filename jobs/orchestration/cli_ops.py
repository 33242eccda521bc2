"""The bodies of ``pinrec``'s commands that act on stores and servers rather than on tables alone:
``publish bundle|rollback|online-features|prune``, ``recommend`` (the serving loader; its body is in
:mod:`~pinrec.jobs.orchestration.cli_recommend`), ``feature-snapshot`` (+ Redis) and
``stack up|status|down``. Like :mod:`~pinrec.jobs.orchestration.cli_jobs`, each imports its job
inside its body and returns the exit code.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinrec.jobs.config import ConfigError, s3_options
from pinrec.jobs.io.timestamps import to_spark

from .cli_jobs import config_of, spark_and_paths
from .cli_recommend import cmd_recommend


def _store(cfg):
    from pinrec.export.serving.store import Store

    return Store(cfg.bundle_store_uri, s3_options(cfg.storage))


def cmd_publish_bundle(args) -> int:
    """Exit 3 with ``--fail-unblessed`` when the gate rejected the candidate (and no ``--force``)."""
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    report = publish_serving_bundle(spark, cfg, index_dir=args.index_dir, ranker_dir=args.ranker_dir,
                                    cutoff=args.cutoff, cf_dir=args.cf_dir, force=args.force)
    print(report.render())
    return 0 if report.promoted or not args.fail_unblessed else 3


def cmd_publish_rollback(args) -> int:
    from pinrec.export.build.publish import rollback

    cfg = config_of(args)
    pointer = rollback(_store(cfg), cfg.publish.name, cfg.publish.channel, args.to, allow_unblessed=args.force)
    print(f"channel {cfg.publish.channel} of {cfg.publish.name} -> {pointer.version}")
    return 0


def cmd_publish_online_features(args) -> int:
    """Export the channel's (or ``--version``'s) bundle snapshot to Redis (``--redis-url``, else redis.url)."""
    from pinrec.jobs.publish.online_features import export_bundle_features

    print(export_bundle_features(config_of(args, {"redis.url": args.redis_url}), args.version)["summary"])
    return 0


def cmd_publish_prune(args) -> int:
    from pinrec.export.build.publish import prune

    cfg = config_of(args, {"publish.keep_blessed": args.keep_blessed, "publish.keep_unblessed": args.keep_unblessed,
                           "publish.incomplete_grace_s": args.grace_s})
    removed = prune(_store(cfg), cfg.publish.name, keep_blessed=cfg.publish.keep_blessed,
                    keep_unblessed=cfg.publish.keep_unblessed, incomplete_grace_s=cfg.publish.incomplete_grace_s)
    print(f"removed {len(removed)} version(s): {', '.join(removed) or '-'}")
    return 0


def cmd_lineage(args) -> int:
    """``lineage REF``: a table version (``<table>@<version>``), an MLflow run id (32 hex digits), a bundle
    ``<name>/<version>`` or a bare bundle version of ``publish.name``."""
    import re

    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.publish.lineage import (
        bundle_lineage,
        parse_table_ref,
        render,
        run_lineage,
        table_lineage,
    )

    cfg = config_of(args)
    ref = args.ref
    spark, _ = spark_and_paths(cfg)
    catalog = Catalog(spark, cfg.storage.warehouse)
    table = parse_table_ref(ref)
    if table is not None:
        node = table_lineage(catalog, *table)
    elif re.fullmatch(r"[0-9a-f]{32}", ref):
        from mlflow import MlflowClient

        if not cfg.storage.mlflow_tracking_uri:
            raise ConfigError(f"{ref} looks like an MLflow run id, but storage.mlflow_tracking_uri is not set")
        from mlflow.exceptions import MlflowException

        try:
            run = MlflowClient(cfg.storage.mlflow_tracking_uri).get_run(ref)
        except MlflowException as e:  # an unknown run id is the user's to fix, not a traceback
            raise ValueError(f"no MLflow run {ref} in {cfg.storage.mlflow_tracking_uri}: {e.message}") from e
        node = run_lineage(run, catalog)
    else:
        from pinrec.export.serving.store import read_manifest

        name, _, version = ref.rpartition("/")
        manifest, _ = read_manifest(_store(cfg), name or cfg.publish.name, version)
        node = bundle_lineage(manifest, catalog)
    print(render(node))
    return 0


def cmd_report(args) -> int:
    """``report [REF] [--out FILE]``: prints where the report was written."""
    from pinrec.jobs.report import build_report

    cfg = config_of(args)
    spark, _ = spark_and_paths(cfg)
    print(build_report(cfg, args.ref, args.out, spark=spark))
    return 0


def snapshot_folder_name(cutoff: dt.datetime) -> str:
    """The default folder of a snapshot as of ``cutoff``: its UTC time (naive: UTC already), to the
    microsecond when it has any, so two cut-offs share a folder only when they are the same instant."""
    utc = to_spark(cutoff)
    return f"{utc:%Y%m%dT%H%M%S}" + (f".{utc:%f}" if utc.microsecond else "")


def cmd_feature_snapshot(args) -> int:
    """The snapshot, then (when ``--redis-url`` or ``redis.url`` is set) its Redis export with every
    other ``redis.*`` setting of the config (TTL, key prefix, batch size ...)."""
    from pinrec.jobs.features.feature_snapshot import (
        build_feature_snapshot,
        open_snapshot,
    )
    from pinrec.jobs.io.lake import as_location

    cfg = config_of(args, {"redis.url": args.redis_url})
    if cfg.redis.url and not args.bundle_version:
        raise ConfigError("a Redis export (--redis-url or redis.url) needs --bundle-version "
                          "(Redis keys are versioned by bundle)")
    spark, _ = spark_and_paths(cfg)
    out = as_location(args.out, s3_options(cfg.storage)) if args.out else \
        cfg.storage.location("artifacts") / "feature_snapshot" / snapshot_folder_name(args.cutoff)
    print(build_feature_snapshot(spark, cfg.storage.warehouse, args.cutoff, out, allow_empty=False).render())
    if cfg.redis.url:
        from pinrec.jobs.features.redis_export import export_snapshot

        print(export_snapshot(open_snapshot(out), args.bundle_version, cfg.redis).render())
    return 0


def cmd_stack(args) -> int:
    """``stack up|status|down``; ``status`` exits 1 when a service is dead."""
    from . import stack

    if args.action == "up":
        report = stack.up(args.state_dir, worker_cores=args.worker_cores, worker_memory=args.worker_memory)
        print(report.render())
        shown = os.path.relpath(report.state_dir) if report.state_dir.is_relative_to(Path.cwd()) \
            else str(report.state_dir)
        print(f"\n{'already running: nothing started' if report.already_running else 'started'}; next:\n"
              f"  source {shown}/{stack.ENV}\n  pinrec demo --config {shown}/{stack.CONFIG}")
        return 0
    if args.action == "status":
        report = stack.status(args.state_dir)
        print(report.render())
        return 0 if report.ok else 1
    for name, result in stack.down(args.state_dir, timeout=args.timeout).items():
        print(f"{name:<13} {result}")
    return 0


def cmd_config_show(args) -> int:
    import yaml

    from pinrec.jobs.config_schema import plain

    print(yaml.safe_dump(plain(config_of(args)), sort_keys=False), end="")
    return 0


def cmd_config_docs(args) -> int:
    """``config docs``; with ``--check`` exit 1 when a generated file is stale."""
    from pinrec.jobs.config_schema import REFERENCE_PATH, SCHEMA_PATH, write_docs

    stale = write_docs(Path(args.root), check=args.check)
    if args.check and stale:
        print(f"stale: {', '.join(map(str, stale))}; regenerate with `pinrec config docs`", file=sys.stderr)
        return 1
    print(("wrote " if stale else "up to date: ") + ", ".join(map(str, stale or [REFERENCE_PATH, SCHEMA_PATH])))
    return 0


COMMANDS: dict[str, Callable[[Any], int]] = {
    "publish bundle": cmd_publish_bundle, "publish rollback": cmd_publish_rollback,
    "publish prune": cmd_publish_prune, "publish online-features": cmd_publish_online_features, "recommend": cmd_recommend, "feature-snapshot": cmd_feature_snapshot,
    "stack up": cmd_stack, "stack status": cmd_stack, "stack down": cmd_stack,
    "config show": cmd_config_show, "config docs": cmd_config_docs, "lineage": cmd_lineage,
    "report": cmd_report,
}
