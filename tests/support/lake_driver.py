"""The driver of the shared-nothing cluster test: the daily steps and the graph step on one session.

``python -m tests.support.lake_driver --set k=v ...`` (config overrides as for ``pinrec``; the
environment supplies the AWS variables) generates the synthetic world into the landing zone,
then ingests, builds features and the point-in-time training set for every landed day and
writes the graph for the last one, all through the jobs' own functions on the session
:func:`pinrec.jobs.io.spark.get_spark` builds. Prints one JSON line of row counts.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os

from pinrec.jobs.config import load_config, parse_overrides
from pinrec.jobs.features.features import build_features
from pinrec.jobs.features.training_set import build_training_set
from pinrec.jobs.graph.graph import evaluation_start, write_graph
from pinrec.jobs.ingest.ingest import IngestPaths, ingest, landed_days
from pinrec.jobs.ingest.synthetic import generate
from pinrec.jobs.io.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    cfg = load_config(None, parse_overrides(args.set), env=os.environ)
    landing, warehouse = cfg.storage.location("landing"), cfg.storage.warehouse
    generate(cfg.synthetic, landing, seed=cfg.seed)
    days = landed_days(landing, dt.date.min, dt.date.max)
    spark = get_spark(cfg.spark, cfg.storage.spark_s3)
    reports = ingest(spark, IngestPaths(landing, warehouse), days, cfg.ingest)
    features = build_features(spark, warehouse, days, cfg.features)
    training = build_training_set(spark, warehouse, days, cfg.training, cfg.seed)
    cutoff = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time())
    graph = write_graph(spark, warehouse, cutoff, evaluation_start(days, training.held_out_days["test"]))
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
    print(json.dumps({"valid": {r.table: r.rows_valid for r in reports}, "features": features,
                      "training_set": training.rows, "graph": graph, "executors": executors,
                      "master": spark.sparkContext.master}))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
