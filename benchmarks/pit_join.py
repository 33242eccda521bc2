"""Benchmark: pinrec's point-in-time join vs Feast's Spark formulation vs DuckDB ``ASOF JOIN``.

For each spine size N, one run of this script:

1. generates (numpy, seeded) a spine of N impressions whose ``user_id`` and ``pin_id`` are
   truncated-Zipf distributed (so power users / viral pins are real hot keys) and three feature
   tables (user, pin, user x category; ~N/10 rows each, unique (entity, feature_ts), ``created_ts``
   = ``feature_ts`` + 0..2 h), written once as Parquet so every engine reads the same files;
2. times, as the median of ``--repeats`` runs, each fully materialising the 3-view result:
   a. ours: ``pinrec.jobs.features.pit_join.point_in_time_join_many`` over the 3 views (``validate=False``;
      each view is a broadcast lookup when Spark estimates its table at most
      ``--broadcast-max-mib``, else a sort-merge window sharing one shuffle per leading entity;
      the uniqueness check is timed once, separately), Spark ``noop`` write;
   b. Feast's Spark formulation (range join on entity + ``feature_ts <= ts`` + ``feature_ts >= ts -
      ttl`` + ``created_ts <= ts``, then ``ROW_NUMBER() OVER (PARTITION BY spine row ORDER BY
      feature_ts DESC, created_ts DESC) = 1``, left-joined back), same Spark settings, under a hard
      per-run timeout; the worker process (and its JVM) is killed when it runs out;
   c. DuckDB ``ASOF LEFT JOIN`` on the same Parquet files (TTL applied as a post-filter; DuckDB's
      ASOF cannot apply the ``created_ts`` rule, so it does slightly less work), full aggregation
      over a hash of every output column;
   d. peak RSS of each worker's JVM and Python process (psutil polling), and of this process;
3. prints one markdown table, and a correctness spot check on a 10k-row sample of the smallest
   spine: ours vs the Feast formulation, vs an exact DuckDB reference (range join + max), and vs
   DuckDB ASOF + TTL (expected to differ exactly where ``created_ts > ts`` matters).

Every engine-side measurement runs in its own worker subprocess (this same file, ``--_worker``),
sequentially, so peak memory is attributable and a timed-out Spark job is really stopped.

Usage (from the repository root)::

    python benchmarks/pit_join.py --sizes 1e4,1e5 --repeats 1 --feast-timeout-min 1
    python benchmarks/pit_join.py --sizes 1e6 --repeats 3 --feast-timeout-min 5 --out var/bench.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

SEED = 20260101
DAYS = 30
N_CATEGORIES = 12
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STARTUP_SLACK_S = 300  # a worker may take this long to start Spark / between runs
SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class BenchView:
    name: str
    table: str
    keys: tuple[str, ...]
    features: tuple[tuple[str, str], ...]  # (column, dtype)


VIEWS = (
    BenchView("user", "user_features", ("user_id",),
              (("u_impressions_1d", "int64"), ("u_closeup_rate", "float64"), ("u_save_rate", "float64"))),
    BenchView("pin", "pin_features", ("pin_id",),
              (("p_impressions_1d", "int64"), ("p_save_rate", "float64"), ("p_board_count", "int64"))),
    BenchView("user_category", "user_category_features", ("user_id", "category"),
              (("uc_impressions_30d", "int64"), ("uc_closeup_rate", "float64"))),
)


def make_feature_view(v: BenchView, ttl: dt.timedelta):
    """The pinrec FeatureView for ``v``. The one line to adapt if FeatureView's signature changes
    (older form: ``FeatureView(v.name, v.keys[0], feats, ttl)``)."""
    from pinrec.schemas.features import Feature, FeatureView

    feats = tuple(Feature(c, t) for c, t in v.features)
    return FeatureView(v.name, entities=v.keys, features=feats, ttl=ttl)


# --------------------------------------------------------------------------------------------
# data generation (parent process)
# --------------------------------------------------------------------------------------------

def _zipf_ids(rng, a: float, n_ids: int, size: int, perm):
    """Zipf(a) ranks truncated to ``n_ids`` (re-drawn, not clipped: clipping would pile the tail
    mass onto one id and create a spurious hot key), mapped through ``perm`` so hot ids are not
    the small ones."""
    import numpy as np

    out = rng.zipf(a, size).astype(np.int64)
    bad = out > n_ids
    while bad.any():
        out[bad] = rng.zipf(a, int(bad.sum()))
        bad = out > n_ids
    return perm[out - 1]


def _unique_by(key, *cols):
    import numpy as np

    _, idx = np.unique(key, return_index=True)
    return [c[idx] for c in cols]


def generate(n: int, a: float, out_dir: Path, seed: int) -> dict:
    """Write spine.parquet and the three feature tables under ``out_dir``; return stats."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_users, n_pins = max(100, n // 20), max(100, n // 10)
    n_feat = max(100, n // 10)
    user_perm = rng.permutation(n_users).astype(np.int64) + 1
    pin_perm = rng.permutation(n_pins).astype(np.int64) + 1
    pin_cat = rng.integers(0, N_CATEGORIES, n_pins + 1).astype(np.int32)  # indexed by pin_id
    cat_names = pa.array([f"c{i:02d}" for i in range(N_CATEGORIES)])
    start_us = int(START.timestamp() * 1_000_000)
    ts_type = pa.timestamp("us", tz="UTC")
    rg = 131_072  # several row groups, so both engines can read a file in parallel

    def cat_array(codes):
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), cat_names).cast(pa.string())

    # spine: impressions in time order, event_id = position
    ts = np.sort(start_us + rng.integers(0, DAYS * 86_400 * 1_000_000, n, dtype=np.int64))
    user = _zipf_ids(rng, a, n_users, n, user_perm)
    pin = _zipf_ids(rng, a, n_pins, n, pin_perm)
    spine = pa.table({
        "event_id": pa.array(np.arange(n, dtype=np.int64)),
        "user_id": pa.array(user), "pin_id": pa.array(pin),
        "category": cat_array(pin_cat[pin]),
        "ts": pa.array(ts, pa.int64()).cast(ts_type),
    })
    pq.write_table(spine, out_dir / "spine.parquet", row_group_size=rg)

    # feature tables: updates proportional to activity (same skew, same hot ids), second
    # resolution over [start - 3 days, end], unique (entity, feature_ts)
    span_s = (DAYS + 3) * 86_400
    stats = {"n": n, "users": n_users, "pins": n_pins, "zipf_a": a}
    for v in VIEWS:
        if v.keys == ("user_id",):
            ent, code = _zipf_ids(rng, a, n_users, n_feat, user_perm), None
            key = ent
        elif v.keys == ("pin_id",):
            ent, code = _zipf_ids(rng, a, n_pins, n_feat, pin_perm), None
            key = ent
        else:
            ent = _zipf_ids(rng, a, n_users, n_feat, user_perm)
            code = rng.integers(0, N_CATEGORIES, n_feat).astype(np.int32)
            key = ent * N_CATEGORIES + code
        sec = rng.integers(0, span_s, n_feat, dtype=np.int64)
        cols = [ent, sec] + ([code] if code is not None else [])
        uniq = _unique_by(key * (1 << 22) + sec, *cols)
        ent, sec = uniq[0], uniq[1]
        code = uniq[2] if code is not None else None
        order = np.argsort(sec, kind="stable")  # a daily feature job writes in time order
        ent, sec = ent[order], sec[order]
        code = code[order] if code is not None else None
        m = len(ent)
        fts = start_us - 3 * 86_400 * 1_000_000 + sec * 1_000_000
        cts = fts + rng.integers(0, 7_200, m, dtype=np.int64) * 1_000_000
        data = {v.keys[0]: pa.array(ent)}
        if code is not None:
            data["category"] = cat_array(code)
        data["feature_ts"] = pa.array(fts, pa.int64()).cast(ts_type)
        data["created_ts"] = pa.array(cts, pa.int64()).cast(ts_type)
        for col, dtype in v.features:
            if dtype == "int64":
                data[col] = pa.array(rng.poisson(20, m).astype(np.int64))
            else:
                data[col] = pa.array(rng.random(m))
        pq.write_table(pa.table(data), out_dir / f"{v.table}.parquet", row_group_size=rg)
        stats[f"{v.table}_rows"] = m
    # skew summary
    _, ucounts = np.unique(user, return_counts=True)
    _, pcounts = np.unique(pin, return_counts=True)
    hot_user = user_perm[0]
    uf = pq.read_table(out_dir / "user_features.parquet", columns=["user_id"]).column(0).to_numpy()
    stats.update({
        "top_user_share": round(float(ucounts.max()) / n, 4),
        "top_pin_share": round(float(pcounts.max()) / n, 4),
        "top_user_impressions": int(ucounts.max()),
        "top_user_feature_rows": int((uf == hot_user).sum()),
        "distinct_users_in_spine": len(ucounts),
        "generate_s": round(time.perf_counter() - t0, 2),
        "spine_bytes": (out_dir / "spine.parquet").stat().st_size,
    })
    return stats


def write_sample(data_dir: Path, out: Path, rows: int, seed: int) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    spine = pq.read_table(data_dir / "spine.parquet")
    rng = np.random.default_rng(seed + 1)
    idx = np.sort(rng.choice(spine.num_rows, min(rows, spine.num_rows), replace=False))
    pq.write_table(spine.take(idx), out)


# --------------------------------------------------------------------------------------------
# the formulations (run inside workers)
# --------------------------------------------------------------------------------------------

def ours_chain(spine, tables: dict, ttl: dt.timedelta, validate: bool = False, broadcast_max_mib: float | None = None):
    from pinrec.jobs.features.pit_join import (
        BROADCAST_MAX_BYTES,
        point_in_time_join_many,
    )

    limit = BROADCAST_MAX_BYTES if broadcast_max_mib is None else broadcast_max_mib * 2**20
    joins = [(tables[v.name], make_feature_view(v, ttl)) for v in VIEWS]
    return point_in_time_join_many(spine, joins, validate=validate, broadcast_max_bytes=limit)


def feast_join(spine, features, v: BenchView, ttl_s: int, spine_ts: str = "ts"):
    """Feast's Spark offline-store PIT join (MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN), for one view.

    entity rows = distinct (entities, ts) of the spine (Feast's GROUP BY entity_row_unique_id);
    base = inner range join with the feature table on the entities, ``feature_ts <= ts``,
    ``feature_ts >= ts - ttl`` (plus ``created_ts <= ts``, so that the semantics match ours; Feast
    itself only uses created_ts as a tie-breaker); latest = ``ROW_NUMBER() OVER (PARTITION BY
    entity row ORDER BY feature_ts DESC, created_ts DESC) = 1``; then left-joined back to the spine.
    Simplifications, each of which can only make it faster than Feast's SQL: the entity row id is
    the (entities, ts) columns rather than a CONCAT'ed string, the created_ts de-dup self-join
    (a no-op on unique (entity, feature_ts)) and the join of ``latest`` back to ``base`` are
    skipped, and the feature-table pre-filter on the spine's [min - ttl, max] range is omitted (it
    would keep every row of these tables)."""
    from functools import reduce

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ent = spine.select(*v.keys, spine_ts).distinct()
    feat = features.select(*[F.col(k).alias(f"__f_{k}") for k in v.keys],
                           F.col("feature_ts").alias("__fts"), F.col("created_ts").alias("__cts"),
                           *[F.col(c).alias(f"{v.name}__{c}") for c, _ in v.features])
    interval = F.expr(f"INTERVAL {ttl_s} SECONDS")
    cond = [ent[k] == feat[f"__f_{k}"] for k in v.keys] + [
        feat["__fts"] <= ent[spine_ts],
        feat["__fts"] >= ent[spine_ts] - interval,
        feat["__cts"] <= ent[spine_ts],
    ]
    base = ent.join(feat, reduce(lambda x, y: x & y, cond), "inner")
    w = Window.partitionBy(*v.keys, spine_ts).orderBy(F.col("__fts").desc(), F.col("__cts").desc())
    latest = (base.withColumn("__rn", F.row_number().over(w)).where(F.col("__rn") == 1)
              .select(*v.keys, spine_ts, *[f"{v.name}__{c}" for c, _ in v.features],
                      F.col("__fts").alias(f"{v.name}__feature_ts")))
    return (spine.join(latest, [*v.keys, spine_ts], "left")
            .withColumn(f"{v.name}__missing", F.col(f"{v.name}__feature_ts").isNull()))


def feast_chain(spine, tables: dict, ttl_s: int):
    out = spine
    for v in VIEWS:
        out = feast_join(out, tables[v.name], v, ttl_s)
    return out


def output_columns() -> list[str]:
    cols = ["event_id", "user_id", "pin_id", "category", "ts"]
    for v in VIEWS:
        cols += [f"{v.name}__{c}" for c, _ in v.features] + [f"{v.name}__feature_ts", f"{v.name}__missing"]
    return cols


def duckdb_asof_sql(data_dir: Path, spine_path: Path, ttl_s: int) -> str:
    """DuckDB ASOF LEFT JOIN of the spine with the 3 tables; TTL as a post-filter (CASE)."""
    sel, joins = ["s.event_id", "s.user_id", "s.pin_id", "s.category", "s.ts"], []
    for i, v in enumerate(VIEWS):
        a = f"f{i}"
        on = " AND ".join(f"s.{k} = {a}.{k}" for k in v.keys) + f" AND s.ts >= {a}.feature_ts"
        fresh = f"({a}.feature_ts >= s.ts - INTERVAL {ttl_s} SECOND)"
        sel += [f"CASE WHEN {fresh} THEN {a}.{c} END AS {v.name}__{c}" for c, _ in v.features]
        sel += [f"CASE WHEN {fresh} THEN {a}.feature_ts END AS {v.name}__feature_ts",
                f"NOT coalesce({fresh}, false) AS {v.name}__missing"]
        joins.append(f"ASOF LEFT JOIN read_parquet('{data_dir / (v.table + '.parquet')}') {a} ON {on}")
    return f"SELECT {', '.join(sel)} FROM read_parquet('{spine_path}') s " + " ".join(joins)


def duckdb_exact_sql(data_dir: Path, spine_path: Path, ttl_s: int) -> str:
    """Exact reference (slow, for samples): per view, max(feature_ts) over the rows known at ts and
    fresh, then its row's values (unique (entity, feature_ts))."""
    sel, joins = ["s.*"], []
    for i, v in enumerate(VIEWS):
        path = data_dir / (v.table + ".parquet")
        on = " AND ".join(f"s.{k} = f.{k}" for k in v.keys)
        best = (f"(SELECT s.event_id, max(f.feature_ts) AS fts FROM read_parquet('{spine_path}') s "
                f"JOIN read_parquet('{path}') f ON {on} AND f.feature_ts <= s.ts AND f.created_ts <= s.ts "
                f"AND f.feature_ts >= s.ts - INTERVAL {ttl_s} SECOND GROUP BY s.event_id) b{i}")
        joins.append(f"LEFT JOIN {best} ON b{i}.event_id = s.event_id "
                     f"LEFT JOIN read_parquet('{path}') v{i} ON "
                     + " AND ".join(f"v{i}.{k} = s.{k}" for k in v.keys) + f" AND v{i}.feature_ts = b{i}.fts")
        sel += [f"v{i}.{c} AS {v.name}__{c}" for c, _ in v.features]
        sel += [f"b{i}.fts AS {v.name}__feature_ts", f"b{i}.fts IS NULL AS {v.name}__missing"]
    return f"SELECT {', '.join(sel)} FROM read_parquet('{spine_path}') s " + " ".join(joins)


# --------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------

def worker_main(args) -> None:
    events = open(args._events, "a", buffering=1)  # noqa: SIM115 -- open for the whole worker process

    def emit(**kw):
        events.write(json.dumps(kw) + "\n")
        events.flush()

    data_dir = Path(args._data)
    spine_path = Path(args._spine) if args._spine else data_dir / "spine.parquet"
    ttl = dt.timedelta(days=args.ttl_days)
    ttl_s = int(ttl.total_seconds())

    if args._worker == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {args.duckdb_threads}")
        q = duckdb_asof_sql(data_dir, spine_path, ttl_s)
        agg = f"SELECT count(*), bit_xor(hash({', '.join(output_columns())})) FROM ({q})"
        emit(event="ready", threads=con.sql("SELECT current_setting('threads')").fetchall()[0][0])
        for r in range(args.repeats):
            emit(event="start", run=r)
            t0 = time.perf_counter()
            n, h = con.sql(agg).fetchall()[0]
            emit(event="end", run=r, seconds=time.perf_counter() - t0, rows=n, checksum=str(h))
        return

    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.spark import get_spark

    cfg = SparkConfig(master=f"local[{args.spark_cores}]", shuffle_partitions=args.shuffle_partitions,
                      jars_dir=str(REPO_ROOT / "var" / "jars"), driver_memory=args.driver_memory)
    spark = get_spark(cfg)
    emit(event="ready", spark=spark.version, master=cfg.master, shuffle_partitions=cfg.shuffle_partitions,
         driver_memory=cfg.driver_memory, aqe=spark.conf.get("spark.sql.adaptive.enabled"))
    spine = spark.read.parquet(str(spine_path))
    tables = {v.name: spark.read.parquet(str(data_dir / f"{v.table}.parquet")) for v in VIEWS}

    def build():
        if args._worker == "ours":
            return ours_chain(spine, tables, ttl, validate=False, broadcast_max_mib=args.broadcast_max_mib)
        return feast_chain(spine, tables, ttl_s)

    if args._save:  # spot check: write the full result of the sample spine
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        emit(event="start", run="sample")
        t0 = time.perf_counter()
        build().select(*output_columns()).write.mode("overwrite").parquet(args._save)
        emit(event="end", run="sample", seconds=time.perf_counter() - t0)
        spark.stop()
        return

    for r in range(args.repeats):
        spark.sparkContext.setJobGroup(f"{args._worker}-{r}", f"{args._worker} run {r}")
        emit(event="start", run=r)
        t0 = time.perf_counter()
        df = build()  # ours runs eager checks (spine null-ts) while building: timed
        t1 = time.perf_counter()
        df.write.format("noop").mode("overwrite").save()
        t2 = time.perf_counter()
        emit(event="end", run=r, seconds=t2 - t0, build_s=t1 - t0)

    if args._worker == "ours":
        from pinrec.jobs.features.pit_join import check_unique

        plan = df._jdf.queryExecution().optimizedPlan().toString()
        emit(event="plan", window_ops=plan.count("Window ["), relations_read=plan.count("Relation ["),
             map_in_arrow=plan.count("MapInArrow"), exchanges=plan.count("RepartitionByExpression"))
        if args.time_validate:
            emit(event="start", run="validate")
            t0 = time.perf_counter()
            per = {}
            for v in VIEWS:
                t = time.perf_counter()
                check_unique(tables[v.name], make_feature_view(v, ttl))
                per[v.name] = time.perf_counter() - t
            emit(event="end", run="validate", seconds=time.perf_counter() - t0, per_view=per)
    spark.stop()


# --------------------------------------------------------------------------------------------
# parent: run a worker, poll memory, enforce timeouts
# --------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tree(pid: int):
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def run_worker(kind: str, args, data_dir: Path, work: Path, run_timeout_s: float, tag: str,
               extra: list[str] | None = None) -> dict:
    """Run one worker subprocess; return its events, peaks and whether it timed out."""
    import psutil

    events_path = work / f"{tag}.events.jsonl"
    log_path = work / f"{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, "--_data", str(data_dir),
           "--_events", str(events_path), "--repeats", str(args.repeats), "--ttl-days", str(args.ttl_days),
           "--shuffle-partitions", str(args.shuffle_partitions), "--driver-memory", args.driver_memory,
           "--spark-cores", str(args.spark_cores), "--duckdb-threads", str(args.duckdb_threads),
           *(["--broadcast-max-mib", str(args.broadcast_max_mib)] if args.broadcast_max_mib is not None else []),
           *(["--no-time-validate"] if not args.time_validate else []), *(extra or [])]
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    events_path.write_text("")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdout=logf, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    res = {"events": [], "peak_jvm_rss": 0, "peak_worker_py_rss": 0, "peak_spark_py_workers_rss": 0, "timed_out": None,
           "load1_max": 0.0, "log": str(log_path)}
    deadline = time.monotonic() + STARTUP_SLACK_S
    phase = "startup"
    pos = 0
    last_pids: set[int] = set()
    try:
        while True:
            py_workers = 0  # Spark's Python workers (daemon and its children): the broadcast lookup runs there
            for p in _tree(proc.pid):
                try:
                    rss = p.memory_info().rss
                    name = p.name()
                except psutil.Error:
                    continue
                last_pids.add(p.pid)
                if "java" in name:
                    res["peak_jvm_rss"] = max(res["peak_jvm_rss"], rss)
                elif p.pid == proc.pid:
                    res["peak_worker_py_rss"] = max(res["peak_worker_py_rss"], rss)
                else:
                    py_workers += rss
            res["peak_spark_py_workers_rss"] = max(res["peak_spark_py_workers_rss"], py_workers)
            res["load1_max"] = max(res["load1_max"], os.getloadavg()[0])
            with open(events_path) as f:
                f.seek(pos)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            pos += len(complete)
            for line in complete.splitlines():
                ev = json.loads(line)
                res["events"].append(ev)
                if ev["event"] == "start":
                    phase = f"run {ev['run']}"
                    deadline = time.monotonic() + run_timeout_s
                elif ev["event"] in ("end", "ready"):
                    phase = "between runs"
                    deadline = time.monotonic() + STARTUP_SLACK_S
                    if ev["event"] == "end":
                        log(f"  {tag}: run {ev['run']}: {ev['seconds']:.2f} s")
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                res["timed_out"] = phase
                log(f"  {tag}: {phase} exceeded its limit; killing worker {proc.pid} and its JVM")
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    res["returncode"] = proc.returncode
    survivors = []
    for pid in last_pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                survivors.append(pid)
        except psutil.Error:
            pass
    res["survivors"] = survivors
    if proc.returncode not in (0, None) and res["timed_out"] is None:
        tail = Path(log_path).read_text()[-3000:]
        raise RuntimeError(f"worker {tag} failed (rc={proc.returncode}); log {log_path}:\n{tail}")
    return res


def _kill_tree(proc) -> None:
    """Kill the worker's process group (it was started in its own session, the JVM inherits it),
    then any descendant that escaped it, by pid."""
    import psutil

    kids = _tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)
    for p in kids:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(kids, timeout=30)  # the JVM may take a moment to exit after its signal


def _runs(res: dict) -> list[dict]:
    return [e for e in res["events"] if e["event"] == "end" and isinstance(e["run"], int)]


def _median(res: dict, key: str = "seconds") -> float | None:
    runs = _runs(res)
    return statistics.median(e[key] for e in runs) if runs else None


def _gib(b: int) -> str:
    return f"{b / 2**30:.2f} GiB" if b else "n/a"


def _fmt_s(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2f}" if x < 100 else f"{x:.0f}")


# --------------------------------------------------------------------------------------------
# spot check
# --------------------------------------------------------------------------------------------

def spot_check(args, data_dir: Path, work: Path) -> dict:
    import duckdb

    sample = work / "sample_spine.parquet"
    write_sample(data_dir, sample, SAMPLE_ROWS, args.seed)
    ttl_s = int(args.ttl_days * 86_400)
    out: dict = {"sample_rows": SAMPLE_ROWS}
    results = {}
    for kind in ("ours", "feast"):
        path = work / f"sample_{kind}"
        r = run_worker(kind, args, data_dir, work, args.feast_timeout_min * 60, f"check_{kind}",
                       ["--_spine", str(sample), "--_save", str(path)])
        if r["timed_out"]:
            out[f"{kind}_status"] = f"did not finish in {args.feast_timeout_min:g} min"
        else:
            results[kind] = f"read_parquet('{path}/*.parquet')"
            out[f"{kind}_seconds"] = round(r["events"][-1]["seconds"], 2)
    con = duckdb.connect()
    con.execute(f"SET threads = {args.duckdb_threads}")
    con.execute(f"CREATE TABLE exact AS {duckdb_exact_sql(data_dir, sample, ttl_s)}")
    con.execute(f"CREATE TABLE asof_ttl AS {duckdb_asof_sql(data_dir, sample, ttl_s)}")
    results["duckdb_exact"] = "exact"
    results["duckdb_asof_ttl"] = "asof_ttl"
    if "ours" not in results:
        out["error"] = "ours did not finish on the sample"
        return out
    cols = [c for c in output_columns() if c not in ("event_id",)]
    comparisons = {}
    for other in ("feast", "duckdb_exact", "duckdb_asof_ttl"):
        if other not in results:
            continue
        diffs = ", ".join(f"count(*) FILTER (a.\"{c}\" IS DISTINCT FROM b.\"{c}\") AS \"{c}\"" for c in cols)
        q = (f"SELECT count(*) AS joined, {diffs} FROM {results['ours']} a "
             f"FULL JOIN {results[other]} b USING (event_id)")
        row = con.sql(q).fetchall()[0]
        names = ["joined", *cols]
        d = dict(zip(names, row))
        rows_ours = con.sql(f"SELECT count(*) FROM {results['ours']}").fetchall()[0][0]
        rows_other = con.sql(f"SELECT count(*) FROM {results[other]}").fetchall()[0][0]
        mism = {c: d[c] for c in cols if d[c]}
        bad_rows = con.sql(
            f"SELECT count(*) FROM {results['ours']} a FULL JOIN {results[other]} b USING (event_id) WHERE "
            + " OR ".join(f"a.\"{c}\" IS DISTINCT FROM b.\"{c}\"" for c in cols)).fetchall()[0][0]
        comparisons[other] = {"rows_ours": rows_ours, "rows_other": rows_other, "rows_differing": bad_rows,
                              "agree": bad_rows == 0 and rows_ours == rows_other, "mismatching_columns": mism}
    # how often each view found a fresh, known row (so the check is not vacuous)
    hit = con.sql("SELECT " + ", ".join(f"avg(CASE WHEN NOT {v.name}__missing THEN 1.0 ELSE 0 END)"
                                        for v in VIEWS) + f" FROM {results['ours']}").fetchall()[0]
    out["hit_rate"] = {v.name: round(h, 4) for v, h in zip(VIEWS, hit)}
    # rows where the created_ts rule changes the answer (what DuckDB's ASOF cannot express)
    out["rows_where_created_ts_matters"] = con.sql(
        "SELECT count(*) FROM exact e JOIN asof_ttl a USING (event_id) WHERE "
        + " OR ".join(f"e.{v.name}__feature_ts IS DISTINCT FROM a.{v.name}__feature_ts" for v in VIEWS)).fetchall()[0][0]
    out["comparisons"] = comparisons
    return out


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e6,5e6,10e6", help="comma-separated spine sizes (default 1e6,5e6,10e6)")
    p.add_argument("--feast-timeout-min", type=float, default=15.0,
                   help="hard limit per run of the Feast formulation (default 15)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    p.add_argument("--out", help="write all results as JSON to this path")
    p.add_argument("--run-timeout-min", type=float, default=30.0,
                   help="safety limit per run of ours / DuckDB (default 30)")
    p.add_argument("--feast-after-dnf", choices=("skip", "run"), default="skip",
                   help="after the Feast formulation timed out at one size, skip it at larger sizes "
                        "(its cost grows quadratically in a hot key's rows) [default: skip]")
    p.add_argument("--zipf-a", type=float, default=1.3, help="Zipf exponent of user and pin ids")
    p.add_argument("--ttl-days", type=float, default=2.0, help="TTL of all three views (default 2 days)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--spark-cores", type=int, default=2, help="local[K] (default 2)")
    p.add_argument("--shuffle-partitions", type=int, default=16)
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--duckdb-threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--no-time-validate", dest="time_validate", action="store_false",
                   help="skip the one-off timing of the uniqueness check")
    p.add_argument("--no-spot-check", dest="spot_check", action="store_false")
    p.add_argument("--work-dir", help="where data and logs go (default: a fresh temp dir, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--broadcast-max-mib", type=float, default=None,
                   help="ours: feature tables Spark estimates at most this size (MiB) take the broadcast "
                        "lookup; 0: sort-merge only (default: pinrec.jobs.features.pit_join.BROADCAST_MAX_BYTES)")
    for hidden in ("--_worker", "--_data", "--_events", "--_spine", "--_save"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        worker_main(args)
        return 0
    import psutil

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="pinrec-pitbench-"))
    work.mkdir(parents=True, exist_ok=True)
    mem = psutil.virtual_memory().total
    machine = {"nproc": os.cpu_count(), "ram_gib": round(mem / 2**30, 1), "python": platform.python_version(),
               "platform": platform.platform()}
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine,
              "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "sizes": {}}
    log(f"work dir {work}; machine {machine}")
    feast_dnf_at = None
    try:
        for i, n in enumerate(sizes):
            data_dir = work / f"n{n}"
            data_dir.mkdir(exist_ok=True)
            log(f"N={n:,}: generating data")
            stats = generate(n, args.zipf_a, data_dir, args.seed)
            log(f"  {stats}")
            entry: dict = {"data": stats}
            for kind in ("ours", "feast", "duckdb"):
                if kind == "feast" and feast_dnf_at is not None and args.feast_after_dnf == "skip":
                    entry[kind] = {"skipped": f"did not finish in {args.feast_timeout_min:g} min at "
                                              f"N={feast_dnf_at:,}; not attempted"}
                    log(f"  feast: skipped ({entry[kind]['skipped']})")
                    continue
                limit = (args.feast_timeout_min if kind == "feast" else args.run_timeout_min) * 60
                log(f"  {kind}: starting (limit {limit / 60:g} min per run)")
                r = run_worker(kind, args, data_dir, work, limit, f"n{n}_{kind}")
                r["median_s"] = _median(r)
                r["runs_s"] = [round(e["seconds"], 3) for e in _runs(r)]
                if kind == "ours":
                    r["median_build_s"] = _median(r, "build_s")
                    val = [e for e in r["events"] if e["event"] == "end" and e["run"] == "validate"]
                    r["validate_s"] = val[0]["seconds"] if val else None
                    r["validate_per_view_s"] = val[0]["per_view"] if val else None
                    plan = [e for e in r["events"] if e["event"] == "plan"]
                    r["plan"] = plan[0] if plan else None
                if kind == "feast" and r["timed_out"]:
                    feast_dnf_at = feast_dnf_at or n
                if kind == "duckdb":
                    r["threads"] = next((e.get("threads") for e in r["events"] if e["event"] == "ready"), None)
                    r["rows"] = next((e.get("rows") for e in _runs(r)), None)
                entry[kind] = r
            if i == 0 and args.spot_check:
                log(f"  spot check on a {SAMPLE_ROWS:,}-row sample of N={n:,}")
                entry["spot_check"] = spot_check(args, data_dir, work)
                report["spot_check"] = {"n": n, **entry["spot_check"]}
            report["sizes"][str(n)] = entry
            if not args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        report["parent_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        if not (args.keep or args.work_dir):
            shutil.rmtree(work, ignore_errors=True)
    print(render(report, args))
    return 0


def render(report: dict, args) -> str:
    m = report["machine"]
    lines = [
        (f"Machine: {m['nproc']} cores (nproc), {m['ram_gib']} GiB RAM, Python {m['python']}. "
        f"Times are medians of {args.repeats} run(s), seconds, each run fully materialising the 3-view result "
        f"(Spark: noop write of every column; DuckDB: count + bit_xor(hash(every column))). "
        f"Spark local[{args.spark_cores}], {args.shuffle_partitions} shuffle partitions, driver {args.driver_memory}; "
        f"DuckDB {args.duckdb_threads} threads. TTL {args.ttl_days:g} days; Zipf a={args.zipf_a}."),
        "",
        ("| N impressions | ours (s) | Feast formulation (s) | DuckDB ASOF (s) | ours/DuckDB | Feast/ours "
        "| peak JVM RSS (ours) | peak JVM RSS (Feast) | DuckDB worker peak RSS | Spark driver-py peak RSS (ours) |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for n, e in report["sizes"].items():
        ours, feast, duck = e.get("ours", {}), e.get("feast", {}), e.get("duckdb", {})
        o, d = ours.get("median_s"), duck.get("median_s")
        limit = args.feast_timeout_min
        if "skipped" in feast:
            f_txt, ratio_f = f"not run ({feast['skipped']})", "n/a"
        elif feast.get("timed_out"):
            f_txt = f"did not finish in {limit:g} min"
            ratio_f = (f"> {limit * 60 / o:.1f}x" if limit * 60 / o < 10 else f"> {limit * 60 / o:.0f}x") if o else "n/a"
        else:
            f = feast.get("median_s")
            f_txt, ratio_f = _fmt_s(f), (f"{f / o:.1f}x" if f and o else "n/a")
        ratio_d = f"{o / d:.1f}x" if o and d else "n/a"
        lines.append(f"| {int(n):,} | {_fmt_s(o)} | {f_txt} | {_fmt_s(d)} | {ratio_d} | {ratio_f} "
                     f"| {_gib(ours.get('peak_jvm_rss', 0))} | {_gib(feast.get('peak_jvm_rss', 0))} "
                     f"| {_gib(duck.get('peak_worker_py_rss', 0))} | {_gib(ours.get('peak_worker_py_rss', 0))} |")
        st = e["data"]
        notes.append(
            f"- N={int(n):,}: data {st['users']:,} users / {st['pins']:,} pins, feature rows "
            f"user {st['user_features_rows']:,} / pin {st['pin_features_rows']:,} / user x category "
            f"{st['user_category_features_rows']:,}; hottest user = {st['top_user_share']:.1%} of impressions "
            f"({st['top_user_impressions']:,}) with {st['top_user_feature_rows']:,} feature rows; hottest pin "
            f"{st['top_pin_share']:.1%}. Peak RSS of Spark's Python workers (sum) ours/Feast: "
            f"{_gib(ours.get('peak_spark_py_workers_rss', 0))}/{_gib(feast.get('peak_spark_py_workers_rss', 0))}. "
            f"ours runs {ours.get('runs_s')} (of which plan building incl. eager "
            f"spine checks, median {_fmt_s(ours.get('median_build_s'))} s); uniqueness check (validate=True "
            f"part, 3 views, once) {_fmt_s(ours.get('validate_s'))} s; Feast runs {feast.get('runs_s', '-')}; "
            f"DuckDB runs {duck.get('runs_s')}; max 1-min load average during ours/Feast/DuckDB: "
            f"{ours.get('load1_max', 0):.1f}/{feast.get('load1_max', 0):.1f}/{duck.get('load1_max', 0):.1f}.")
        if ours.get("plan"):
            notes.append(f"  ours' optimized plan for the 3 views holds {ours['plan'].get('map_in_arrow', 0)} "
                         f"MapInArrow (broadcast lookup), {ours['plan'].get('exchanges', 0)} repartitions, "
                         f"{ours['plan']['window_ops']} Window "
                         f"operators and {ours['plan']['relations_read']} Parquet relation scans.")
        if feast.get("timed_out"):
            notes.append(f"  Feast formulation killed during {feast['timed_out']}; leftover processes after kill: "
                         f"{feast.get('survivors') or 'none'}.")
    lines += ["", "Notes:", *notes,
              ("- ours: `pinrec.jobs.features.pit_join.point_in_time_join_many` over 3 views with validate=False (the "
              "uniqueness check is timed separately above); it applies feature_ts <= t, created_ts <= t and the TTL."),
              ("- Feast formulation: range join on entity + feature_ts <= ts + feature_ts >= ts - ttl + created_ts <= ts, "
              "ROW_NUMBER() OVER (PARTITION BY entity row ORDER BY feature_ts DESC, created_ts DESC) = 1, left join "
              "back; same Spark settings, separate JVM; a run over its limit is killed with its JVM."),
              ("- DuckDB ASOF LEFT JOIN ... ON key AND s.ts >= f.feature_ts, TTL as a post-filter; it does NOT apply the "
              "created_ts rule (a row written after the event can be used), so it does a bit less work than the others."),
              (f"- Peak RSS sampled every 0.2 s with psutil; parent (data generation) peak RSS "
              f"{_gib(report.get('parent_peak_rss', 0))}. The machine may be shared: see the load averages.")]
    sc = report.get("spot_check")
    if sc:
        lines += ["", (f"Correctness spot check on a {sc['sample_rows']:,}-row sample of the N={sc['n']:,} spine "
                      f"(all output columns compared by event_id):")]
        if "feast_status" in sc:
            lines.append(f"- Feast formulation on the sample: {sc['feast_status']}")
        for other, c in sc.get("comparisons", {}).items():
            verdict = "AGREE" if c["agree"] else f"DIFFER on {c['rows_differing']:,} rows {c['mismatching_columns']}"
            if other == "duckdb_asof_ttl" and not c["agree"]:
                same = c["rows_differing"] == sc.get("rows_where_created_ts_matters")
                verdict += (" -- exactly the rows where the created_ts rule matters (expected)" if same
                            else " -- NOT explained by the created_ts rule alone")
            lines.append(f"- ours vs {other}: {verdict} (rows {c['rows_ours']:,} vs {c['rows_other']:,})")
        if "hit_rate" in sc:
            lines.append(f"- share of sample rows with a fresh known feature row, per view: {sc['hit_rate']}; rows "
                         f"where the created_ts rule changes some view's answer (exact vs DuckDB ASOF+TTL): "
                         f"{sc['rows_where_created_ts_matters']:,}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
