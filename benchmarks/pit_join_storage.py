"""Benchmark: pinrec's point-in-time join with inputs and output on object storage (SeaweedFS through
s3a) vs local disk, in one run.

For one spine size N, one run of this script:

1. generates the inputs of ``benchmarks/pit_join.py`` with its generator (a Zipf-skewed spine of N
   impressions and three feature tables of ~N/10 rows) as Parquet on local disk, starts the
   stack's SeaweedFS S3 server alone on 127.0.0.1 (:func:`pinrec.jobs.orchestration.stack.s3_only`)
   and uploads the same files there, so both storages hold identical bytes;
2. times three stages, ``--repeats`` times for each storage (storages interleaved: local, s3a,
   local, ... so that a change in the machine's load reaches both), each stage in a fresh worker
   subprocess (this file, ``--_worker``; a fresh JVM, as pit_join.py runs its engines: S3A's
   analytics input stream caches what it read in the JVM, so a stage run after another in one
   JVM would not read S3 again) with a Spark session from :func:`pinrec.jobs.io.spark.get_spark`
   (the s3a jars and settings for the s3a storage only):

   a. ``read``: a full scan of the four input tables (``noop`` write of every column; ``count``
      would only read Parquet footers);
   b. ``join``: ``point_in_time_join_many`` over the 3 views (as pit_join.py's "ours"), ``noop``
      write: the join computed from that storage's inputs;
   c. ``join + Delta``: the same join with a ``dt`` (day) column, written as a new Delta table on
      that storage by the warehouse writer, ``pinrec.jobs.io.catalog.Catalog.write`` (the
      training set's path: ``replaceWhere`` on the days, partitioned by ``dt``; on S3 it holds the
      table's writer lease), then removed by the parent;

   and, per stage, the bytes that storage's Hadoop filesystem wrote (its statistics in the driver
   JVM, which runs the ``local[K]`` executors too) and, on s3a, the S3 requests made. Each worker
   first runs one untimed job (``spark.range``, noop) so that the JVM's first-job costs are not
   timed;
3. prints one markdown table: stage x storage, median and min-max seconds, the ratio s3a/local,
   bytes and requests, and where the extra time of the s3a run goes (read / join / Delta write,
   from the medians: join = b - a, Delta write = c - b).

SeaweedFS runs on the same machine as Spark, over loopback, on the same disk: the s3a numbers are
the cost of the S3 protocol and the s3a client plus SeaweedFS's own CPU, not of a network.

Usage (from the repository root)::

    python benchmarks/pit_join_storage.py --n 1e5 --repeats 1
    python benchmarks/pit_join_storage.py --n 1e7 --repeats 3 --out var/pit_join_storage.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pit_join import DAYS, REPO_ROOT, SEED, START, VIEWS, generate, log, ours_chain

STORAGES = ("local", "s3a")
STAGES = (("read", "read the 4 inputs (full scan, noop)"), ("join", "PIT join, 3 views (noop write)"),
          ("delta", "PIT join written as Delta"))
TABLES = ("spine", *(v.table for v in VIEWS))
# S3A's request counters (org.apache.hadoop.fs.s3a.Statistic) -> what the table shows
S3_REQUESTS = {"store_io_request": "all", "action_http_get_request": "GET", "object_put_request": "PUT",
               "action_http_head_request": "HEAD", "object_list_request": "LIST",
               "object_continue_list_request": "LIST", "object_delete_request": "DELETE",
               "object_bulk_delete_request": "DELETE"}


# --------------------------------------------------------------------------------------------
# worker: one fresh JVM, three timed stages on one storage
# --------------------------------------------------------------------------------------------

class _FsCounters:
    """Bytes written through one filesystem scheme (Hadoop's per-JVM statistics) and, for s3a,
    the requests of the session's S3A filesystem. Not bytes read: Parquet's vectored reads
    bypass Hadoop's read counters (a full scan of a 1.8 MB file counted its 2.4 kB footer)."""

    def __init__(self, spark, root: str, scheme: str) -> None:
        jvm = spark._jvm
        self._jvm, self.scheme = jvm, scheme
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.fs = jvm.org.apache.hadoop.fs.Path(root).getFileSystem(conf)  # opens (and caches) it

    def snapshot(self) -> dict[str, int]:
        out = {"bytes_written": 0}
        for st in self._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics():
            if st.getScheme() == self.scheme:
                out["bytes_written"] += st.getBytesWritten()
        if self.scheme == "s3a":
            it = self.fs.getStorageStatistics().getLongStatistics()
            while it.hasNext():
                s = it.next()
                verb = S3_REQUESTS.get(s.getName())
                if verb:
                    out[verb] = out.get(verb, 0) + s.getValue()
        return out


def worker_main(args) -> None:
    from pyspark.sql import functions as F

    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.spark import get_spark

    events = open(args._events, "a", buffering=1)  # noqa: SIM115 -- open for the whole worker process

    def emit(**kw):
        events.write(json.dumps(kw) + "\n")

    s3 = S3Options.from_env(os.environ) if args._worker == "s3a" else None  # keys from the environment only
    # adaptive execution on, as every documented run of this benchmark had it (pinrec's local default is off:
    # at 1M-10M spine rows, with skewed keys, AQE's skew-join splitting is what a user of a cluster gets)
    cfg = SparkConfig(master=f"local[{args.spark_cores}]", shuffle_partitions=args.shuffle_partitions,
                      jars_dir=str(REPO_ROOT / "var" / "jars"), driver_memory=args.driver_memory, adaptive=True)
    spark = get_spark(cfg, s3=s3)
    inputs, output = args._inputs.rstrip("/"), args._output
    t0 = time.perf_counter()
    counters = _FsCounters(spark, inputs, "s3a" if args._worker == "s3a" else "file")
    emit(event="ready", spark=spark.version, fs_init_s=time.perf_counter() - t0)
    spark.range(100_000).selectExpr("id", "id * 2 AS x").write.format("noop").mode("overwrite").save()  # warm-up
    ttl = dt.timedelta(days=args.ttl_days)

    def read(table: str):
        return spark.read.parquet(f"{inputs}/{table}.parquet")

    def joined():
        tables = {v.name: read(v.table) for v in VIEWS}
        return ours_chain(read("spine"), tables, ttl, validate=False, broadcast_max_mib=args.broadcast_max_mib)

    def stage_read():
        for table in TABLES:
            read(table).write.format("noop").mode("overwrite").save()

    def stage_join():
        joined().write.format("noop").mode("overwrite").save()

    def stage_delta():
        # the spine's days, known up front as a daily job knows its data interval (Delta checks the rows fit)
        first, end = START.date(), START.date() + dt.timedelta(days=DAYS)
        Catalog(spark, output).write("training_set", joined().withColumn("dt", F.to_date("ts")),
                                     replace_where=f"dt >= DATE'{first}' AND dt < DATE'{end}'")

    fn = {"read": stage_read, "join": stage_join, "delta": stage_delta}[args._stage]
    before = counters.snapshot()
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    after = counters.snapshot()
    emit(event="stage", stage=args._stage, seconds=seconds, **{k: after[k] - before.get(k, 0) for k in after})
    spark.stop()


# --------------------------------------------------------------------------------------------
# parent: data, the S3 server, the runs
# --------------------------------------------------------------------------------------------

def run_worker(storage: str, stage: str, args, inputs: str, output: str, work: Path, tag: str,
               env: dict) -> list[dict]:
    """One worker subprocess timing ``stage`` on ``storage``; its events. Raises with the log's tail when it fails or
    runs over ``--run-timeout-min`` (then it and its JVM are killed)."""
    from pit_join import _kill_tree

    events, log_path = work / f"{tag}.events.jsonl", work / f"{tag}.log"
    events.write_text("")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", storage, "--_stage", stage,
           "--_inputs", inputs,
           "--_output", output, "--_events", str(events), "--ttl-days", str(args.ttl_days),
           "--spark-cores", str(args.spark_cores), "--shuffle-partitions", str(args.shuffle_partitions),
           "--driver-memory", args.driver_memory,
           *(["--broadcast-max-mib", str(args.broadcast_max_mib)] if args.broadcast_max_mib is not None else [])]
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdout=logf, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        proc.wait(timeout=args.run_timeout_min * 60)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        raise RuntimeError(f"worker {tag} ran over {args.run_timeout_min:g} min and was killed; log {log_path}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"worker {tag} failed (rc={proc.returncode}); log {log_path}:\n"
                           f"{log_path.read_text()[-3000:]}")
    return [json.loads(line) for line in events.read_text().splitlines()]


def _worker_env(s3) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if s3 is not None:  # never on a command line: ps shows those
        env |= {"AWS_ENDPOINT_URL": s3.endpoint_url, "AWS_REGION": s3.region,
                "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    return env


def measure(args, work: Path, data: Path, s3) -> dict:
    """Upload the inputs (when s3a is measured) and run the workers; the report's measurements."""
    from pyarrow import fs as pafs

    from pinrec.jobs.io.lake import Location
    from pinrec.jobs.orchestration.stack_services import BUCKET

    roots = {}
    if "local" in args.storages:
        roots["local"] = Location(str(work / "local"))
    if "s3a" in args.storages:
        roots["s3a"] = Location(f"s3a://{BUCKET}/pit-join-storage-{uuid.uuid4().hex[:8]}", s3)
    out: dict = {"storages": {}}
    for storage, root in roots.items():
        inputs = root / "inputs"
        t = time.perf_counter()
        inputs.fs.makedirs(inputs.path, exist_ok=True)
        pafs.copy_files(str(data), inputs.path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=inputs.arrow_fs)
        out["storages"][storage] = {"write_inputs_s": round(time.perf_counter() - t, 2), "root": root.uri,
                                    "runs": []}
    for r in range(args.repeats):
        for storage, root in roots.items():
            output = root / f"run{r}"  # a warehouse per run: its training_set is the new table
            log(f"  run {r + 1}/{args.repeats} on {storage}")
            run, init = {}, []
            for stage, _ in STAGES:
                events = run_worker(storage, stage, args, (root / "inputs").spark, output.spark, work,
                                    f"{storage}_{r}_{stage}", _worker_env(s3 if storage == "s3a" else None))
                run |= {e["stage"]: {k: v for k, v in e.items() if k not in ("event", "stage")}
                        for e in events if e["event"] == "stage"}
                init += [e["fs_init_s"] for e in events if e["event"] == "ready"]
            run["fs_init_s"], run["load1"] = statistics.median(init), os.getloadavg()[0]
            log("    " + ", ".join(f"{s} {run[s]['seconds']:.2f} s" for s, _ in STAGES))
            out["storages"][storage]["runs"].append(run)
            output.fs.rm(output.path, recursive=True)  # each run writes a new table; keep the disk bounded
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="1e7", help="spine size (impressions; default 1e7)")
    p.add_argument("--storage", default="local,s3a", help="comma-separated, of local and s3a (default both)")
    p.add_argument("--repeats", type=int, default=3, help="runs per storage, each in a fresh JVM; medians reported")
    p.add_argument("--zipf-a", type=float, default=1.3, help="Zipf exponent of user and pin ids (as pit_join.py)")
    p.add_argument("--ttl-days", type=float, default=2.0, help="TTL of all three views (default 2 days)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--spark-cores", type=int, default=2, help="local[K] (default 2)")
    p.add_argument("--shuffle-partitions", type=int, default=16)
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--broadcast-max-mib", type=float, default=None,
                   help="feature tables Spark estimates at most this size (MiB) take the broadcast lookup; "
                        "0: a shuffle path only (default: pinrec.jobs.features.pit_join.BROADCAST_MAX_BYTES)")
    p.add_argument("--run-timeout-min", type=float, default=30.0, help="limit per worker run (default 30)")
    p.add_argument("--out", help="write all results as JSON to this path")
    p.add_argument("--work-dir", help="data, logs and the S3 server's files (default: a temp dir, removed at the end)")
    for hidden in ("--_worker", "--_stage", "--_inputs", "--_output", "--_events"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    storages = tuple(s.strip() for s in args.storage.split(",") if s.strip())
    if not storages or set(storages) - set(STORAGES) or len(set(storages)) != len(storages):
        p.error(f"--storage {args.storage!r}: give local, s3a or local,s3a")
    args.storages = storages
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        worker_main(args)
        return 0
    import psutil

    from pinrec.jobs.orchestration.stack import s3_only

    n = int(float(args.n))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pinrec-pit-storage-")).resolve()
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    machine = {"nproc": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
               "python": platform.python_version(), "platform": platform.platform()}
    report = {"date": dt.date.today().isoformat(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "machine": machine, "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    try:
        log(f"N={n:,}: generating data in {data}")
        report["data"] = generate(n, args.zipf_a, data, args.seed)
        report["input_bytes"] = sum(f.stat().st_size for f in data.glob("*.parquet"))
        load = [os.getloadavg()[0]]
        if "s3a" in args.storages:
            with s3_only(work / "s3") as s3:
                report |= measure(args, work, data, s3)
        else:
            report |= measure(args, work, data, None)
        load.append(os.getloadavg()[0])
        report["load1"] = load
    finally:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(render(report, args))
    return 0


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------

def _stat(runs: list[dict], stage: str, key: str = "seconds") -> tuple[float, float, float]:
    values = [r[stage][key] if stage in r else r[key] for r in runs]
    return statistics.median(values), min(values), max(values)


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def _requests(run_stats: list[dict]) -> str:
    verbs = dict.fromkeys(v for v in S3_REQUESTS.values())
    return ", ".join(f"{v} {statistics.median(r.get(v, 0) for r in run_stats):,.0f}" for v in verbs)


def where_the_difference_goes(local: list[dict], s3a: list[dict]) -> str:
    """From the median stage times: the whole job (``delta``) splits into reading the inputs
    (``read``), the join beyond that scan (``join - read``) and writing the table (``delta - join``);
    the s3a run's extra time, part by part."""
    def parts(runs):
        read, join, delta = (_stat(runs, s)[0] for s, _ in STAGES)
        return {"reading the inputs": read, "the join beyond the scan": join - read,
                "writing the Delta table": delta - join}

    a, b = parts(local), parts(s3a)
    extra = {k: b[k] - a[k] for k in a}
    total = sum(extra.values())
    whole = sum(a.values())
    if total <= 0:
        return (f"Where the difference goes: none; the whole job on s3a took {total:+.2f} s vs local "
                f"({', '.join(f'{k} {v:+.2f} s' for k, v in extra.items())}).")
    return (f"Where the difference goes: the whole job (join + Delta write) takes {total:+.2f} s more on s3a "
            f"({(whole + total) / whole:.2f}x local); of that extra, "
            + "; ".join(f"{k} {v:+.2f} s ({v / total:.0%})" for k, v in extra.items()) + ".")


def render(report: dict, args) -> str:
    m, st = report["machine"], report["data"]
    runs = {s: e["runs"] for s, e in report["storages"].items()}
    both = set(runs) == set(STORAGES)
    load = "/".join(f"{x:.1f}" for x in report.get("load1", []))
    lines = [
        (f"PIT join storage benchmark, {report['date']}: `{report['command']}`. Machine: {m['nproc']} cores, "
         f"{m['ram_gib']} GiB RAM, Python {m['python']}; 1-min load average at start/end {load}. "
         f"N = {st['n']:,} impressions ({st['users']:,} users, {st['pins']:,} pins; feature rows user "
         f"{st['user_features_rows']:,} / pin {st['pin_features_rows']:,} / user x category "
         f"{st['user_category_features_rows']:,}), inputs {_mib(report['input_bytes'])} MiB of Parquet. "
         f"Spark local[{args.spark_cores}], {args.shuffle_partitions} shuffle partitions, driver "
         f"{args.driver_memory}; {args.repeats} run(s) per storage, each stage in a fresh JVM, storages interleaved; "
         f"seconds as median (min-max). s3a: SeaweedFS on 127.0.0.1, same machine and disk."),
        "",
        "| stage | " + " | ".join(f"{s} (s)" for s in runs) + (" | s3a/local" if both else "")
        + " | MiB written " + "/".join(runs)
        + (" | S3 requests (s3a) |" if "s3a" in runs else " |"),
        "|---|" + "---:|" * (len(runs) + (1 if both else 0) + 1) + ("---|" if "s3a" in runs else ""),
    ]
    for stage, label in STAGES:
        cells = []
        for storage_runs in runs.values():
            med, lo, hi = _stat(storage_runs, stage)
            cells.append(f"{med:.2f} ({lo:.2f}-{hi:.2f})")
        if both:
            cells.append(f"{_stat(runs['s3a'], stage)[0] / _stat(runs['local'], stage)[0]:.2f}x")
        cells.append(" / ".join(_mib(_stat(runs[s], stage, "bytes_written")[0]) for s in runs))
        if "s3a" in runs:
            cells.append(_requests([r[stage] for r in runs["s3a"]]))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if both:
        lines.append(where_the_difference_goes(runs["local"], runs["s3a"]))
    notes = [f"{s}: writing the inputs there {e['write_inputs_s']:.2f} s (once, not in the stages); opening its "
             f"Hadoop filesystem {_stat(e['runs'], '', 'fs_init_s')[0]:.2f} s per JVM (not timed); "
             f"stage runs (read/join/delta; 1-min load average after the run) "
             + ", ".join("/".join(f"{r[k]['seconds']:.2f}" for k, _ in STAGES) + f" ({r['load1']:.1f})"
                         for r in e["runs"])
             for s, e in report["storages"].items()]
    lines += ["", *[f"- {x}" for x in notes],
              ("- MiB written: Hadoop's filesystem statistics of that storage's scheme (file / s3a) in the driver "
               "JVM, which runs the local executors: data files and Delta log (locally also Hadoop's .crc files). "
               "Bytes read are not shown: Parquet's vectored reads bypass those counters. Each stage reads the "
               f"inputs in full ({_mib(report['input_bytes'])} MiB; s3a reads through Hadoop 3.5's analytics input "
               "stream, which prefetches: see its GETs)."),
              ("- join = `point_in_time_join_many` (validate=False) over the 3 views; Delta = the same join plus a "
               "`dt` column, written by `pinrec.jobs.io.catalog.Catalog.write` (replaceWhere on the days, "
               "partitioned by dt; the writer lease on S3) as a new table per run.")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
