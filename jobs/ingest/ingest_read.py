"""Reading landing partitions strictly: which files, which lines, which JSON a row may be.

Files. A partition ``<landing>/<table>/dt=<day>/`` is flat: every visible file directly in it is
read (``.gz`` files are gunzipped); names starting with ``.`` or ``_`` are hidden and ignored
(Hadoop's convention: ``_SUCCESS``, ``_temporary/``, ``.staging/``). A file in a visible
sub-folder is never ignored silently, nor read (it is not part of the day's layout: a producer
wrote it elsewhere than agreed): the batch fails with a :class:`LandingFileError` naming it,
before anything is written. So does a name holding a glob character (``[]{}*?\\``): Spark reads each
path as a pattern, so ``part-[1].jsonl`` would read ``part-1.jsonl`` a second time and itself never. A
file Spark cannot read
(a ``.gz`` that is not gzip, a truncated one) fails the batch the same way, naming the file and
the cause; a corrupt file cannot be quarantined row by row, since its rows cannot be counted.

Lines. Records end at ``\\n`` only; one ``\\r`` before it is part of the line end (CRLF files), any
other ``\\r`` is data (JSON whitespace between tokens, a control character inside a string).
Blank lines are skipped and not counted.

Rows. Each line gets one quarantine reason set, checked in this order:

* ``invalid_utf8``: the bytes are not UTF-8 (the stored ``raw`` has U+FFFD in their place);
* ``malformed_json``: not one JSON object (``NaN`` tokens included), or text after it (a second
  record glued onto the line, ``{...} {...}``: Spark's JSON functions stop at the object's closing
  brace, so the line is parsed again inside brackets, where that text is an error);
* ``duplicate_json_key:<col>``: a key appears twice in the object (';'-joined, sorted);
* ``type_mismatch:<col>`` (';'-joined, in column order): a non-null value whose JSON type the
  column does not take (:data:`JSON_TYPES`), or that Spark cannot convert. A string column takes
  only JSON strings (``123``, ``{"a":1}``, ``[1,2]`` are refused), an integer column only integral
  numbers in range (not ``1.5``, ``1.0``, ``"1"``, ``true``), a float column only numbers, a bool
  only ``true``/``false``, a timestamp or date only a string Spark parses, an array only an array
  of its element type (``null`` elements allowed).

All of it runs as Spark SQL expressions on the executors (no Python per row).
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.spark import spark_schema
from pinrec.schemas.tables import TableSpec

from .dataset_info import partition_granularity
from .landing import partition_dir

# Per contract dtype, what ``schema_of_variant`` may say of a non-null value (a full match).
_NUMBER = r"BIGINT|DOUBLE|DECIMAL\(\d+,\d+\)"
JSON_TYPES: dict[str, str] = {
    "int32": "BIGINT",
    "int64": "BIGINT",
    "float32": _NUMBER,
    "float64": _NUMBER,
    "bool": "BOOLEAN",
    "string": "STRING",
    "timestamp": "STRING",
    "date": "STRING",
    "array<float32>": rf"ARRAY<({_NUMBER}|VOID)>",
    "array<int64>": r"ARRAY<(BIGINT|VOID)>",
}


class IngestError(RuntimeError):
    """A batch cannot be ingested; the message says why and what to do."""


class LandingPartitionMissingError(IngestError):
    pass


class SchemaDriftError(IngestError):
    pass


class LandingFileError(IngestError):
    """A landing file is where no file belongs, or cannot be read; the message names it."""


#: what an interrupted write of pinrec before 2026-12-07 left beside the file (``part-00000.jsonl.tmp-4242``)
_LEFT_BY_A_CRASH = re.compile(r"\.tmp-\d+$")
#: the characters Hadoop's glob gives a meaning (``GlobPattern``): Spark globs every path it is given that holds one
_GLOB = re.compile(r"[\[\]{}*?\\]")


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def landing_files(folder: str | Path | Location) -> list[Location]:
    """The files of one partition folder that ingestion reads, sorted ([] when the folder is
    missing). Raises :class:`LandingFileError` naming any file in a visible sub-folder."""
    folder = as_location(folder)
    entries = [(name, is_dir) for name, is_dir in folder.entries() if not _hidden(name)]
    nested = sorted(str(f) for name, is_dir in entries if is_dir for f in (folder / name).files_below())
    if nested:
        more = f" and {len(nested) - 5} more" if len(nested) > 5 else ""
        raise LandingFileError(
            f"landing file(s) {', '.join(nested[:5])}{more} are in a sub-folder of the partition {folder}, "
            f"which must be flat: move them up into it (or delete them) and re-run. Ingestion skips only "
            f"hidden names (starting with '.' or '_').")
    stale = [name for name, is_dir in entries if not is_dir and _LEFT_BY_A_CRASH.search(name)]
    if stale:
        raise LandingFileError(
            f"landing file(s) {', '.join(str(folder / n) for n in stale[:5])} look like temporaries a crashed "
            "write left (<name>.tmp-<pid>; writers now use hidden names): delete them and re-run, or rename one "
            "that is data")
    globbed = [name for name, is_dir in entries if not is_dir and _GLOB.search(name)]
    if globbed:
        raise LandingFileError(
            f"landing file(s) {', '.join(str(folder / n) for n in globbed[:5])} have a glob character ([]{{}}*?\\) in "
            "their name, which Spark reads as a pattern (it would read other files' rows again and theirs not at all): "
            "rename them and re-run")
    return [folder / name for name, is_dir in entries if not is_dir]


def read_lines(spark, landing: str | Location, spec: TableSpec, days: list[dt.date], optional: bool):
    """Raw non-blank lines with their partition date: columns ``_raw`` (the line without its end,
    invalid UTF-8 replaced by U+FFFD), ``_utf8`` (whether the bytes were valid UTF-8) and ``dt``.
    ``None`` when no day has files (``optional`` tables only)."""
    from pyspark.sql import functions as F

    files, missing = [], []
    for day in days:
        folder = partition_dir(landing, spec.name, day)
        found = landing_files(folder)
        files.extend(found)
        if not found:
            missing.append(folder)
    if missing and not optional:
        span = partition_granularity(landing)
        hint = ("A mandatory table must land every day; check the upstream export." if span == "day" else
                f"This landing zone is partitioned by {span} (its dataset record): a partition is named after the "
                f"first day of its {span} (dt={_span_start(missing[0], span)}); ingest those dates.")
        raise LandingPartitionMissingError(
            f"{spec.name}: no landing files for {len(missing)} day(s): {', '.join(map(str, missing))}. {hint}")
    if not files:
        return None
    # One read over every file (a union of one read per day is slow for long backfills); the
    # partition date comes from each file's path. lineSep: Spark's default also ends lines at a lone \r.
    date = F.regexp_extract(F.col("_metadata.file_path"), r"dt=(\d{4}-\d{2}-\d{2})", 1)
    df = spark.read.option("lineSep", "\n").text([f.spark for f in files])
    # Spark keeps the line's bytes as they are; is_valid_utf8 must see them before anything decodes them.
    raw = F.regexp_replace(F.make_valid_utf8("value"), r"\r\z", "")
    df = df.select(raw.alias("_raw"), F.is_valid_utf8("value").alias("_utf8"), F.to_date(date).alias("dt"))
    return df.where(F.trim("_raw") != "")


def _span_start(folder: Location, span: str) -> str:
    day = dt.date.fromisoformat(folder.name.removeprefix("dt="))
    return (day.replace(day=1) if span == "month" else day.replace(month=1, day=1)).isoformat()


def _condition(java) -> str:
    from py4j.protocol import Py4JError

    try:
        return str(java.getCondition() or "")
    except Py4JError:  # not a SparkThrowable
        return ""


def read_failure(err: Exception, table: str) -> LandingFileError | None:
    """A :class:`LandingFileError` naming the file and the root cause if ``err`` is Spark failing
    to read a file (``FAILED_READ_FILE``), else ``None``."""
    java = getattr(err, "java_exception", None)
    while java is not None:
        if _condition(java).startswith("FAILED_READ_FILE"):
            path = str(java.getMessageParameters().get("path") or "?").removeprefix("file://").removeprefix("file:")
            cause = java
            while cause.getCause() is not None:
                cause = cause.getCause()
            return LandingFileError(
                f"{table}: cannot read landing file {path}: {cause.getMessage()} ({cause.getClass().getName()}). "
                f"Nothing was written; replace or remove the file and re-run.")
        java = java.getCause()
    return None


def _json_type_mismatches(spec: TableSpec):
    """Per column, a ``type_mismatch:<col>`` literal when the row's value breaks :data:`JSON_TYPES`
    or Spark could not convert it (null otherwise)."""
    from pyspark.sql import functions as F

    out = []
    for c in spec.columns:
        kind = F.schema_of_variant(F.variant_get("_v", f"$.{c.name}", "variant"))  # null: absent; VOID: JSON null
        given = kind.isNotNull() & (kind != "VOID")
        typed = F.col(f"_typed.`{c.name}`")
        wrong = ~kind.rlike(f"^({JSON_TYPES[c.dtype]})$") | typed.isNull() | _not_finite(c.dtype, typed)
        out.append(F.when(given & wrong, F.lit(f"type_mismatch:{c.name}")))
    return out


def _not_finite(dtype: str, typed):
    """Whether a float column's converted value is NaN or infinite: JSON has no such numbers, so it is
    a finite one beyond the type's range (``1e39`` in float32) that the conversion rounded to infinity."""
    from pyspark.sql import functions as F

    def bad(x):
        return F.isnan(x) | (F.abs(x) == F.lit(float("inf")))

    if dtype in ("float32", "float64"):
        return bad(typed)
    if dtype == "array<float32>":
        return F.coalesce(F.exists(typed, bad), F.lit(False))
    return F.lit(False)


def parse(lines, spec: TableSpec):
    """Parse raw lines against ``spec`` (rules: the module docstring). Adds the typed columns and
    ``_parse_reasons`` ('' for a clean parse). Raises :class:`SchemaDriftError` on keys the
    contract lacks."""
    from pyspark.sql import functions as F

    keys = F.when(F.col("_utf8"), F.json_object_keys("_raw"))  # every top-level key, repeats included
    df = lines.withColumn("_keys", keys)
    found = [r[0] for r in df.select(F.explode("_keys")).distinct().limit(1000).collect()]
    extra = sorted(set(found) - set(spec.column_names) - {spec.partition})
    if extra:
        raise SchemaDriftError(
            f"{spec.name}: landing rows carry column(s) {extra} that the contract does not declare "
            f"(declared: {list(spec.column_names)}). Update schemas/catalog.py or fix the producer.")
    # try_parse_json: null for duplicate keys, which from_json lets pass. Both stop at the object's closing
    # brace; inside brackets, text after it (a second record glued on: `{...} {...}`) fails the parse
    alone = F.try_parse_json(F.concat(F.lit("["), F.regexp_replace("_raw", "^\\uFEFF", ""), F.lit("]")))
    df = df.withColumn("_v", F.try_parse_json("_raw")).withColumn("_alone", alone.isNotNull()).withColumn(
        "_typed", F.from_json("_raw", spark_schema(spec), {"mode": "PERMISSIVE"}))
    repeated = F.array_sort(F.filter(F.array_distinct("_keys"),
                                     lambda k: F.size(F.filter("_keys", lambda x: x == k)) > 1))
    repeated = F.when(F.size("_keys") > F.size(F.array_distinct("_keys")), repeated)
    reasons = (F.when(~F.col("_utf8"), F.lit("invalid_utf8"))
               .when(F.col("_keys").isNull(), F.lit("malformed_json"))
               .when(repeated.isNotNull(),
                     F.array_join(F.transform(repeated, lambda k: F.concat(F.lit("duplicate_json_key:"), k)), ";"))
               .when(F.col("_v").isNull() | ~F.col("_alone"), F.lit("malformed_json"))
               .otherwise(F.concat_ws(";", F.array_compact(F.array(*_json_type_mismatches(spec))))))
    return df.select("_raw", "dt", reasons.alias("_parse_reasons"),
                     *[F.col(f"_typed.`{c.name}`").alias(c.name) for c in spec.columns])
