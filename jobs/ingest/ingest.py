"""Ingestion: landing-zone JSON lines -> validated Delta tables, bad rows -> quarantine.

For one table and a set of days, in one Spark batch:

1. read the raw lines of ``<landing>/<table>/dt=<day>/`` (:mod:`pinrec.jobs.ingest.ingest_read`: missing or
   empty partitions of mandatory tables are errors; a file in a sub-folder of a partition or a
   file that cannot be read (a ``.gz`` that is not gzip) is a :class:`LandingFileError` naming it;
   keys the contract does not know are a :class:`SchemaDriftError`);
2. parse them against the contract; lines that are not UTF-8 (``invalid_utf8``), not one JSON
   object (``malformed_json``) or repeat a key (``duplicate_json_key:<col>``), and values of the
   wrong JSON type (``type_mismatch:<col>``: a string column takes only JSON strings) are
   quarantined;
3. de-duplicate on the primary key: exact duplicates are dropped and counted, rows that reuse a
   key with a different payload are quarantined (``duplicate_key``); event rows per partition day,
   dimension rows (users, pins, boards: append-only, the first delivery stays) over the batch and
   against the table's rows on other days, so a dimension re-delivered on a later day (a daily full
   dump) is a dropped duplicate, and a changed one is quarantined, never a second row of its key;
4. validate with the table's Great Expectations suite (:mod:`pinrec.jobs.ingest.validation`), tag failing rows;
5. check the row accounting ``rows_in == valid + quarantined + duplicates``;
6. if the quarantined share exceeds ``max_failing_fraction``, raise :class:`BatchRejectedError`
   with the report and write nothing to the valid table; otherwise replace the days' partitions
   of the Delta table (``replaceWhere``: a re-run never duplicates) and of the quarantine, through
   the catalog (:mod:`pinrec.jobs.io.catalog`), which records the reference tables this table read
   (no other table's: a read scope per table) as the commits' lineage. The table is held
   (:meth:`~pinrec.jobs.io.catalog.Catalog.holding`: on object storage its writer lease) from before
   its stored rows are read (step 3's dimension keys, the quarantine's rows) to after both commits, so
   another ingest of it cannot land in between: two ingests of a dimension at once would otherwise
   each check its keys against a table without the other's, and store them twice.

A static dataset landed in coarse partitions (by month or year: :mod:`pinrec.jobs.ingest.landing`, the
span in the landing zone's dataset record) is ingested the same way, ``days`` being the partitions'
first days (what :func:`landed_days` lists): an event must fall in its partition's span
(``outside_partition``), valid events go to the Delta partition of their own day and dimension rows
to the partition's first day, and the write replaces every day of the spans. Quarantined rows keep
the partition's first day as ``dt``.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from pinrec.jobs.config import IngestConfig
from pinrec.jobs.io.catalog import Catalog, days_predicate
from pinrec.jobs.io.timestamps import ts_lit
from pinrec.schemas.catalog import QUARANTINE, RAW_TABLES
from pinrec.schemas.tables import TableSpec

from .dataset_info import partition_granularity
from .ingest_read import (
    IngestError,
    LandingFileError,
    LandingPartitionMissingError,
    SchemaDriftError,
    parse,
    read_failure,
    read_lines,
)
from .landing import partition_dir, partition_end
from .report import IngestReport
from .validation import add_reference_flags, checks_for, ref_view, validate

__all__ = ["BatchRejectedError", "EmptyBatchError", "IngestError", "IngestPaths", "LandingFileError",
           "LandingPartitionMissingError", "SchemaDriftError", "ingest", "ingest_table",
           "landed_days", "parse", "read_lines", "reference_levels"]

log = logging.getLogger(__name__)


class EmptyBatchError(IngestError):
    pass


class BatchRejectedError(IngestError):
    """Too many rows failed validation; ``report`` holds the details. Nothing valid was written."""

    def __init__(self, report: IngestReport):
        super().__init__(report.render())
        self.report = report


@dataclass(frozen=True)
class IngestPaths:
    """``landing``: the landing zone; ``warehouse``: the warehouse (a path or URI, a Location, or a
    :class:`~pinrec.jobs.io.catalog.Catalog` whose lineage then covers the ingestion)."""

    landing: str
    warehouse: str


def deduplicate(parsed, spec: TableSpec):
    """Split clean rows into (first row per key, extra rows). Extra rows carry ``_exact``: true
    when they repeat the kept row's payload."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    payload = F.to_json(F.struct(*[F.col(c) for c in spec.column_names]))
    # per partition day, as a daily run sees them: a copy re-delivered into another day's folder must not
    # displace the row in its own day (it is quarantined there as outside its partition); a row with a
    # null key component is a group of its own (quarantined as null, never a "duplicate" of another)
    null_key = F.lit(False)
    for k in spec.primary_key:
        null_key = null_key | F.col(k).isNull()
    alone = F.when(null_key, F.monotonically_increasing_id())
    # a dimension row is one per key over all days (module docstring): the earliest day's delivery stays
    per_day = [spec.partition] if spec.kind == "event" else []
    w = (Window.partitionBy(*spec.primary_key, *per_day, alone)
         .orderBy(F.col(spec.partition), F.col(spec.event_ts).asc_nulls_last(), "_raw"))
    ranked = (parsed.withColumn("_payload", payload).withColumn("_rank", F.row_number().over(w))
              .withColumn("_first_payload", F.first("_payload").over(w)))
    keep = ranked.where("_rank = 1").drop("_rank", "_payload", "_first_payload")
    extra = (ranked.where("_rank > 1").withColumn("_exact", F.col("_payload") == F.col("_first_payload"))
             .drop("_rank", "_payload", "_first_payload"))
    return keep, extra


def _spans(days: list[dt.date], granularity: str) -> list[tuple[dt.date, dt.date]]:
    """The landing partitions starting on ``days`` as merged ``[first day, end)`` ranges."""
    spans: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        end = partition_end(day, granularity)
        if spans and spans[-1][1] >= day:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((day, end))
    return spans


def _span_days(spans: list[tuple[dt.date, dt.date]]) -> list[dt.date]:
    """Every day of the ``[first day, end)`` ranges."""
    return [a + dt.timedelta(days=i) for a, b in spans for i in range((b - a).days)]


def _register_references(catalog: Catalog, spec: TableSpec, days: list[dt.date], cfg: IngestConfig,
                         granularity: str = "day") -> list:
    from pyspark.sql import functions as F

    tables = {t.name: t for t in RAW_TABLES}
    cached = []
    for c in spec.foreign_keys:
        ref_table, ref_col = c.references.split(".")
        if not catalog.exists(ref_table):
            raise IngestError(f"{spec.name}.{c.name} references {c.references}, but {catalog.path(ref_table)} does "
                              f"not exist yet: ingest {ref_table} for these days first (tables go in the order of "
                              f"RAW_TABLES)")
        ref = catalog.read(ref_table)
        if tables[ref_table].kind == "event":
            since = min(days) - dt.timedelta(days=cfg.reference_lookback_days)
            until = partition_end(max(days), granularity) - dt.timedelta(days=1)
            ref = ref.where(F.col("dt").between(F.lit(since), F.lit(until)))
        # Cached: the row tagging's join and the suite's NOT EXISTS both read it.
        keys = ref.select(ref_col).distinct().cache()
        keys.createOrReplaceTempView(ref_view(c.references, spec.name))
        cached.append(keys)
    return cached


def ingest_table(spark, spec: TableSpec, paths: IngestPaths, days: list[dt.date], cfg: IngestConfig,
                 now: dt.datetime | None = None) -> IngestReport:
    """Ingest ``days`` of ``spec`` (see the module docstring); returns the batch report. Its commits record
    as their lineage only what this table read (its foreign keys' tables), in a read scope of its own
    (:meth:`~pinrec.jobs.io.catalog.Catalog.scope`): a catalog shared with the tables ingested beside it
    or before it holds theirs too."""
    catalog = Catalog.of(spark, paths.warehouse)
    with catalog.scope():
        return _ingest_table(catalog, spec, paths, days, cfg, now)


def _ingest_table(catalog: Catalog, spec: TableSpec, paths: IngestPaths, days: list[dt.date], cfg: IngestConfig,
                  now: dt.datetime | None) -> IngestReport:
    spark = catalog.spark
    if not days:
        raise ValueError("ingest_table needs at least one day")
    days = sorted(set(days))
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    batch_id = f"{spec.name}:{days[0]}..{days[-1]}:{uuid.uuid4().hex[:8]}"
    optional = spec.name in cfg.optional_tables
    granularity = partition_granularity(paths.landing)
    lines = read_lines(spark, paths.landing, spec, days, optional)
    if lines is None:
        log.info("%s: nothing landed for %s..%s", spec.name, days[0], days[-1])
        return IngestReport(table=spec.name, days=tuple(days), batch_id=batch_id)
    cached: list = []  # everything cached is released, even on error: a later batch with the same
    try:               # plan over rewritten files would otherwise read the stale cache
        landing = {d.isoformat(): str(partition_dir(paths.landing, spec.name, d)) for d in days}  # lineage
        # held from the check against the stored rows (a dimension's keys on other days, the quarantine's rows)
        # to the last commit: another ingest of the table cannot commit in between (it would be checked by neither)
        with catalog.holding(spec.name):
            report = _ingest_lines(catalog, spec, days, cfg, now, batch_id, lines, optional, cached, landing,
                                   granularity)
    finally:
        for df in cached:
            df.unpersist()
    if report.rejected:
        raise BatchRejectedError(report)
    log.info("%s", report.summary_line())
    return report


def _ingest_lines(catalog, spec, days, cfg, now, batch_id, lines, optional, cached, landing,
                  granularity) -> IngestReport:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def keep(df):
        cached.append(df.cache())
        return df

    lines = keep(lines)
    try:  # the only read of the files (later steps read the cached lines), counted per partition day
        per_day = {r[0]: r[1] for r in lines.groupBy(spec.partition).count().collect()}
    except Exception as err:
        failure = read_failure(err, spec.name)
        if failure is None:
            raise
        raise failure from err
    rows_in = sum(per_day.values())
    empty = [d for d in days if not per_day.get(d)]
    if empty and not optional:  # one empty day of a batch would replace that day's rows with nothing
        raise EmptyBatchError(f"{spec.name}: the landing files for {', '.join(map(str, empty))} hold no rows; "
                              f"a mandatory table cannot be empty (set ingest.optional_tables to allow it)")
    parsed = keep(parse(lines, spec))
    clean = parsed.where("_parse_reasons = ''").drop("_parse_reasons")
    first, extra = deduplicate(clean, spec)
    written = days if granularity == "day" else _span_days(_spans(days, granularity))
    if spec.kind != "event":
        first, extra = _against_stored(catalog, spec, first, extra, written)
    cached.extend(_register_references(catalog, spec, days, cfg, granularity))
    checks = checks_for(spec, now, cfg.max_future_skew_s, granularity)
    tagged, results = validate(add_reference_flags(first, spec), spec, checks)
    cached.append(tagged)

    extra = keep(extra)  # read by the quarantine and the accounting: the window over the clean rows runs once
    quarantine = keep(
        parsed.where("_parse_reasons <> ''").select("dt", "_raw", F.col("_parse_reasons").alias("reason"))
        .unionByName(extra.where("NOT _exact").select(
            "dt", "_raw", F.lit("duplicate_key:" + ",".join(spec.primary_key)).alias("reason")))
        .unionByName(tagged.where("_reasons <> ''").select("dt", "_raw", F.col("_reasons").alias("reason"))))
    valid = tagged.where("_reasons = ''").select(*spec.column_names, "dt")
    by_reason, rows_valid, duplicates = _accounting(quarantine, valid, extra)
    samples: dict[str, list[str]] = {}
    ranked = quarantine.withColumn("_i", F.row_number().over(Window.partitionBy("reason").orderBy("_raw")))
    for row in (ranked.where(F.col("_i") <= cfg.report_sample_rows).orderBy("reason", "_i").collect()
                if by_reason else ()):  # a clean batch has no samples: skip the Spark job
        samples.setdefault(row["reason"], []).append(row["_raw"])
    if granularity != "day" and spec.kind == "event":  # a coarse partition: each event to its own day
        valid = valid.withColumn("dt", F.to_date(spec.event_ts))
    report = IngestReport(
        table=spec.name, days=tuple(days), batch_id=batch_id, rows_in=rows_in,
        rows_valid=rows_valid, rows_quarantined=sum(by_reason.values()),
        duplicates_dropped=duplicates, quarantined_by_reason=by_reason,
        expectations=tuple(results), samples=samples, max_failing_fraction=cfg.max_failing_fraction,
    )
    report.check_accounting()
    q_rows = quarantine.select(F.lit(spec.name).alias("source_table"), F.lit(batch_id).alias("batch_id"), "reason",
                               F.col("_raw").alias("raw"), ts_lit(now).alias("quarantined_at"), "dt")
    origin = {"batch_id": batch_id, "landing": landing}  # `pinrec lineage` follows a raw table back to these folders
    origin["rows"] = {"in": report.rows_in, "valid": report.rows_valid, "quarantined": report.rows_quarantined,
                      "duplicates_dropped": report.duplicates_dropped}  # the batch's accounting, for `pinrec report`
    # every day of the spans (``written``) is replaced and recorded (``wrote_days``: the step cache reads a day's
    # fingerprint there)
    # the table is held (by the caller) across both commits: another ingest of it cannot land between its
    # quarantine rows and its valid rows (a crash between the two leaves them apart; re-running the batch repairs it)
    if by_reason or _quarantined_before(catalog, spec.name, days):  # else there is nothing to write or replace
        catalog.write(QUARANTINE.name, q_rows, days=days, replace_where=f"source_table = '{spec.name}'",
                      user_metadata={"batch_id": batch_id, "landing": landing})  # lineage: the rows' landing
    if report.rejected:
        return report
    return report.with_version(catalog.write(spec.name, valid, days=written, user_metadata=origin).version)


def _against_stored(catalog: Catalog, spec: TableSpec, first, extra, written: list[dt.date]):
    """Dimension rows whose key the table already holds on a day the batch does not replace move from
    ``first`` to ``extra`` (``_exact``: the same payload as the stored row). Read through a catalog of its
    own: the table's earlier version is not the batch's lineage (nor part of the step cache's fingerprint)."""
    from pyspark.sql import functions as F

    look = Catalog(catalog.spark, catalog.warehouse)
    if not look.exists(spec.name):
        return first, extra
    stored = (look.read(spec.name).where(f"NOT ({days_predicate(written)})")
              .select(*spec.primary_key, F.to_json(F.struct(*[F.col(c) for c in spec.column_names]))
                      .alias("_stored_payload")))
    payload = F.to_json(F.struct(*[F.col(c) for c in spec.column_names]))
    met = first.join(stored, list(spec.primary_key), "left")
    again = (met.where(F.col("_stored_payload").isNotNull())
             .select("dt", "_raw", (payload == F.col("_stored_payload")).alias("_exact")))
    first = met.where(F.col("_stored_payload").isNull()).drop("_stored_payload")
    return first, extra.select("dt", "_raw", "_exact").unionByName(again)


def _quarantined_before(catalog: Catalog, table: str, days: list[dt.date]) -> bool:
    """Whether the quarantine holds rows of ``table`` on ``days`` (a clean batch must then replace
    them; otherwise its empty quarantine write, a Delta commit, is skipped). Read through a catalog of
    its own: the check is not the batch's lineage."""
    look = Catalog(catalog.spark, catalog.warehouse)
    if not look.exists(QUARANTINE.name):
        return False
    rows = look.read(QUARANTINE.name).where(f"source_table = '{table}' AND {days_predicate(days)}")
    return not rows.isEmpty()


def _accounting(quarantine, valid, extra) -> tuple[dict[str, int], int, int]:
    """``(quarantined rows by reason, valid rows, exact duplicates dropped)`` from one Spark job: a
    count per reason over the quarantine, the valid rows and the exact duplicates, each counted
    from its own rows (so that :meth:`IngestReport.check_accounting` still checks them)."""
    from pyspark.sql import functions as F

    valid_tag, exact_tag = "\0valid", "\0exact"  # no check's name starts with NUL
    rows = (quarantine.select("reason")
            .unionByName(valid.select(F.lit(valid_tag).alias("reason")))
            .unionByName(extra.where("_exact").select(F.lit(exact_tag).alias("reason")))
            .groupBy("reason").agg(F.count("*").alias("n")).collect())
    counts = {r["reason"]: int(r["n"]) for r in rows}
    return counts, counts.pop(valid_tag, 0), counts.pop(exact_tag, 0)


def landed_days(landing: str, start: dt.date, end: dt.date, anchor: str = "impressions") -> list[dt.date]:
    """The first days of the anchor table's landed partitions overlapping [start, end]
    (:func:`~pinrec.jobs.ingest.days.landed_partitions`): what ingest reads. For a daily landing these are
    the landed days; for one by month or year, the days that hold events are
    :func:`~pinrec.jobs.ingest.days.event_days`."""
    from .days import landed_partitions

    return landed_partitions(landing, start, end, anchor)


def reference_levels(specs: list[TableSpec]) -> list[list[TableSpec]]:
    """``specs`` (in :data:`RAW_TABLES` order) grouped in foreign-key levels: a table's level is one
    past the highest level of the tables of ``specs`` it references (those outside ``specs`` must be
    in the warehouse already), so each level reads only tables written by the levels before it."""
    level: dict[str, int] = {}
    for spec in specs:
        refs = [level[c.references.split(".")[0]] for c in spec.foreign_keys if c.references.split(".")[0] in level]
        level[spec.name] = 1 + max(refs, default=-1)
    return [[s for s in specs if level[s.name] == i] for i in range(max(level.values(), default=-1) + 1)]


def ingest(spark, paths: IngestPaths, days: list[dt.date], cfg: IngestConfig,
           tables: tuple[str, ...] | None = None, now: dt.datetime | None = None) -> list[IngestReport]:
    """Ingest ``days`` for every raw table (or ``tables``), level by foreign-key level
    (:func:`reference_levels`), up to ``cfg.parallel_tables`` tables of a level side by side in
    threads of ``spark``; reports in :data:`RAW_TABLES` order. A failing table stops the levels after
    its own (the other tables of its level finish); the first failure in table order is raised."""
    from concurrent.futures import ThreadPoolExecutor

    names = [t.name for t in RAW_TABLES]
    unknown = sorted(set(tables or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; raw tables are {names}")
    chosen = [spec for spec in RAW_TABLES if tables is None or spec.name in tables]
    reports: dict[str, IngestReport] = {}
    for level in reference_levels(chosen):
        if cfg.parallel_tables == 1 or len(level) == 1:
            for spec in level:
                reports[spec.name] = ingest_table(spark, spec, paths, days, cfg, now=now)
            continue
        with ThreadPoolExecutor(min(cfg.parallel_tables, len(level)), thread_name_prefix="pinrec-ingest") as pool:
            running = [pool.submit(ingest_table, spark, spec, paths, days, cfg, now) for spec in level]
        for spec, future in zip(level, running, strict=True):  # all finished: the first failure in table order
            reports[spec.name] = future.result()
    return [reports[spec.name] for spec in chosen]
