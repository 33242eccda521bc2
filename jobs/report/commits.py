"""What the warehouse's Delta commits say about a bundle's run: the raw-table versions its lineage
reaches (:func:`raw_versions`), the ingest batches behind them (:func:`batches_of`) and their row
accounting with the quarantine reasons (:func:`ingestion_facts`), through a catalog that reads each
table's history once (:class:`LookingCatalog`)."""
from __future__ import annotations

from pinrec.jobs.io.catalog import Catalog, Commit
from pinrec.schemas.manifest import Manifest

from .facts import Ingestion


class LookingCatalog(Catalog):
    """A :class:`~pinrec.jobs.io.catalog.Catalog` that reads each table's commit history once: the
    report only looks (walking the lineage asks for the same tables' commits again and again, and
    each look is a Spark job). Not for a job that writes: the cache would go stale."""

    def __init__(self, spark, warehouse) -> None:
        super().__init__(spark, warehouse)
        self._seen: dict[str, list[Commit]] = {}

    def history(self, name: str, limit: int | None = None) -> list[Commit]:
        if name not in self._seen:
            self._seen[name] = super().history(name)
        return self._seen[name][:limit] if limit else self._seen[name]

    def exists(self, name: str) -> bool:
        return bool(self._seen.get(name)) or super().exists(name)


def raw_versions(catalog: Catalog, manifest: Manifest) -> dict[str, int]:
    """The newest version of each raw table the bundle's lineage reaches (the Delta commits' ``read``)."""
    from pinrec.jobs.publish.lineage import bundle_lineage
    from pinrec.schemas.catalog import RAW_TABLES

    raw, found, todo = {t.name for t in RAW_TABLES}, {}, [bundle_lineage(manifest, catalog)]
    while todo:
        node = todo.pop()
        table, at, version = node.label.partition(" ")[0].partition("@")
        if at and table in raw and version.isdigit():
            found[table] = max(found.get(table, -1), int(version))
        todo.extend(node.children)
    return found


def batches_of(commits: list[Commit], version: int) -> list[Commit]:
    """The ingest commits that wrote the day partitions ``version`` holds: per day the newest
    commit <= ``version`` recording it (``landing``), in version order."""
    by_day: dict[str, Commit] = {}
    for commit in sorted(commits, key=lambda c: c.version):
        if commit.version <= version:
            for day in commit.user_metadata.get("landing") or {}:
                by_day[day] = commit
    return sorted({c.version: c for c in by_day.values()}.values(), key=lambda c: c.version)


def ingestion_facts(catalog: Catalog, manifest: Manifest) -> Ingestion | str:
    """Rows per raw table and quarantine reasons of the batches behind the bundle (module docstring)."""
    from pyspark.sql import functions as F

    versions = raw_versions(catalog, manifest)
    if not versions:
        return "the bundle's lineage reaches no raw table version (written before lineage was recorded?)"
    counts, batches = {}, {}
    for table, version in sorted(versions.items()):
        commits = batches_of(catalog.history(table), version)
        batches[table] = tuple(c.user_metadata.get("batch_id", "") for c in commits)
        recorded = [c.user_metadata.get("rows") or {} for c in commits]
        complete = all(recorded)
        counts[table] = {"valid": sum(c.rows or 0 for c in commits),
                         "in": sum(r["in"] for r in recorded) if complete else None,
                         "duplicates": sum(r["duplicates_dropped"] for r in recorded) if complete else None}
    reasons: dict[str, dict[str, int]] = {t: {} for t in versions}
    wanted = [b for ids in batches.values() for b in ids if b]
    if wanted and catalog.exists("quarantine"):
        rows = (catalog.read("quarantine").where(F.col("batch_id").isin(wanted))
                .groupBy("source_table", "reason").count().collect())
        for r in rows:
            reasons.setdefault(r["source_table"], {})[r["reason"]] = int(r["count"])
    for table, c in counts.items():
        c["quarantined"] = sum(reasons.get(table, {}).values())
    return Ingestion(counts, reasons, batches, versions)
