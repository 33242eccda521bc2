"""What is in the warehouse: per table row counts, days, Delta version; quarantine by reason."""
from __future__ import annotations

from dataclasses import dataclass

from pinrec.schemas.catalog import QUARANTINE, WAREHOUSE


@dataclass(frozen=True)
class TableSummary:
    name: str
    rows: int
    days: int
    delta_version: int | None


@dataclass(frozen=True)
class WarehouseSummary:
    tables: tuple[TableSummary, ...]
    quarantine: dict[tuple[str, str], int]

    def render(self) -> str:
        lines = [f"{'table':<23} {'rows':>10} {'days':>5} {'delta version':>14}"]
        for t in self.tables:
            version = "-" if t.delta_version is None else str(t.delta_version)
            lines.append(f"{t.name:<23} {t.rows:>10} {t.days:>5} {version:>14}")
        lines.append("")
        if not self.quarantine:
            lines.append("quarantine: empty")
        else:
            lines.append(f"{'quarantined from':<16} {'reason':<48} {'rows':>7}")
            for (source, reason), n in sorted(self.quarantine.items()):
                lines.append(f"{source:<16} {reason:<48} {n:>7}")
        return "\n".join(lines)


def summarize(spark, warehouse) -> WarehouseSummary:
    """Row counts, distinct days and current Delta version of every table of the warehouse
    (:data:`pinrec.schemas.catalog.WAREHOUSE`). ``warehouse``: a path, Location or catalog."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    versions = {name: catalog.version(name) for name in WAREHOUSE}
    # one Spark job for every table (a union of their dt columns), not one per table: on a rerun that
    # reuses every step this summary was half of the run's time
    parts = []
    for name, version in versions.items():
        if version is not None:
            df = catalog.read(name, version)
            day = F.col("dt").cast("date") if "dt" in df.columns else F.lit(None).cast("date")  # snapshots: no days
            parts.append(df.select(F.lit(name).alias("t"), day.alias("dt")))
    counts = {}
    if parts:
        union = parts[0]
        for part in parts[1:]:
            union = union.unionByName(part)
        counts = {r["t"]: (int(r["n"]), int(r["d"]))
                  for r in union.groupBy("t").agg(F.count("*").alias("n"), F.countDistinct("dt").alias("d")).collect()}
    tables = [TableSummary(name, *counts.get(name, (0, 0)), v) for name, v in versions.items()]
    quarantine: dict[tuple[str, str], int] = {}
    if QUARANTINE.name in catalog.reads:
        reasons = (catalog.read(QUARANTINE.name, catalog.reads[QUARANTINE.name])
                   .withColumn("reason", F.explode(F.split("reason", ";")))
                   .groupBy("source_table", "reason").count().collect())
        quarantine = {(r["source_table"], r["reason"]): int(r["count"]) for r in reasons}
    return WarehouseSummary(tuple(tables), quarantine)
