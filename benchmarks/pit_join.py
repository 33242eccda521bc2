"""Benchmark: pinrec's point-in-time join vs the real Feast vs DuckDB ``ASOF JOIN``.

For each spine size N and each key distribution (``--keys uniform,zipf``), one run of this script:

1. generates (numpy, seeded) a spine of N impressions whose ``user_id`` and ``pin_id`` are uniform
   or truncated-Zipf distributed (power users / viral pins as real hot keys) and three feature
   tables (user, pin, user x category; ~N/10 rows each, unique (entity, feature_ts), ``created_ts``
   = ``feature_ts`` + 0..2 h), written once as Parquet so every engine reads the same files;
2. times, as the median of ``--repeats`` runs, each fully materialising the 3-view result:
   a. ours: ``pinrec.jobs.features.pit_join.point_in_time_join_many`` over the 3 views
      (``validate=False``; the uniqueness check is timed once, separately), Spark ``noop`` write,
      on each of ``--paths``: ``broadcast`` (feature tables Spark estimates at most
      ``--broadcast-max-mib`` take the in-place lookup), ``shuffle`` (the limit set to 0: validity
      intervals and a shuffled hash join, ``shuffle_join="interval"``, pinrec's default for large
      views) and ``window`` (the limit set to 0 and ``shuffle_join="window"``: the running-max
      windows, the shuffle path before 2026-12-06, named ``sort-merge`` in earlier tables);
      the Spark session's start is timed too;
   b. the real Feast (``pit_join_feast.py``, in Feast's own environment: ``--feast-python``,
      ``--make-feast-env``): its local file offline store's ``get_historical_features`` with
      ``filter_by_created_timestamp=True``, killed over ``--feast-max-rss-gib`` or its time limit;
      it returns fewer rows than the spine (see pit_join_feast.py), so it is compared per row returned;
   c. DuckDB ``ASOF LEFT JOIN`` on the same Parquet files (TTL applied as a post-filter; DuckDB's
      ASOF cannot apply the ``created_ts`` rule, so it does slightly less work), full aggregation
      over a hash of every output column;
   d. with ``--spark-formulation``, Feast's offline-store SQL re-implemented on Spark (the earlier
      peer: range join + ``ROW_NUMBER()``), under the same time limit;
   e. peak RSS of each worker's processes (psutil polling), and of this process;
3. prints one markdown table with the issue's ratios (Feast per spine row returned and per call
   with Spark's start included; ours vs DuckDB on each path) and a correctness spot check on a
   10k-row sample of the smallest spine: ours vs the real Feast on the rows it returns, vs an exact
   DuckDB reference (range join + max), and vs DuckDB ASOF + TTL (expected to differ exactly where
   ``created_ts > ts`` matters).

Every engine-side measurement runs in its own worker subprocess, sequentially, so peak memory is
attributable and a timed-out or oversized job is really stopped.

Usage (from the repository root)::

    python benchmarks/pit_join.py --make-feast-env --sizes 1e4 --repeats 1
    python benchmarks/pit_join.py --sizes 1e6,1e7 --keys uniform,zipf --repeats 3 --out var/bench.json
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
FEAST_WORKER = Path(__file__).resolve().with_name("pit_join_feast.py")
#: Feast's own environment (its pins clash with ours): where it is looked for, what it holds
DEFAULT_FEAST_PYTHON = Path.home() / ".cache" / "pinrec" / "feast-venv" / "bin" / "python"
FEAST_PIN = ("feast==0.67.0", "pandas>=2.2,<3", "pyarrow", "psutil")
KEY_DISTRIBUTIONS = ("uniform", "zipf")
#: --broadcast-max-mib (None: the flag's value) and shuffle_join of each path
PATHS = {"broadcast": (None, "interval"), "shuffle": (0.0, "interval"), "window": (0.0, "window")}

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


def _ids(rng, keys: str, a: float, n_ids: int, size: int, perm):
    """``size`` ids out of ``n_ids``: Zipf(a) through ``perm`` for ``keys="zipf"``, uniform for
    ``keys="uniform"``."""
    if keys == "zipf":
        return _zipf_ids(rng, a, n_ids, size, perm)
    if keys == "uniform":
        return perm[rng.integers(0, n_ids, size)]
    raise ValueError(f"keys must be 'uniform' or 'zipf', got {keys!r}")


def merge_rows(spine_key, feature_key) -> int:
    """Rows of Feast's file-store left merge of the spine with one view on its key: per key,
    spine rows x feature rows (at least one row per spine row: a key with no feature row is kept)."""
    import numpy as np

    sk, sc = np.unique(spine_key, return_counts=True)
    fk, fc = np.unique(feature_key, return_counts=True)
    pos = np.searchsorted(fk, sk)
    pos[pos == len(fk)] = 0
    hit = fk[pos] == sk
    return int((sc * np.where(hit, fc[pos], 1)).sum())


def _unique_by(key, *cols):
    import numpy as np

    _, idx = np.unique(key, return_index=True)
    return [c[idx] for c in cols]


def generate(n: int, a: float, out_dir: Path, seed: int, keys: str = "zipf") -> dict:
    """Write spine.parquet and the three feature tables under ``out_dir``, user and pin ids drawn
    as ``keys`` ("zipf" with exponent ``a``, or "uniform"); return stats, including the size of
    Feast's per-view left merge (``feast_merge_rows``)."""
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
    user = _ids(rng, keys, a, n_users, n, user_perm)
    pin = _ids(rng, keys, a, n_pins, n, pin_perm)
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
    stats = {"n": n, "keys": keys, "users": n_users, "pins": n_pins, "zipf_a": a if keys == "zipf" else None,
             "feast_merge_rows": {}}
    spine_keys = {("user_id",): user, ("pin_id",): pin, ("user_id", "category"): user * N_CATEGORIES + pin_cat[pin]}
    for v in VIEWS:
        if v.keys == ("user_id",):
            ent, code = _ids(rng, keys, a, n_users, n_feat, user_perm), None
            key = ent
        elif v.keys == ("pin_id",):
            ent, code = _ids(rng, keys, a, n_pins, n_feat, pin_perm), None
            key = ent
        else:
            ent = _ids(rng, keys, a, n_users, n_feat, user_perm)
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
        stats["feast_merge_rows"][v.name] = merge_rows(
            spine_keys[v.keys], ent if code is None else ent * N_CATEGORIES + code)
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

def ours_chain(spine, tables: dict, ttl: dt.timedelta, validate: bool = False, broadcast_max_mib: float | None = None,
               shuffle_join: str = "interval"):
    from pinrec.jobs.features.pit_join import (
        BROADCAST_MAX_BYTES,
        point_in_time_join_many,
    )

    limit = BROADCAST_MAX_BYTES if broadcast_max_mib is None else broadcast_max_mib * 2**20
    joins = [(tables[v.name], make_feature_view(v, ttl)) for v in VIEWS]
    return point_in_time_join_many(spine, joins, validate=validate, broadcast_max_bytes=limit,
                                   shuffle_join=shuffle_join)


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

    t_start = time.perf_counter()
    from pinrec.jobs.config import SparkConfig
    from pinrec.jobs.io.spark import get_spark

    # adaptive execution on, as every documented run of this benchmark had it (pinrec's local default is off:
    # at 1M-10M spine rows, with skewed keys, AQE's skew-join splitting is what a user of a cluster gets)
    cfg = SparkConfig(master=f"local[{args.spark_cores}]", shuffle_partitions=args.shuffle_partitions,
                      jars_dir=str(REPO_ROOT / "var" / "jars"), driver_memory=args.driver_memory, adaptive=True)
    spark = get_spark(cfg)
    emit(event="ready", spark=spark.version, spark_start_s=time.perf_counter() - t_start, master=cfg.master, shuffle_partitions=cfg.shuffle_partitions,
         driver_memory=cfg.driver_memory, aqe=spark.conf.get("spark.sql.adaptive.enabled"))
    spine = spark.read.parquet(str(spine_path))
    tables = {v.name: spark.read.parquet(str(data_dir / f"{v.table}.parquet")) for v in VIEWS}

    def build():
        if args._worker == "ours":
            return ours_chain(spine, tables, ttl, validate=False, broadcast_max_mib=args.broadcast_max_mib,
                              shuffle_join=args.shuffle_join)
        if args._worker == "feast_sql":
            return feast_chain(spine, tables, ttl_s)
        raise ValueError(f"unknown Spark worker {args._worker!r}: ours or feast_sql")

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


def worker_cmd(kind: str, args, data_dir: Path, events_path: Path, broadcast_max_mib: float | None = None,
               spine: Path | None = None, save: Path | None = None, shuffle_join: str = "interval") -> list[str]:
    """The command line of one worker: the real Feast runs ``pit_join_feast.py`` with
    ``args.feast_python`` (its own environment); every other kind runs this file with ours."""
    if kind == "feast":
        return [args.feast_python, str(FEAST_WORKER), "--events", str(events_path), "--data", str(data_dir),
                "--spine", str(spine or data_dir / "spine.parquet"), "--repo", str(events_path.with_suffix(".repo")),
                "--repeats", str(args.repeats), "--ttl-days", str(args.ttl_days),
                *(["--save", str(save)] if save else [])]
    return [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, "--_data", str(data_dir),
            "--_events", str(events_path), "--repeats", str(args.repeats), "--ttl-days", str(args.ttl_days),
            "--shuffle-partitions", str(args.shuffle_partitions), "--driver-memory", args.driver_memory,
            "--spark-cores", str(args.spark_cores), "--duckdb-threads", str(args.duckdb_threads),
            *(["--broadcast-max-mib", str(broadcast_max_mib)] if broadcast_max_mib is not None else []),
            "--shuffle-join", shuffle_join,
            *(["--no-time-validate"] if not args.time_validate else []),
            *(["--_spine", str(spine)] if spine else []), *(["--_save", str(save)] if save else [])]


def run_worker(kind: str, args, data_dir: Path, work: Path, run_timeout_s: float, tag: str,
               broadcast_max_mib: float | None = None, spine: Path | None = None, save: Path | None = None,
               max_rss: int | None = None, shuffle_join: str = "interval") -> dict:
    """Run one worker subprocess; return its events, peaks, its cold start (launch to ``ready``,
    ``start_s``) and whether it timed out or was killed for holding more than ``max_rss`` bytes
    (the RSS of its whole process tree; polled every 0.2 s)."""
    import psutil

    events_path = work / f"{tag}.events.jsonl"
    log_path = work / f"{tag}.log"
    cmd = worker_cmd(kind, args, data_dir, events_path, broadcast_max_mib, spine, save, shuffle_join)
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    events_path.write_text("")
    launched = time.monotonic()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdout=logf, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    res = {"events": [], "peak_jvm_rss": 0, "peak_worker_py_rss": 0, "peak_spark_py_workers_rss": 0,
           "peak_tree_rss": 0, "timed_out": None, "killed_rss": None, "start_s": None,
           "load1_max": 0.0, "log": str(log_path)}
    deadline = time.monotonic() + STARTUP_SLACK_S
    phase = "startup"
    pos = 0
    last_pids: set[int] = set()
    try:
        while True:
            py_workers = tree = 0  # Spark's Python workers (daemon and its children): the broadcast lookup runs there
            for p in _tree(proc.pid):
                try:
                    rss = p.memory_info().rss
                    name = p.name()
                except psutil.Error:
                    continue
                last_pids.add(p.pid)
                tree += rss
                if "java" in name:
                    res["peak_jvm_rss"] = max(res["peak_jvm_rss"], rss)
                elif p.pid == proc.pid:
                    res["peak_worker_py_rss"] = max(res["peak_worker_py_rss"], rss)
                else:
                    py_workers += rss
            res["peak_spark_py_workers_rss"] = max(res["peak_spark_py_workers_rss"], py_workers)
            res["peak_tree_rss"] = max(res["peak_tree_rss"], tree)
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
                    if ev["event"] == "ready":
                        res["start_s"] = time.monotonic() - launched
                    phase = "between runs"
                    deadline = time.monotonic() + STARTUP_SLACK_S
                    if ev["event"] == "end":
                        log(f"  {tag}: run {ev['run']}: {ev['seconds']:.2f} s")
            if proc.poll() is not None:
                break
            if max_rss and tree > max_rss:
                res["killed_rss"] = {"phase": phase, "rss": tree, "after_s": round(time.monotonic() - launched, 1)}
                log(f"  {tag}: {phase}: its processes hold {_gib(tree)} > {_gib(max_rss)}; killing worker {proc.pid}")
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
    res["after_s"] = round(time.monotonic() - launched, 1)
    survivors = []
    for pid in last_pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                survivors.append(pid)
        except psutil.Error:
            pass
    res["survivors"] = survivors
    res["failed"] = None
    if proc.returncode not in (0, None) and res["timed_out"] is None and res["killed_rss"] is None:
        tail = Path(log_path).read_text()[-3000:]
        if kind not in ("feast", "feast_sql"):
            raise RuntimeError(f"worker {tag} failed (rc={proc.returncode}); log {log_path}:\n{tail}")
        # a peer that dies (Feast's merge raising MemoryError) is a result, not a broken benchmark
        last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
        res["failed"] = (f"killed by signal {-proc.returncode} from outside the benchmark (last output: {last[:80]})"
                         if proc.returncode < 0 else last or f"exit code {proc.returncode}")
        log(f"  {tag}: failed: {res['failed']}")
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

def spot_check(args, data_dir: Path, work: Path, tag: str = "") -> dict:
    """Run ours (default path), the real Feast and (with ``--spark-formulation``) Feast's Spark
    formulation on a ``SAMPLE_ROWS`` sample of ``data_dir``'s spine; compare every output column
    by event_id with ours (the real Feast: its feature columns on the rows it returned)."""
    import duckdb

    sample = work / f"sample_spine{tag}.parquet"
    write_sample(data_dir, sample, SAMPLE_ROWS, args.seed)
    ttl_s = int(args.ttl_days * 86_400)
    out: dict = {"sample_rows": SAMPLE_ROWS}
    results = {}
    kinds = ["ours", *(["feast"] if args.feast else []), *(["feast_sql"] if args.spark_formulation else [])]
    for kind in kinds:
        path = work / f"sample{tag}_{kind}"
        r = run_worker(kind, args, data_dir, work, args.feast_timeout_min * 60, f"check{tag}_{kind}",
                       spine=sample, save=path.with_suffix(".parquet") if kind == "feast" else path,
                       max_rss=int(args.feast_max_rss_gib * 2**30) if kind == "feast" else None)
        if r["timed_out"] or r["killed_rss"] or r["failed"]:
            out[f"{kind}_status"] = _dnf_text(r, args)
        else:
            results[kind] = (f"read_parquet('{path}.parquet')" if kind == "feast"
                             else f"read_parquet('{path}/*.parquet')")
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
    for other in ("feast_sql", "duckdb_exact", "duckdb_asof_ttl"):
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
    if "feast" in results:
        comparisons["feast"] = compare_feast(con, results["ours"], results["feast"])
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


def compare_feast(con, ours: str, feast: str) -> dict:
    """The real Feast's output vs ours, both DuckDB relations: rows of each, Feast rows whose
    event_id ours lacks, and, on the rows Feast returned, rows where any feature value differs
    (compared as DOUBLE: Feast turns an int column with nulls into float)."""
    feats = [f"{v.name}__{c}" for v in VIEWS for c, _ in v.features]
    rows_ours = con.sql(f"SELECT count(*) FROM {ours}").fetchall()[0][0]
    rows_feast, distinct = con.sql(f"SELECT count(*), count(DISTINCT event_id) FROM {feast}").fetchall()[0]
    unknown = con.sql(f"SELECT count(*) FROM {feast} b ANTI JOIN {ours} a USING (event_id)").fetchall()[0][0]
    differ = " OR ".join(f"CAST(a.\"{c}\" AS DOUBLE) IS DISTINCT FROM CAST(b.\"{c}\" AS DOUBLE)" for c in feats)
    bad = con.sql(f"SELECT count(*) FROM {feast} b JOIN {ours} a USING (event_id) WHERE {differ}").fetchall()[0][0]
    return {"rows_ours": rows_ours, "rows_other": rows_feast, "distinct_event_ids_feast": distinct,
            "feast_rows_not_in_ours": unknown, "rows_differing": bad, "agree": bad == 0 and unknown == 0}


def _dnf_text(r: dict, args) -> str:
    """Why a worker did not finish: killed over the RSS cap, or over its time limit."""
    if r.get("failed"):
        return f"failed after {r['after_s']:.0f} s: {r['failed'][:160]}"
    if r.get("killed_rss"):
        k = r["killed_rss"]
        return f"killed at {_gib(k['rss'])} RSS (cap {args.feast_max_rss_gib:g} GiB) after {k['after_s']:.0f} s"
    return f"did not finish in {args.feast_timeout_min:g} min"


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e6,1e7", help="comma-separated spine sizes (default 1e6,1e7)")
    p.add_argument("--keys", default="uniform,zipf",
                   help="comma-separated key distributions of user and pin ids: uniform, zipf (default both)")
    p.add_argument("--paths", default="broadcast,shuffle",
                   help="ours' join paths to time: broadcast (feature tables up to --broadcast-max-mib take the "
                        "in-place lookup), shuffle (--broadcast-max-mib 0: validity intervals, a hash join) "
                        "and window (--broadcast-max-mib 0, shuffle_join='window') (default broadcast,shuffle)")
    p.add_argument("--no-feast", dest="feast", action="store_false", help="skip the real Feast")
    p.add_argument("--feast-python", default=str(DEFAULT_FEAST_PYTHON),
                   help=f"Python of Feast's own environment (default {DEFAULT_FEAST_PYTHON})")
    p.add_argument("--make-feast-env", action="store_true",
                   help="create that environment (a venv with the pinned feast, pandas, pyarrow) if it is missing")
    p.add_argument("--feast-max-rss-gib", type=float, default=8.0,
                   help="kill the real Feast's worker when its processes hold more than this (default 8)")
    p.add_argument("--spark-formulation", action="store_true",
                   help="also time Feast's offline-store SQL re-implemented on Spark (the earlier peer)")
    p.add_argument("--feast-timeout-min", type=float, default=15.0,
                   help="hard limit per run of the real Feast and of the Spark formulation (default 15)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    p.add_argument("--out", help="write all results as JSON to this path (after each size and key distribution)")
    p.add_argument("--render", metavar="JSON", help="print the table of a saved --out file (of a finished or "
                                                    "interrupted run) and exit")
    p.add_argument("--run-timeout-min", type=float, default=30.0,
                   help="safety limit per run of ours / DuckDB (default 30)")
    p.add_argument("--feast-after-dnf", choices=("skip", "run"), default="skip",
                   help="after Feast (or the Spark formulation) did not finish at one size, skip it at larger sizes "
                        "with the same keys (its cost grows with spine rows x feature rows per key) [default: skip]")
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
                   help="ours' broadcast path: feature tables Spark estimates at most this size (MiB) take the "
                        "broadcast lookup (default: pinrec.jobs.features.pit_join.BROADCAST_MAX_BYTES)")
    p.add_argument("--shuffle-join", default="interval", choices=("interval", "window"),
                   help="ours' join after the shuffle for views over the broadcast limit (default lookup)")
    for hidden in ("--_worker", "--_data", "--_events", "--_spine", "--_save"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, allowed in (("keys", KEY_DISTRIBUTIONS), ("paths", tuple(PATHS))):
        bad = [x for x in _split(getattr(args, name)) if x not in allowed]
        if bad or not _split(getattr(args, name)):
            p.error(f"--{name}: {bad or 'empty'} not allowed; choose from {', '.join(allowed)}")
    return args


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def ensure_feast_env(args) -> str:
    """Feast's Python, checked to import feast; with ``--make-feast-env`` the venv is created first
    when missing. Raises with the command to run otherwise."""
    py = Path(args.feast_python)
    if not py.exists() and args.make_feast_env:
        env = py.parents[1]
        log(f"creating Feast's environment in {env} ({', '.join(FEAST_PIN)})")
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(env / "bin" / "pip"), "install", "-q", *FEAST_PIN], check=True)
    done = subprocess.run([str(py), "-c", "import feast; print(feast.__version__)"], capture_output=True, text=True,
                          check=False) if py.exists() else None
    if done is None or done.returncode != 0:
        raise SystemExit(f"--feast-python {py}: no Python with feast there ({done.stderr[-300:] if done else 'missing'}); "
                         f"run with --make-feast-env, or pass --no-feast")
    return done.stdout.strip()


def _time_worker(kind: str, args, data_dir: Path, work: Path, tag: str, **kw) -> dict:
    """One timed worker with medians and its kind's extras (plan of ours, rows and threads)."""
    limit = (args.feast_timeout_min if kind in ("feast", "feast_sql") else args.run_timeout_min) * 60
    log(f"  {tag}: starting (limit {limit / 60:g} min per run)")
    r = run_worker(kind, args, data_dir, work, limit, tag, **kw)
    r["median_s"] = _median(r)
    r["runs_s"] = [round(e["seconds"], 3) for e in _runs(r)]
    r["rows"] = next((e.get("rows") for e in _runs(r)), None)
    ready = next((e for e in r["events"] if e["event"] == "ready"), {})
    r["spark_start_s"], r["setup_s"], r["threads"] = ready.get("spark_start_s"), ready.get("setup_s"), ready.get("threads")
    if kind == "ours":
        r["median_build_s"] = _median(r, "build_s")
        val = [e for e in r["events"] if e["event"] == "end" and e["run"] == "validate"]
        r["validate_s"] = val[0]["seconds"] if val else None
        plan = [e for e in r["events"] if e["event"] == "plan"]
        r["plan"] = plan[0] if plan else None
    return r


def _save(report: dict, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2, default=str))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        worker_main(args)
        return 0
    if args.render:
        report = json.loads(Path(args.render).read_text())
        print(render(report, parse_args(report["args_argv"])))
        return 0
    import psutil

    sizes = [int(float(s)) for s in _split(args.sizes)]
    dists, paths = _split(args.keys), _split(args.paths)
    feast_version = ensure_feast_env(args) if args.feast else None
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="pinrec-pitbench-"))
    work.mkdir(parents=True, exist_ok=True)
    mem = psutil.virtual_memory().total
    machine = {"nproc": os.cpu_count(), "ram_gib": round(mem / 2**30, 1), "python": platform.python_version(),
               "platform": platform.platform(), "load_at_start": os.getloadavg()}
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine, "feast": feast_version,
              "args_argv": list(sys.argv[1:] if argv is None else argv),
              "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "runs": []}
    log(f"work dir {work}; machine {machine}; feast {feast_version}")
    dnf_at: dict = {}  # (kind, keys) -> first size it did not finish
    try:
        for n in sizes:
            for keys in dists:
                data_dir = work / f"{keys}_n{n}"
                data_dir.mkdir(exist_ok=True)
                log(f"N={n:,}, {keys} keys: generating data")
                stats = generate(n, args.zipf_a, data_dir, args.seed, keys)
                log(f"  {stats}")
                entry: dict = {"n": n, "keys": keys, "data": stats}
                for path in paths:
                    limit, shuffle_join = PATHS[path]
                    bmm = args.broadcast_max_mib if limit is None else limit
                    entry[f"ours_{path}"] = _time_worker("ours", args, data_dir, work, f"{keys}_n{n}_ours_{path}",
                                                         broadcast_max_mib=bmm, shuffle_join=shuffle_join)
                entry["duckdb"] = _time_worker("duckdb", args, data_dir, work, f"{keys}_n{n}_duckdb")
                peers = [*(["feast"] if args.feast else []), *(["feast_sql"] if args.spark_formulation else [])]
                for kind in peers:
                    if (kind, keys) in dnf_at and args.feast_after_dnf == "skip":
                        entry[kind] = {"skipped": f"did not finish at N={dnf_at[kind, keys]:,}; not attempted"}
                        log(f"  {kind}: skipped ({entry[kind]['skipped']})")
                        continue
                    cap = int(args.feast_max_rss_gib * 2**30) if kind == "feast" else None
                    r = entry[kind] = _time_worker(kind, args, data_dir, work, f"{keys}_n{n}_{kind}", max_rss=cap)
                    if r["timed_out"] or r["killed_rss"] or r["failed"]:
                        r["dnf"] = _dnf_text(r, args)
                        dnf_at.setdefault((kind, keys), n)
                if n == sizes[0] and args.spot_check:
                    log(f"  spot check on a {SAMPLE_ROWS:,}-row sample of N={n:,}, {keys} keys")
                    entry["spot_check"] = spot_check(args, data_dir, work, f"_{keys}")
                report["runs"].append(entry)
                _save(report, args.out)  # after each entry: an interrupted run keeps what it measured
                if not args.keep:
                    shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        report["parent_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report["load_at_end"] = os.getloadavg()
        _save(report, args.out)
        if not (args.keep or args.work_dir):
            shutil.rmtree(work, ignore_errors=True)
    print(render(report, args))
    return 0


def ratios(e: dict, paths: list[str]) -> dict:
    """The issue's ratios for one (N, keys) entry; None where an engine has no time. ``per_row``:
    Feast's seconds per row returned / ours' (ours returns every spine row); ``per_call``: Feast's
    call / (ours' Spark start + ours' run); ``vs_duckdb[path]``: ours / DuckDB ASOF. Ours is the
    first of ``paths`` for the Feast ratios."""
    n, duck, feast = e["n"], e.get("duckdb", {}), e.get("feast", {})
    ours = e.get(f"ours_{paths[0]}", {})
    o, f, d = ours.get("median_s"), feast.get("median_s"), duck.get("median_s")
    start = ours.get("spark_start_s")
    out = {"per_row": None, "per_call": None, "vs_duckdb": {}}
    if o and f and feast.get("rows"):
        out["per_row"] = (f / feast["rows"]) / (o / n)
    if o and f and start is not None:
        out["per_call"] = f / (start + o)
    for path in paths:
        op = e.get(f"ours_{path}", {}).get("median_s")
        out["vs_duckdb"][path] = op / d if op and d else None
    return out


def _x(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "not met")


def _peer_text(r: dict) -> str:
    if "skipped" in r:
        return f"not run ({r['skipped']})"
    return r.get("dnf") or _fmt_s(r.get("median_s"))


def render(report: dict, args) -> str:
    m, paths = report["machine"], _split(args.paths)
    lines = [
        (f"Machine: {m['nproc']} cores (nproc), {m['ram_gib']} GiB RAM, Python {m['python']}; 1/5/15-min load "
         f"average at start {m['load_at_start']}, at end {report.get('load_at_end')}. Times are medians of "
         f"{args.repeats} run(s), seconds, each fully materialising the 3-view result (Spark: noop write of every "
         f"column; Feast {report.get('feast')}: get_historical_features(...).to_df() incl. reading the spine into "
         f"pandas; DuckDB: count + bit_xor(hash(every column))). Spark local[{args.spark_cores}], "
         f"{args.shuffle_partitions} shuffle partitions, driver {args.driver_memory}; DuckDB {args.duckdb_threads} "
         f"threads. TTL {args.ttl_days:g} days; Zipf a={args.zipf_a}. Ratios against Feast use ours' {paths[0]} path."),
        "",
        ("| keys | N spine rows | rows returned ours / Feast / DuckDB | "
         + " | ".join(f"ours {p} (s)" for p in paths)
         + " | Spark start (s) | Feast call (s) | DuckDB ASOF (s) | Feast ÷ ours per row returned "
           "| Feast ÷ (Spark start + ours) per call | " + " | ".join(f"ours ÷ DuckDB ({p})" for p in paths)
         + " | peak RSS ours JVM / Feast / DuckDB |"),
        "|---|---:|---:|" + "---:|" * (len(paths) * 2 + 6),
    ]
    notes = []
    for e in report["runs"]:
        n, ours, feast, duck = e["n"], e.get(f"ours_{paths[0]}", {}), e.get("feast", {}), e.get("duckdb", {})
        r = ratios(e, paths)
        rows = f"{n:,} / {feast['rows']:,}" if feast.get("rows") else f"{n:,} / –"
        rows += f" / {duck['rows']:,}" if duck.get("rows") else " / –"
        lines.append(
            f"| {e['keys']} | {n:,} | {rows} | "
            + " | ".join(_fmt_s(e.get(f"ours_{p}", {}).get("median_s")) for p in paths)
            + f" | {_fmt_s(ours.get('spark_start_s'))} | {_peer_text(feast) if args.feast else 'not run'} "
              f"| {_fmt_s(duck.get('median_s'))} | {_x(r['per_row'])} | {_x(r['per_call'])} | "
            + " | ".join(_x(r["vs_duckdb"][p]) for p in paths)
            + f" | {_gib(ours.get('peak_jvm_rss', 0))} / {_gib(feast.get('peak_tree_rss', 0))} "
              f"/ {_gib(duck.get('peak_worker_py_rss', 0))} |")
        st = e["data"]
        merge = ", ".join(f"{k} {v:,}" for k, v in st["feast_merge_rows"].items())
        notes.append(
            f"- {e['keys']}, N={n:,}: {st['users']:,} users / {st['pins']:,} pins, feature rows user "
            f"{st['user_features_rows']:,} / pin {st['pin_features_rows']:,} / user x category "
            f"{st['user_category_features_rows']:,}; hottest user {st['top_user_share']:.1%} of impressions, hottest "
            f"pin {st['top_pin_share']:.1%}. Rows of Feast's per-view left merge (spine x feature rows per key; at "
            f"most this for the 2nd and 3rd view): {merge}. Runs: "
            + "; ".join(f"ours {p} {e.get(f'ours_{p}', {}).get('runs_s')}" for p in paths)
            + f"; Feast {feast.get('runs_s', '-')} (import + registry apply {_fmt_s(feast.get('setup_s'))} s, cold "
              f"start to ready {_fmt_s(feast.get('start_s'))} s); DuckDB {duck.get('runs_s')}. Max 1-min load "
              f"average during ours/Feast/DuckDB: {ours.get('load1_max', 0):.1f}/{feast.get('load1_max', 0):.1f}/"
              f"{duck.get('load1_max', 0):.1f}.")
        for p in paths:
            plan = e.get(f"ours_{p}", {}).get("plan")
            if plan:
                notes.append(f"  ours {p}: plan with {plan.get('map_in_arrow', 0)} MapInArrow (broadcast lookups), "
                             f"{plan.get('exchanges', 0)} repartitions, {plan['window_ops']} Window operators.")
        if "feast_sql" in e:
            notes.append(f"  Feast's SQL formulation on Spark: {_peer_text(e['feast_sql'])}.")
    lines += ["", "Notes:", *notes,
              ("- ours: `point_in_time_join_many` over 3 views, validate=False; every spine row is returned "
               "(a left join; checked on the sample below). Feast's local file store (Dask) returns fewer: it drops "
               "a spine row whose key has feature rows but none in [t - ttl, t], and merges spine rows sharing "
               "(join keys, t); hence the per-row ratio. filter_by_created_timestamp=True gives it ours' "
               "created_ts <= t rule."),
              ("- DuckDB ASOF LEFT JOIN ... ON key AND s.ts >= f.feature_ts, TTL as a post-filter; it does NOT apply "
               "the created_ts rule, so it does a bit less work than the others."),
              (f"- Peak RSS sampled every 0.2 s with psutil (Feast: its whole process tree, killed above "
               f"{args.feast_max_rss_gib:g} GiB); parent (data generation) peak RSS {_gib(report.get('parent_peak_rss', 0))}.")]
    big = max((e["n"] for e in report["runs"]), default=0)
    lines += ["", f"Targets at N={big:,}:"]
    for e in (e for e in report["runs"] if e["n"] == big):
        r = ratios(e, paths)
        dnf = e.get("feast", {}).get("dnf") or e.get("feast", {}).get("skipped")
        pr = "Feast did not return (" + dnf + ")" if dnf else _met(None if r["per_row"] is None else r["per_row"] >= 5)
        pc = "Feast did not return" if dnf else _met(None if r["per_call"] is None else r["per_call"] > 1)
        vd = "; ".join(f"{p} {_met(None if v is None else v <= 2)} ({_x(v)})" for p, v in r["vs_duckdb"].items())
        lines.append(f"- {e['keys']} keys: >= 5x faster than Feast per spine row returned: {pr} ({_x(r['per_row'])}); "
                     f"faster per call with Spark start included: {pc} ({_x(r['per_call'])}); within 2x of DuckDB "
                     f"ASOF: {vd}.")
    for e in report["runs"]:
        sc = e.get("spot_check")
        if not sc:
            continue
        lines += ["", (f"Correctness spot check, {e['keys']} keys, on a {sc['sample_rows']:,}-row sample of the "
                       f"N={e['n']:,} spine (compared by event_id):")]
        for k in ("feast", "feast_sql"):
            if f"{k}_status" in sc:
                lines.append(f"- {k} on the sample: {sc[f'{k}_status']}")
        for other, c in sc.get("comparisons", {}).items():
            if other == "feast":
                lines.append(f"- ours vs the real Feast: rows {c['rows_ours']:,} vs {c['rows_other']:,}; Feast rows "
                             f"unknown to ours {c['feast_rows_not_in_ours']:,}; of Feast's rows, {c['rows_differing']:,} "
                             f"differ in some feature value -> {'AGREE on every row Feast returns' if c['agree'] else 'DIFFER'}")
                continue
            verdict = "AGREE" if c["agree"] else f"DIFFER on {c['rows_differing']:,} rows {c['mismatching_columns']}"
            if other == "duckdb_asof_ttl" and not c["agree"]:
                same = c["rows_differing"] == sc.get("rows_where_created_ts_matters")
                verdict += (" -- exactly the rows where the created_ts rule matters (expected)" if same
                            else " -- NOT explained by the created_ts rule alone")
            lines.append(f"- ours vs {other}: {verdict} (rows {c['rows_ours']:,} vs {c['rows_other']:,})")
        if "hit_rate" in sc:
            lines.append(f"- share of sample rows with a fresh known feature row, per view: {sc['hit_rate']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
