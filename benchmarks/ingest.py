"""Benchmark: where ingestion's seconds go on the default synthetic world (issue #24, "a fast first run").

1. generates the synthetic world of the default config (``--days`` to change it) into a temporary
   landing zone, once (no Spark);
2. starts one Spark session (not timed) and ingests every landed day in one batch, as ``make demo``
   does, ``--repeats`` times, each into a fresh warehouse;
3. per table: the seconds and the number of Spark jobs, and the seconds inside each phase, timed by
   wrapping the functions named in :data:`PHASES` (a name the code no longer has is skipped);
   "other" is the rest (reading and counting the lines, parsing, the report's counts and samples).

The medians over the repeats close the table; the load average is printed before and after.

Usage::

    python benchmarks/ingest.py --repeats 3
    python benchmarks/ingest.py --repeats 1 --days 1   # a quick check
    python benchmarks/ingest.py --repeats 3 --config my.yaml   # e.g. spark.extra settings
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (module, attribute, phase): functions whose time is booked to a phase (the outermost one wins).
PHASES = (
    ("pinrec.jobs.ingest.ingest", "read_lines", "list files"),
    ("pinrec.jobs.ingest.ingest", "_register_references", "reference keys"),
    ("pinrec.jobs.ingest.validation", "count_by_check", "row tagging counts"),
    ("pinrec.jobs.ingest.validation", "run_suite", "GX suite"),
    ("pinrec.jobs.ingest.validation", "run_suites", "GX suite"),
    ("pinrec.jobs.io.catalog", "Catalog.write", "Delta writes"),
)


class PhaseClock:
    """Seconds per (table, phase); only the outermost wrapped call on the stack is booked."""

    def __init__(self, spark):
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.jobs: dict[tuple[str, str], int] = defaultdict(int)
        self.table = "?"
        self._sc = spark.sparkContext
        self._depth = 0

    def jobs_of(self, group: str) -> int:
        return len(self._sc.statusTracker().getJobIdsForGroup(group))

    def wrap(self, fn, phase: str):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            group = f"{self.table}/{phase}/{time.perf_counter_ns()}"
            self._sc.setJobGroup(group, group)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                self.seconds[(self.table, phase)] += time.perf_counter() - t0
                self.jobs[(self.table, phase)] += self.jobs_of(group)
                self._sc.setJobGroup(self.table, self.table)
        return timed

    def install(self) -> None:
        import importlib

        for module, attr, phase in PHASES:
            owner = importlib.import_module(module)
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part)
            if hasattr(owner, name):
                setattr(owner, name, self.wrap(getattr(owner, name), phase))


def run_once(spark, cfg, landing: str, days, clock: PhaseClock) -> dict[str, tuple[float, int]]:
    """Ingest ``days`` of every raw table into a fresh warehouse: table -> (seconds, Spark jobs)."""
    from pinrec.jobs.ingest.ingest import IngestPaths, ingest_table
    from pinrec.schemas.catalog import RAW_TABLES

    out = {}
    with tempfile.TemporaryDirectory(prefix="pinrec-bench-wh-") as warehouse:
        paths = IngestPaths(landing, warehouse)
        for spec in RAW_TABLES:
            clock.table = spec.name
            spark.sparkContext.setJobGroup(spec.name, spec.name)
            t0 = time.perf_counter()
            ingest_table(spark, spec, paths, days, cfg.ingest)
            seconds = time.perf_counter() - t0
            jobs = clock.jobs_of(spec.name) + sum(n for (t, _), n in clock.jobs.items() if t == spec.name)
            out[spec.name] = (seconds, jobs)
        spark.sparkContext.setJobGroup("", "")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--days", type=int, default=None, help="synthetic days (default: the config's)")
    ap.add_argument("--config", default=None, help="a YAML config (e.g. spark.extra settings to compare)")
    args = ap.parse_args(argv)

    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.ingest import landed_days
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.io.spark import get_spark

    cfg = load_config(args.config, overrides={"synthetic": {"days": args.days}} if args.days else None)
    print(f"# {dt.datetime.now():%Y-%m-%d %H:%M} {platform.node()} {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="pinrec-bench-landing-") as landing:
        generate(cfg.synthetic, landing, seed=cfg.seed)
        days = landed_days(landing, dt.date.min, dt.date.max)
        spark = get_spark(cfg.spark)
        clock = PhaseClock(spark)
        clock.install()
        runs = []
        for i in range(args.repeats):
            clock.seconds.clear()
            clock.jobs.clear()
            t0 = time.perf_counter()
            per_table = run_once(spark, cfg, landing, days, clock)
            total = time.perf_counter() - t0
            runs.append((total, per_table, dict(clock.seconds), dict(clock.jobs)))
            print(f"run {i + 1}: ingest {total:.1f} s over {len(days)} day(s), "
                  f"load average {os.getloadavg()[0]:.2f}")
    phases = sorted({phase for _, _, secs, _ in runs for _, phase in secs})
    print(f"\n{'table':<16} {'s':>6} {'jobs':>5} " + " ".join(f"{p[:14]:>14}" for p in phases) + f" {'other':>13}")
    print("(seconds (Spark jobs) per phase)")
    for table in runs[0][1]:
        med = statistics.median(r[1][table][0] for r in runs)
        jobs = statistics.median(r[1][table][1] for r in runs)
        parts = [statistics.median(r[2].get((table, p), 0.0) for r in runs) for p in phases]
        njobs = [statistics.median(r[3].get((table, p), 0) for r in runs) for p in phases]
        print(f"{table:<16} {med:>6.1f} {jobs:>5.0f} " + " ".join(f"{s:>8.1f} ({n:>3.0f})" for s, n in zip(parts, njobs))
              + f" {med - sum(parts):>7.1f} ({jobs - sum(njobs):>3.0f})")
    print(f"{'total (median)':<16} {statistics.median(r[0] for r in runs):>6.1f} "
          f"{statistics.median(sum(j for _, j in r[1].values()) for r in runs):>5.0f}")
    print(f"# load average after: {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
