"""Validation of one batch against its table contract, with Great Expectations and row tagging.

Every check is derived from the :class:`~pinrec.schemas.tables.TableSpec` once, as a :class:`Check` with
two faces that must agree:

* a Great Expectations expectation, run as one suite over the batch: the gate and the report;
* a Spark SQL predicate that is true for a violating row: it tags each row with the reasons it
  fails, so that bad rows can be quarantined with their reason instead of being dropped.

:func:`validate` runs both and raises :class:`ValidationMismatchError` if they ever count a
check differently, so the quarantine can never drift from what the suite reports.
Foreign keys are checked against temp views of the referenced tables (``pinrec_ref_*``).
"""
from __future__ import annotations

import datetime as dt
import functools
import threading
from dataclasses import dataclass, field
from typing import Any

from pinrec.schemas.tables import TableSpec


class ValidationMismatchError(RuntimeError):
    """Great Expectations and the row tagging disagree on a check's count (a bug, never data)."""


@dataclass(frozen=True)
class Check:
    """One rule: ``name`` (the quarantine reason), ``violation`` (Spark SQL, true when a row
    breaks it; null counts as not broken) and the GX expectation's class name and kwargs."""

    name: str
    violation: str
    gx_type: str
    gx_kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def ref_view(ref: str, table: str) -> str:
    """Temp view name holding the keys of a referenced ``table.column`` for the batch of ``table`` (its
    own: the tables of one foreign-key level are ingested side by side in one session, and a reference
    into an event table is read over each batch's own days)."""
    return f"pinrec_ref_{table}__" + ref.replace(".", "__")


def missing_ref_flag(column: str) -> str:
    """Name of the boolean column that is true when ``column``'s foreign key is unknown."""
    return f"_unknown_ref__{column}"


def add_reference_flags(df, spec: TableSpec):
    """Left-join ``df`` with each referenced key view (which must exist in ``df``'s session) and
    add :func:`missing_ref_flag` columns: true when the key is set but unknown."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    for c in spec.foreign_keys:
        ref_col = c.references.split(".")[1]
        keys = (spark.table(ref_view(c.references, spec.name)).select(F.col(ref_col).alias("_ref_key")).distinct()
                .withColumn("_ref_hit", F.lit(True)))
        df = (df.join(keys, df[c.name] == keys["_ref_key"], "left")
              .withColumn(missing_ref_flag(c.name), F.col(c.name).isNotNull() & F.col("_ref_hit").isNull())
              .drop("_ref_key", "_ref_hit"))
    return df


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rows_query(violation: str) -> str:
    return f"SELECT * FROM {{batch}} WHERE coalesce({violation}, false)"


#: Spark SQL ``trunc`` unit of a coarse landing partition (:data:`pinrec.jobs.ingest.landing.GRANULARITIES`).
_TRUNC = {"month": "MM", "year": "YEAR"}


def checks_for(spec: TableSpec, now: dt.datetime, max_future_skew_s: int = 300,
               granularity: str = "day") -> list[Check]:
    """All checks of ``spec`` for a batch validated at wall-clock time ``now`` (UTC), read from
    landing partitions of ``granularity`` (an event must fall in its partition's day, month or year;
    ``dt`` is the partition's first day)."""
    if granularity != "day" and granularity not in _TRUNC:
        raise ValueError(f"granularity must be one of {['day', *_TRUNC]}, got {granularity!r}")
    checks: list[Check] = []
    for c in spec.columns:
        col = f"`{c.name}`"
        if not c.nullable:
            checks.append(Check(f"null:{c.name}", f"{col} IS NULL",
                                "ExpectColumnValuesToNotBeNull", {"column": c.name}))
        if c.min_value is not None or c.max_value is not None:
            parts = []
            if c.min_value is not None:
                parts.append(f"{col} < {c.min_value}")
            if c.max_value is not None:
                parts.append(f"{col} > {c.max_value}")
            checks.append(Check(f"out_of_range:{c.name}", " OR ".join(parts), "ExpectColumnValuesToBeBetween",
                                {"column": c.name, "min_value": c.min_value, "max_value": c.max_value}))
        if c.allowed is not None:
            values = ", ".join(_sql_str(v) for v in c.allowed)
            checks.append(Check(f"not_allowed:{c.name}", f"{col} NOT IN ({values})",
                                "ExpectColumnValuesToBeInSet", {"column": c.name, "value_set": list(c.allowed)}))
        if c.pattern is not None:
            checks.append(Check(f"bad_format:{c.name}", f"NOT ({col} RLIKE {_sql_str(c.pattern)})",
                                "ExpectColumnValuesToMatchRegex", {"column": c.name, "regex": c.pattern}))
        if c.references is not None:
            ref_col = c.references.split(".")[1]
            # Two independent formulations: a correlated NOT EXISTS for the suite, and the flag
            # column that add_reference_flags() computes with a left join for the row tagging.
            gx_query = (f"SELECT * FROM {{batch}} b WHERE b.{col} IS NOT NULL AND NOT EXISTS "
                        f"(SELECT 1 FROM {ref_view(c.references, spec.name)} r WHERE r.`{ref_col}` = b.{col})")
            checks.append(Check(f"unknown_ref:{c.name}->{c.references}", f"`{missing_ref_flag(c.name)}`",
                                "UnexpectedRowsExpectation",
                                {"description": f"{c.name} refers to a known {c.references}",
                                 "unexpected_rows_query": gx_query}))
    for rc in spec.row_checks:
        checks.append(Check(f"row:{rc.name}", f"NOT ({rc.condition})", "UnexpectedRowsExpectation",
                            {"description": rc.doc or rc.name}))
    limit = (now + dt.timedelta(seconds=max_future_skew_s)).strftime("%Y-%m-%d %H:%M:%S")
    ts = f"`{spec.event_ts}`"
    checks.append(Check(f"future:{spec.event_ts}", f"{ts} > TIMESTAMP '{limit}'", "UnexpectedRowsExpectation",
                        {"description": f"{spec.event_ts} is not after the job's clock + {max_future_skew_s}s"}))
    if spec.kind == "event":
        day = f"to_date({ts})" if granularity == "day" else f"trunc(to_date({ts}), '{_TRUNC[granularity]}')"
        checks.append(Check(f"outside_partition:{spec.event_ts}", f"{day} <> `{spec.partition}`",
                            "UnexpectedRowsExpectation",
                            {"description": f"{spec.event_ts} falls in the partition's {granularity}"}))
    for check in checks:
        if check.gx_type == "UnexpectedRowsExpectation":
            check.gx_kwargs.setdefault("unexpected_rows_query", _rows_query(check.violation))
    return checks


def tag_reasons(df, checks: list[Check], column: str = "_reasons"):
    """Add ``column``: the ';'-joined names of the checks each row violates ('' when valid)."""
    from pyspark.sql import functions as F

    flags = [F.when(F.coalesce(F.expr(c.violation), F.lit(False)), F.lit(c.name)) for c in checks]
    if not flags:
        return df.withColumn(column, F.lit(""))
    return df.withColumn(column, F.concat_ws(";", F.array_compact(F.array(*flags))))


@dataclass(frozen=True)
class CheckResult:
    name: str
    expectation: str
    unexpected: int
    success: bool


def _gx_context():
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins this module's logger to INFO and logs a line per context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


@functools.cache
def _count_only_rows_expectation():
    """GX's ``UnexpectedRowsExpectation`` as a custom expectation (GX's documented way: a subclass)
    that depends on the query's row count only. The stock class also fetches up to 200 of the
    unexpected rows (metric ``unexpected_rows_query.table``) for every result format, one more Spark
    job per check that SUMMARY then drops; the quarantine keeps its own samples. Built once per
    process: GX registers expectation classes by name."""
    import great_expectations.expectations as gxe

    class ExpectNoUnexpectedRows(gxe.UnexpectedRowsExpectation):
        """Succeeds when ``unexpected_rows_query`` returns no row; ``observed_value`` is its count."""

        metric_dependencies = ("unexpected_rows_query.row_count",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            count = metrics["unexpected_rows_query.row_count"]
            return {"success": count == 0, "result": {"observed_value": count}}

    return ExpectNoUnexpectedRows


def _expectation_class(gx_type: str):
    import great_expectations.expectations as gxe

    if gx_type == "UnexpectedRowsExpectation":
        return _count_only_rows_expectation()
    return getattr(gxe, gx_type)


def build_suite(spec: TableSpec, checks: list[Check]):
    """The Great Expectations suite of ``spec`` (a ``gx.ExpectationSuite``); a check of type
    ``UnexpectedRowsExpectation`` runs as its count-only subclass."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"pinrec.{spec.name}")
    for check in checks:
        expectation = _expectation_class(check.gx_type)(**check.gx_kwargs, meta={"pinrec_check": check.name})
        suite.add_expectation(expectation)
    return suite


class _Gx:
    """One ephemeral GX context and one Spark data source per Spark session, shared by every
    table and batch the process validates (a context per table cost a second or more each),
    with one dataframe asset and batch definition per table."""

    _current: _Gx | None = None

    def __init__(self, spark):
        self.spark = spark
        self.context = _gx_context()
        # persist=False: GX would otherwise cache the batch and never release it; a later batch with
        # the same plan (a re-run over rewritten files) would then silently read the stale cache.
        self.source = self.context.data_sources.add_spark("pinrec_spark", persist=False)
        self.batches: dict[str, Any] = {}

    @classmethod
    def of(cls, spark) -> _Gx:
        """The shared instance for ``spark`` (a new one when the session changed: the data
        source runs the suite's SQL in the session it was built with)."""
        if cls._current is None or cls._current.spark is not spark:
            cls._current = cls(spark)
        return cls._current

    def batch_definition(self, table: str):
        if table not in self.batches:
            self.batches[table] = self.source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("batch")
        return self.batches[table]


#: SUMMARY counts, without the 20 sample values per column expectation that GX fetches by default
#: (one extra Spark job per expectation; the quarantine keeps its own samples).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


#: GX's context is shared by every table of the process and is not documented as thread-safe: the
#: tables of one foreign-key level, ingested side by side, run their suites one at a time
_GX_LOCK = threading.Lock()


def run_suite(df, spec: TableSpec, checks: list[Check]) -> list[CheckResult]:
    """Validate ``df`` with the suite; one result per check, in order."""
    with _GX_LOCK:
        gx = _Gx.of(df.sparkSession)
        suite = build_suite(spec, checks)
        result = gx.batch_definition(spec.name).get_batch(batch_parameters={"dataframe": df}).validate(
            suite, result_format=RESULT_FORMAT)
    by_check = {}
    for r in result.results:
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {r.expectation_config.type} on {spec.name} raised: "
                               f"{r.exception_info.get('exception_message')}")
        name = r.expectation_config.meta["pinrec_check"]
        res = r.result or {}
        unexpected = res.get("unexpected_count", res.get("observed_value", 0)) or 0
        by_check[name] = CheckResult(name, r.expectation_config.type, int(unexpected), bool(r.success))
    return [by_check[c.name] for c in checks]


def count_by_check(tagged, checks: list[Check], column: str = "_reasons") -> dict[str, int]:
    """How many rows of ``tagged`` each check flagged (one Spark job)."""
    from pyspark.sql import functions as F

    aggs = [F.sum(F.when(F.array_contains(F.split(F.col(column), ";"), c.name), 1).otherwise(0)).alias(f"c{i}")
            for i, c in enumerate(checks)]
    if not aggs:
        return {}
    row = tagged.agg(*aggs).collect()[0]
    return {c.name: int(row[f"c{i}"] or 0) for i, c in enumerate(checks)}


def validate(df, spec: TableSpec, checks: list[Check]):
    """Tag ``df`` with reasons, run the GX suite, and insist both agree.

    Returns ``(tagged_df, results)``; ``tagged_df`` is cached, callers unpersist it.
    """
    tagged = tag_reasons(df, checks).cache()
    try:
        counts = count_by_check(tagged, checks)
        results = run_suite(tagged, spec, checks)  # the cached frame: the suite reads it many times
    except BaseException:
        tagged.unpersist()
        raise
    for r in results:
        if r.unexpected != counts[r.name]:
            tagged.unpersist()
            raise ValidationMismatchError(
                f"{spec.name}: check {r.name}: Great Expectations counts {r.unexpected} unexpected rows, "
                f"row tagging counts {counts[r.name]}")
    return tagged, results
