"""Benchmark: how close to DuckDB's ASOF join can *any* Spark point-in-time join get on this machine?

Issue #24 asks pinrec's join to be within 2x of DuckDB's ``ASOF JOIN`` (``benchmarks/pit_join.py``).
This script measures a floor under every Spark implementation of that join, on the same generated
data (``pit_join.generate``: the spine and the three feature tables as Parquet), in one run:

* ``spark read``: Spark reads all four inputs in full (``noop`` writes of each, every column) --
  any join has to read them;
* ``spark emit``: Spark emits the result's rows without joining anything: the spine with the 24
  output columns, the 16 feature columns as typed nulls (``noop`` write) -- any join has to
  produce them;
* ``spark floor`` = read + emit (two jobs, as ours runs at least two stages);
* ``ours broadcast``: pinrec's join (``pit_join.ours_chain``, the path the pipeline takes), for reference;
* ``duckdb asof``: the peer query of ``pit_join.py`` (aggregating a hash of every output column).

If the floor alone is over 2x DuckDB, no Spark join reaches the target on this machine; the table
says by how much. Spark runs as ``pit_join.py``'s worker does (``local[K]``, adaptive execution
on); each number is the median of ``--repeats`` runs after one warm-up run of each Spark query
(the JVM's first run is 2.5x the later ones).

Usage (from the repository root)::

    python benchmarks/pit_join_floor.py --size 1e7 --repeats 3 --work-dir /tmp/floor
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pit_join as pj  # the benchmark's data, views and peer query


def _timed(fn, repeats: int, warmup: bool) -> list[float]:
    if warmup:
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def spark_runs(data: Path, args) -> dict[str, list[float]]:
    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.spark import get_spark

    cfg = SparkConfig(master=f"local[{args.spark_cores}]", shuffle_partitions=args.shuffle_partitions,
                      jars_dir=str(pj.REPO_ROOT / "var" / "jars"), driver_memory=args.driver_memory, adaptive=True)
    spark = get_spark(cfg)
    spine = spark.read.parquet(str(data / "spine.parquet"))
    tables = {v.name: spark.read.parquet(str(data / f"{v.table}.parquet")) for v in pj.VIEWS}
    types = {"int64": "bigint", "float64": "double"}
    nulls = []
    for v in pj.VIEWS:
        nulls += [f"cast(null as {types[t]}) as {v.name}__{c}" for c, t in v.features]
        nulls += [f"cast(null as timestamp) as {v.name}__feature_ts", f"false as {v.name}__missing"]
    emit = spine.select("event_id", "user_id", "pin_id", "category", "ts").selectExpr("*", *nulls)
    assert emit.columns == pj.output_columns()

    def read():
        for df in (spine, *tables.values()):
            df.write.format("noop").mode("overwrite").save()

    def emit_rows():
        emit.write.format("noop").mode("overwrite").save()

    ttl = dt.timedelta(days=args.ttl_days)

    def ours():
        pj.ours_chain(spine, tables, ttl).write.format("noop").mode("overwrite").save()

    runs = {"spark read": _timed(read, args.repeats, True), "spark emit": _timed(emit_rows, args.repeats, True)}
    runs["spark floor (read + emit)"] = [a + b for a, b in zip(runs["spark read"], runs["spark emit"], strict=True)]
    runs["ours broadcast"] = _timed(ours, args.repeats, True)
    spark.stop()
    return runs


def duckdb_runs(data: Path, args) -> list[float]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.duckdb_threads}")
    q = pj.duckdb_asof_sql(data, data / "spine.parquet", int(dt.timedelta(days=args.ttl_days).total_seconds()))
    agg = f"SELECT count(*), bit_xor(hash({', '.join(pj.output_columns())})) FROM ({q})"
    return _timed(lambda: con.sql(agg).fetchall(), args.repeats, False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=float, default=1e7, help="spine rows (default 1e7)")
    p.add_argument("--keys", choices=pj.KEY_DISTRIBUTIONS, default="uniform")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ttl-days", type=float, default=2.0)
    p.add_argument("--spark-cores", type=int, default=2)
    p.add_argument("--shuffle-partitions", type=int, default=16)
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--duckdb-threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--work-dir", help="data folder (kept; reused when it holds the same size and keys)")
    args = p.parse_args(argv)
    n = int(args.size)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pit-floor-"))
    data = work / f"data-{n}-{args.keys}"
    if not (data / "spine.parquet").exists():
        data.mkdir(parents=True, exist_ok=True)
        pj.generate(n, 1.3, data, pj.SEED, keys=args.keys)
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; N={n:,} {args.keys} keys, medians of {args.repeats}")
    duck = duckdb_runs(data, args)
    runs = spark_runs(data, args)
    runs["duckdb asof"] = duck
    d = statistics.median(duck)
    print("\n| query | median (s) | runs (s) | ÷ DuckDB ASOF |\n|---|---:|---|---:|")
    for name, xs in runs.items():
        m = statistics.median(xs)
        print(f"| {name} | {m:.2f} | {' / '.join(f'{x:.2f}' for x in xs)} | {m / d:.2f}× |")
    floor = statistics.median(runs["spark floor (read + emit)"])
    verdict = "out of reach for any Spark join here" if floor > 2 * d else "not ruled out by the floor"
    print(f"\nwithin 2x of DuckDB needs <= {2 * d:.2f} s; Spark's floor is {floor:.2f} s ({floor / d:.2f}x): {verdict}")
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
