"""Benchmark: the cf channel's held-out choice on a synthetic world, and the cost of its exact search.

1. generates the synthetic world of the config (``--set`` overrides; faults and duplicates off, so
   the landing zone holds what validation would keep) into a temporary landing zone, reads its
   ``cf.actions`` (saves and closeups) before the start of the test days (the pipeline's cut-off:
   :func:`pinrec.jobs.graph.graph.evaluation_start`) and runs :func:`pinrec.jobs.cf.cf_model.fit_cf`
   with the ``cf`` section: prints the held-out table (recall@``cf.validation_k`` of every setting,
   and popularity) and the choice;
2. times one-user searches (``k = recommend.cf_candidates``) in the exact ``IDMap,Flat`` inner-product
   index the job writes, over random factors of ``--sizes`` pins x the chosen factors, at one faiss
   thread: p50 / p99 in ms.

Usage (from the repository root)::

    python benchmarks/cf.py
    python benchmarks/cf.py --set synthetic.users=5000 --set synthetic.pins=20000 --sizes 100000,1000000
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--sizes", default="10000,100000", help="pin counts of the search timing (comma-separated)")
    parser.add_argument("--searches", type=int, default=200, help="timed one-user searches per size (default 200)")
    args = parser.parse_args()

    import faiss
    import pandas as pd

    from pinrec.jobs.cf.cf_model import fit_cf
    from pinrec.jobs.config import load_config, parse_overrides
    from pinrec.jobs.features.holdout import with_holdout
    from pinrec.jobs.graph.graph import evaluation_start
    from pinrec.jobs.ingest.ingest import landed_days
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.retrieval.retrieval_data import read_landing_interactions

    overrides = parse_overrides(["synthetic.fault_rate=0", "synthetic.duplicate_rate=0", *args.set])
    cfg = load_config(None, overrides)
    with tempfile.TemporaryDirectory(prefix="pinrec-cf-bench-") as landing:
        generate(cfg.synthetic, landing, seed=cfg.seed)
        days = landed_days(landing, dt.date.min, dt.date.max)
        log = pd.concat([read_landing_interactions(landing, a) for a in cfg.cf.actions])
        shown = read_landing_interactions(landing, "impressions")["ts"].dt.date.value_counts()
    cfg = with_holdout(cfg, shown.to_dict())  # null held-out days: chosen from the impressions per day, as the demo
    cutoff = evaluation_start(days, cfg.training.test_days)
    log = log[log["ts"] < pd.Timestamp(cutoff, tz="UTC")]
    start = time.perf_counter()
    fit = fit_cf(log, cutoff, cfg.cf)
    seconds = time.perf_counter() - start
    f = fit.factors
    print(f"world: {cfg.synthetic.users} users, {cfg.synthetic.pins} pins, days {days[0]}..{days[-1]}; cut-off {cutoff}; "
          f"{len(log)} engagements of {len(f.user_ids)} users x {len(f.pin_ids)} pins; "
          f"{fit.validation_users} held-out users; {seconds:.1f} s")
    print(f"\n| factors | regularization | alpha | recall@{cfg.cf.validation_k} |\n|---|---|---|---|")
    for row in fit.validation:
        print(f"| {row['factors']} | {row['regularization']} | {row['alpha']} | {row['recall']:.4f} |")
    pop = "-" if fit.popularity_recall is None else f"{fit.popularity_recall:.4f}"
    print(f"| popularity | | | {pop} |\n\nchosen: {fit.params}")

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    dim, k = int(fit.params["factors"]), cfg.recommend.cf_candidates
    print("\n| pins | factors | k | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
        index.add_with_ids(rng.standard_normal((n, dim)).astype(np.float32), np.arange(n, dtype=np.int64))
        queries = rng.standard_normal((args.searches, dim)).astype(np.float32)
        took = []
        for q in queries:
            t = time.perf_counter()
            index.search(q[None, :], k)
            took.append((time.perf_counter() - t) * 1000)
        print(f"| {n} | {dim} | {k} | {np.percentile(took, 50):.3f} | {np.percentile(took, 99):.3f} |")


if __name__ == "__main__":
    main()
