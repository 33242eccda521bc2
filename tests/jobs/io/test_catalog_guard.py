"""Every warehouse table is read and written through the catalog (:mod:`pinrec.jobs.io.catalog`):
no Delta reader, writer, time travel or hand-joined warehouse path anywhere else in jobs/, dags/
or export/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.repo import REPO

SCANNED = ("jobs", "dags", "export")
#: The modules allowed to touch Delta and warehouse paths.
CATALOG_MODULES = {"jobs/io/catalog.py", "jobs/io/table_lock.py"}
#: Files not migrated yet (none: every job goes through the catalog).
ALLOWLIST: set[str] = set()

FORBIDDEN = {
    "a Delta reader/writer": re.compile(r"""format\(\s*["']delta["']\s*\)"""),
    "DeltaTable": re.compile(r"\bDeltaTable\b|\bdelta\.tables\b"),
    "Delta time travel": re.compile(r"""["'](versionAsOf|timestampAsOf)["']"""),
    "a hand-joined warehouse path": re.compile(
        r"""warehouse[\w.()'"]*\.rstrip\(|\{[^{}\n]*\bwarehouse\b[^{}\n]*\}/|Path\(\s*[\w.]*warehouse\b"""
        r"""|location\(\s*["']warehouse["']\s*\)\s*/"""),
    "the old per-job Delta helpers": re.compile(r"\b(_write_partitions|delta_version|_delta_exists)\s*\("),
}


def violations(root: Path) -> dict[str, list[str]]:
    """``{file: ["line N: what", ...]}`` of every forbidden pattern under ``root``'s scanned folders."""
    out: dict[str, list[str]] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in CATALOG_MODULES:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                for what, pattern in FORBIDDEN.items():
                    if pattern.search(line):
                        out.setdefault(rel, []).append(f"line {n}: {what}: {line.strip()}")
    return out


def test_no_delta_io_or_warehouse_path_outside_the_catalog():
    found = {f: v for f, v in violations(REPO).items() if f not in ALLOWLIST}
    assert found == {}, "read and write warehouse tables through pinrec.jobs.io.catalog.Catalog:\n" + "\n".join(
        f"{f}: {v}" for f, lines in found.items() for v in lines)


def test_the_allowlist_holds_only_files_that_still_need_it():
    assert sorted(ALLOWLIST - set(violations(REPO))) == []


@pytest.mark.parametrize("line", [
    'df = spark.read.format("delta").load(path)',
    "df.write.format('delta').save(p)",
    "from delta.tables import DeltaTable",
    'reader.option("versionAsOf", 3)',
    "path = f\"{warehouse.rstrip('/')}/pins\"",
    'spark.read.parquet(f"{cfg.storage.warehouse}/training_set")',
    'root = warehouse.rstrip("/")',
    'if (Path(warehouse) / "graph_edges").is_dir():',
    'where = cfg.storage.location("warehouse") / "pins"',
    "_write_partitions(df, path, where)",
    "v = delta_version(spark, path)",
])
def test_the_guard_catches_each_way_around_the_catalog(tmp_path, line):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text(f"def f():\n    {line}\n")
    assert list(violations(tmp_path)) == ["jobs/job.py"]


@pytest.mark.parametrize("line", [
    'out = {"delta_version": report.delta_version}',
    'storage = {name: f"s3a://{BUCKET}/{name}" for name in ("landing", "warehouse")}',
    'catalog.read("training_set", version=3)',
    "build_features(spark, cfg.storage.warehouse, days, cfg.features)",
])
def test_the_guard_lets_catalog_calls_and_report_fields_pass(tmp_path, line):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text(f"def f():\n    {line}\n")
    assert violations(tmp_path) == {}
