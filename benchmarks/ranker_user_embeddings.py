"""Benchmark: which user embeddings help the ranker: from recent saves, recent closeups, or both?

The ranker's user embedding is the normalised mean of the PinSage embeddings of pins in one of
the user feature view's lists (:mod:`pinrec.export.serving.embedding_features`): ``saves`` averages
``user__last_saved_pins``, ``closeups`` averages ``user__last_closeup_pins``. This script trains
the ranker job's model (:func:`pinrec.jobs.ranking.ranker.train_ranker`, the configured model, trainer and
calibration; no baselines, no twin, no export) on one warehouse's training set and PinSage
embeddings for each ``ranker_job.user_embeddings`` variant and each training seed, and prints
the test AUC of the served score (calibrated, position-free) and of the with-position
likelihood, per seed, then the mean and each variant's per-seed difference from the first one
(the same seed, so the same initialisation and batch order otherwise).

A difference smaller than the spread between seeds is noise: one seed moves a save AUC by
about 0.02 on the demo world. Read the per-seed differences.

Usage (from the repository root, after ``pinrec demo`` or ``pinrec features`` + ``training-set``
+ ``pinsage`` have filled the warehouse)::

    python benchmarks/ranker_user_embeddings.py --set storage.warehouse=/tmp/x/warehouse \\
        --set storage.landing=/tmp/x/landing --variants saves,closeups,saves+closeups --seeds 0,1,2,3,4
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np

COLUMNS = (("ranker", "save"), ("ranker", "closeup"), ("ranker (with position)", "save"),
           ("ranker (with position)", "closeup"))
HEADERS = ("served save", "served closeup", "with position save", "with position closeup")


def parse_variants(text: str) -> list[tuple[str, ...]]:
    """``"saves,closeups,saves+closeups"`` -> [("saves",), ("closeups",), ("saves", "closeups")]."""
    from pinrec.jobs.ranking.config import USER_EMBEDDING_KINDS

    out = [tuple(v.split("+")) for v in text.split(",") if v]
    bad = [v for v in out if not v or not set(v) <= set(USER_EMBEDDING_KINDS) or len(set(v)) != len(v)]
    if not out or bad:
        raise ValueError(f"variants are +-joined distinct values of {tuple(USER_EMBEDDING_KINDS)}, got {text!r}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="pinrec YAML config (default: the embedded defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--variants", default="saves,closeups,saves+closeups",
                   help="comma list of ranker_job.user_embeddings values, kinds joined by +")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list of training seeds")
    args = p.parse_args(argv)
    try:
        variants = parse_variants(args.variants)
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as e:
        p.error(str(e))

    from pinrec.export.serving.embedding_features import EmbeddingTable
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.index.pin_index import read_embeddings
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.spark import get_spark
    from pinrec.jobs.ranking.ranker import read_training_set, train_ranker

    cfg = load_config(args.config, parse_overrides(args.set))
    warehouse = cfg.storage.warehouse.rstrip("/")
    truth = f"{cfg.storage.landing.rstrip('/')}/_truth"
    spark = get_spark(cfg.spark)
    try:
        catalog = Catalog(spark, warehouse)
        if not catalog.exists("pin_embeddings"):
            raise SystemExit(f"no pin_embeddings in {warehouse}: run `pinrec pinsage` first")
        columns = catalog.read("training_set").columns
        frame, meta = read_training_set(spark, catalog, columns)
        ids, vectors, version, _ = read_embeddings(spark, catalog)
    finally:
        spark.stop()
    table = EmbeddingTable(ids, vectors, version)
    print(f"load average {os.getloadavg()[0]:.2f}; training set v{meta.get('training_set_version')} "
          f"({len(frame)} rows); embeddings {version}; seeds {seeds}")

    auc: dict[tuple[str, ...], np.ndarray] = {}
    for variant in variants:
        auc[variant] = np.zeros((len(seeds), len(COLUMNS)))
        for i, seed in enumerate(seeds):
            start = time.perf_counter()
            job = replace(cfg.ranker_job, baselines=(), no_position_twin=False, bootstrap_resamples=0, int8=False,
                          user_embeddings=variant)
            report = train_ranker(frame, None, cfg.ranker, replace(cfg.ranker_train, seed=seed, progress=False),
                                  cfg.calibration, job, None, None, truth if os.path.isdir(truth) else None,
                                  embeddings=table)
            auc[variant][i] = [report.metric(m, t, "auc") for m, t in COLUMNS]
            print(f"  {'+'.join(variant)} seed {seed}: " + "  ".join(f"{h} {x:.4f}" for h, x in
                                                                      zip(HEADERS, auc[variant][i]))
                  + f"  ({time.perf_counter() - start:.0f} s)", flush=True)

    print(f"\n| user_embeddings | {' | '.join(HEADERS)} |")
    print("|---|" + "---:|" * len(HEADERS))
    for variant in variants:
        print(f"| {'+'.join(variant)} (mean of {len(seeds)}) | "
              + " | ".join(f"{x:.4f}" for x in auc[variant].mean(0)) + " |")
    base = variants[0]
    for variant in variants[1:]:
        diff = auc[variant] - auc[base]
        print(f"\n{'+'.join(variant)} - {'+'.join(base)}, per seed {seeds}:")
        for j, h in enumerate(HEADERS):
            print(f"  {h:22s} mean {diff[:, j].mean():+.4f}  [" + ", ".join(f"{d:+.4f}" for d in diff[:, j])
                  + f"]  higher in {int((diff[:, j] > 0).sum())} of {len(seeds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
