"""``pinrec lineage``: the chain from a bundle (or a table version, or an MLflow run) back to the raw
landing partitions, from what the manifest, the Delta commits and MLflow already hold.

* a bundle ``<name>/<version>`` (or a bare version of ``publish.name``): its manifest's lineage — code
  version, configuration hash, MLflow runs, and the Delta version of every input table;
* a table version ``<table>@<version>`` (``@`` alone: the current one): its commit's ``userMetadata``
  — what the step recorded (model version, training config, the version it warm-started from, ...)
  and, under ``read``, the version of every table the step read (:class:`~pinrec.jobs.io.catalog.Catalog`
  puts it there), followed recursively;
* a raw table (ingested from the landing zone) leads to the landing partitions its data came from:
  for each day partition of the version, the ingest commit that last wrote it and the landing folder
  it recorded (``landing``), then the tables its foreign keys were checked against (``read``);
* a table written day by day (features, training set: commits that record ``wrote_days``) follows,
  for each day the version holds, the commit that last wrote it (``days_written_by``) and the inputs
  each of those read; a table whose commits replace a slice of a day (``replace_where``: the quarantine,
  one source table's rows per ingest) follows every slice's last writer and its landing folders;
* an MLflow run id: the run's tags and parameters that name table versions (``input_versions.*``)
  and the model version, then those tables.

Each table version is expanded once (later mentions say ``(above)``). :func:`render` prints the tree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pinrec.jobs.io.catalog import Catalog
from pinrec.schemas.catalog import WAREHOUSE

#: commit metadata shown for a table version (when present), in this order
SHOWN = ("model_version", "warm_start_from", "warm_start", "embedding_version", "batch_id", "mlflow_run_id",
         "cutoff", "eval_from", "code_version")


@dataclass(frozen=True)
class Node:
    """One link of the chain: a ``label`` ("pins@7"), ``details`` (key -> value) and what it came from."""

    label: str
    details: dict[str, Any] = field(default_factory=dict)
    children: tuple[Node, ...] = ()


def parse_table_ref(ref: str) -> tuple[str, int | None] | None:
    """``"pins@7"`` -> ("pins", 7); ``"pins@"`` -> ("pins", None); anything else None."""
    if "@" not in ref:
        return None
    table, _, version = ref.partition("@")
    if not table or (version and not version.isdigit()):
        raise ValueError(f"a table version is <table>@<version> with a version >= 0 (or <table>@ for the current "
                         f"one), got {ref!r}")
    return table, int(version) if version else None


def _slices(commits, version: int, days_of) -> dict[str, dict[str | None, Any]]:
    """Per day, the commits <= ``version`` whose rows of that day the version still holds, keyed by the slice
    each replaced (its ``replace_where``; None: the whole day): a commit replaces the earlier commit of its
    slice, and a whole-day commit replaces every slice. The quarantine is written so, one source table's
    slice per ingest: a day's rows come from several commits. ``days_of(commit)``: the days it wrote."""
    by_day: dict[str, dict[str | None, Any]] = {}
    for commit in sorted(commits, key=lambda c: c.version):
        if commit.version > version:
            break
        where = (commit.user_metadata or {}).get("replace_where")
        for day in days_of(commit):
            slices = by_day.setdefault(day, {})
            if where is None:
                slices.clear()
            slices[where] = commit
    return by_day


def _landing(catalog: Catalog, table: str, version: int) -> tuple[Node, ...]:
    """The landing partitions behind ``table@version``: per day, the newest commit <= version that wrote it
    (of each slice it holds, :func:`_slices`)."""
    by_day = _slices(catalog.history(table), version, lambda c: (c.user_metadata or {}).get("landing") or {})
    found = sorted({(day, c.user_metadata["landing"][day], c.version)
                    for day, slices in by_day.items() for c in slices.values()})
    return tuple(Node(f"landing {folder}", {"day": day, "ingested_by": f"{table}@{v}"}) for day, folder, v in found)


def table_lineage(catalog: Catalog, table: str, version: int | None = None,
                  _seen: set[str] | None = None) -> Node:
    """The chain behind ``table@version`` (module docstring); ``version`` None: the current one."""
    seen = set() if _seen is None else _seen
    if table not in WAREHOUSE:
        raise ValueError(f"no table {table!r} in the warehouse catalog; known tables: {', '.join(WAREHOUSE)}")
    if not catalog.exists(table):
        raise FileNotFoundError(f"no table {table!r} at {catalog.path(table)}: {WAREHOUSE[table].missing_hint}")
    commits = catalog.history(table)
    version = commits[0].version if version is None else version
    label = f"{table}@{version}"
    if label in seen:
        return Node(label + " (above)")
    seen.add(label)
    meta = catalog.user_metadata(table, version)
    commit = next(c for c in commits if c.version == version)
    details: dict[str, Any] = {"operation": commit.operation}
    if commit.rows is not None:
        details["rows"] = commit.rows
    details.update({k: meta[k] for k in SHOWN if meta.get(k) not in (None, "", {})})
    writers = _day_writers(commits, version) or [commit]
    if len(writers) > 1:
        details["days_written_by"] = ", ".join(f"{table}@{c.version}" for c in writers)
    reads = sorted({(t, int(v)) for c in writers for t, v in ((c.user_metadata or {}).get("read") or {}).items()})
    # a raw table with foreign keys also read the tables it references: its landing folders come first
    children = _landing(catalog, table, version) + tuple(table_lineage(catalog, t, v, seen) for t, v in reads)
    if not children:
        details["source"] = "no recorded input (written before lineage was recorded, or by hand)"
    return Node(label, details, children)


def _day_writers(commits, version: int) -> list:
    """The commits <= ``version`` whose days (``wrote_days``) the version still holds, newest first:
    a table written day by day got each day's rows from the commit that last wrote that day (of each
    slice, :func:`_slices`)."""
    by_day = _slices(commits, version, lambda c: (c.user_metadata or {}).get("wrote_days") or ())
    return sorted({c.version: c for slices in by_day.values() for c in slices.values()}.values(),
                  key=lambda c: -c.version)


def bundle_lineage(manifest, catalog: Catalog | None) -> Node:
    """The chain behind a bundle's manifest; ``catalog`` None: the manifest's own record only."""
    lin = manifest.lineage
    details = {"code_version": lin.code_version, "config_hash": lin.config_hash,
               "blessed": manifest.blessing.blessed, **{f"mlflow:{k}": v for k, v in sorted(lin.mlflow_run_ids.items())}}
    seen: set[str] = set()
    children = []
    for table, version in sorted(lin.delta_versions.items()):
        if ":" in table:  # "ranker:training_set": what a model was trained on, recorded by its job
            details[table] = version
        elif catalog is None:
            children.append(Node(f"{table}@{version}"))
        else:
            children.append(table_lineage(catalog, table, version, seen))
    return Node(f"bundle {manifest.name}/{manifest.version}", details, tuple(children))


def run_lineage(run, catalog: Catalog | None) -> Node:
    """The chain behind an MLflow run (``mlflow.entities.Run``): the table versions its parameters name."""
    params, tags = run.data.params, run.data.tags
    versions = {k.split(".", 1)[1]: int(v) for k, v in params.items()
                if k.startswith("input_versions.") and str(v).isdigit()}
    details = {"experiment_id": run.info.experiment_id, "status": run.info.status,
               **{k: tags[k] for k in ("job", "model_version") if k in tags}}
    seen: set[str] = set()
    children = tuple(table_lineage(catalog, t, v, seen) if catalog is not None else Node(f"{t}@{v}")
                     for t, v in sorted(versions.items()))
    return Node(f"run {run.info.run_id}", details, children)


def render(node: Node, prefix: str = "", last: bool = True, root: bool = True) -> str:
    """The tree as text, one node per line with its details."""
    head = "" if root else prefix + ("└── " if last else "├── ")
    shown = ", ".join(f"{k}={v}" for k, v in node.details.items())
    lines = [head + node.label + (f"  [{shown}]" if shown else "")]
    inner = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(node.children):
        lines.append(render(child, inner, i == len(node.children) - 1, False))
    return "\n".join(lines)
