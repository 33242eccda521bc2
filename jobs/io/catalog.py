"""The catalog: every read and write of a warehouse Delta table, by table name, with its lineage.

``Catalog(spark, warehouse)`` knows the tables of :data:`pinrec.schemas.catalog.WAREHOUSE`
(an unknown name is a KeyError listing them) and where they live: ``<warehouse>/<name>``, the
warehouse a local folder or an ``s3://`` / ``s3a://`` prefix (Spark is given
:attr:`~pinrec.jobs.io.lake.Location.spark`). A job's thin wrapper makes one catalog, reads its
inputs, calls its pure transform and writes its outputs through it:

* :meth:`Catalog.read` pins a table at its current Delta version on the first read, so every read
  of that table in the job sees one version (``version=`` reads an older one: time travel), and
  records ``{table: version}`` in :attr:`Catalog.reads`, the job's lineage;
* :meth:`Catalog.scope` attributes reads to one writer where a catalog serves several (ingest's
  tables, the features' views: :mod:`pinrec.jobs.io.read_scope`): a write in a scope records only the
  reads made in it (:attr:`Catalog.lineage`), while :attr:`Catalog.reads` still holds them all;
* :meth:`Catalog.write` replaces the named days' partitions (``replaceWhere`` on partition columns
  only, so Delta drops whole files) or, for a snapshot table, the whole table; it holds the
  table's writer lease on object storage (:mod:`pinrec.jobs.io.table_lock`), stores its writer's
  lineage (:attr:`Catalog.lineage`) under ``"read"`` in the commit's ``userMetadata`` beside the
  job's own metadata (and the days it replaced under ``"wrote_days"``, the catalog's ``stamp``
  under ``"cache"``: the step cache's fingerprints, :mod:`pinrec.jobs.orchestration.step_cache`),
  records the version written in :attr:`Catalog.writes` and moves the pin to it;
* :meth:`version`, :meth:`exists`, :meth:`history` and :meth:`user_metadata` look without reading
  (nothing recorded), from the table's log files (:mod:`pinrec.jobs.io.delta_log`: no Spark job).

Job functions take ``warehouse`` as a string, a Location or a catalog (:meth:`Catalog.of`): a
caller that passes its own catalog sees what the job read and wrote (the DAG tasks' XComs).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinrec.schemas.catalog import warehouse_table
from pinrec.schemas.tables import StoredTable

from .delta_log import commit_info, commit_versions
from .lake import Location, as_location
from .read_scope import current_reads, open_scope, record_read
from .table_lock import table_writer
from .write_layout import clustered, days_predicate

__all__ = ["Catalog", "Commit", "days_predicate"]


@dataclass(frozen=True)
class Commit:
    """One Delta commit of a table: its version, operation, the rows it wrote (``numOutputRows``;
    None when Delta reports none) and its ``userMetadata`` as a dict ({} when absent or not JSON)."""

    version: int
    operation: str
    rows: int | None
    user_metadata: dict = field(default_factory=dict)


#: Delta operations that leave a table's rows as they were (file layout, properties, protocol)
SAME_DATA_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES",
                                  "UNSET TBLPROPERTIES", "UPGRADE PROTOCOL", "FSCK", "CHECKPOINT"})


_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: str) -> threading.Lock:
    """This process's lock of a table path: threads of one job (ingest's tables side by side) write
    the same table (the quarantine) one at a time; other processes wait for its OS lock (local disk) or
    meet its lease (S3): :mod:`pinrec.jobs.io.table_lock`."""
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(path, threading.Lock())


def _parse_metadata(text: str | None) -> dict:
    try:
        meta = json.loads(text or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


class Catalog:
    """The warehouse's tables for one job (module docstring). ``spark`` is only used when a table is
    touched, so a catalog can be made where no session exists (other torchrun ranks)."""

    #: keys of ``userMetadata`` that the catalog writes itself (a job's metadata may not use them)
    RESERVED = ("read", "wrote_days", "replace_where", "cache")

    def __init__(self, spark, warehouse: str | Path | Location, stamp: Mapping[str, Any] | None = None) -> None:
        if isinstance(warehouse, Catalog):
            raise TypeError("Catalog(spark, warehouse) takes a location; use Catalog.of to accept a catalog too")
        self.spark = spark
        self.warehouse = as_location(warehouse)
        #: JSON-able mapping kept under ``"cache"`` in the metadata of every commit this catalog writes
        self.stamp = dict(stamp) if stamp else None
        self._pinned: dict[str, int] = {}
        self._reads: dict[str, int] = {}
        self._writes: dict[str, int] = {}
        self._held: dict[str, int] = {}  # table -> the thread holding it (:meth:`holding`)

    @classmethod
    def of(cls, spark, warehouse: str | Path | Location | Catalog) -> Catalog:
        """``warehouse`` itself when it is a catalog (its lineage then covers the caller's job), else a new one."""
        return warehouse if isinstance(warehouse, Catalog) else cls(spark, warehouse)

    def __repr__(self) -> str:
        return f"Catalog({self.warehouse.uri!r}, reads={self._reads}, writes={self._writes})"

    @contextlib.contextmanager
    def holding(self, name: str) -> Iterator[None]:
        """Hold table ``name`` for the body: this process's lock of its path and, on object storage,
        its writer lease (:mod:`pinrec.jobs.io.table_lock`; :class:`ConcurrentWriterError` when
        another writer has it). Writes of ``name`` in the body, from this thread, go in under it, so
        several writes (ingest's quarantine rows, then its table) are not interleaved with another
        writer's. Every :meth:`write` holds its table this way for itself."""
        path = self.path(name)
        with _path_lock(path), table_writer(self.spark, path):
            self._held[name] = threading.get_ident()
            try:
                yield
            finally:
                del self._held[name]

    def scope(self, reads: Mapping[str, int] | None = None) -> contextlib.AbstractContextManager[None]:
        """One writer's reads, for the body: reads of this catalog in the body (this thread; a thread run
        in a copy of its context starts with them) are recorded in the scope, which starts from ``reads``
        (default: none, not even a scope around it), as well as in :attr:`reads`; a :meth:`write` in the
        body records the scope's reads (:attr:`lineage`) as its ``"read"``."""
        return open_scope(self, reads)

    # -- where ---------------------------------------------------------------------------------
    @staticmethod
    def table(name: str) -> StoredTable:
        return warehouse_table(name)

    def path(self, name: str) -> str:
        """The URI Spark reads and writes table ``name`` at."""
        return (self.warehouse / self.table(name).name).spark

    # -- looking ---------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, self.path(name)))

    def version(self, name: str) -> int | None:
        """The table's current Delta version (not the pinned one); None when it does not exist."""
        versions = commit_versions(self.spark, self.path(name))
        return versions[-1] if versions else None

    def commit_id(self, name: str) -> str | None:
        """``"<version>:<transaction id>"`` of the table's current data (the newest commit that changed
        rows: an OPTIMIZE or a property change after it is no new data; the commit's timestamp where
        Delta recorded no ``txnId``); None when it does not exist. Unlike the version number, it changes
        when a table is deleted and written again (whose versions restart at 0): what a cache keys on."""
        path = self.path(name)
        versions = commit_versions(self.spark, path)
        if not versions:
            return None
        version, info = self._data_commit(path, versions, versions[-1])
        return f"{version}:{info.get('txnId') or info.get('timestamp')}"

    def _data_commit(self, path: str, versions: list[int], version: int) -> tuple[int, dict]:
        """(version, commit info) of the newest commit <= ``version`` that changed data (a maintenance
        commit, :data:`SAME_DATA_OPERATIONS`, leaves the rows and what describes them as they were)."""
        at = versions.index(version)
        while True:
            info = commit_info(self.spark, path, versions[at])
            if at == 0 or str(info.get("operation")) not in SAME_DATA_OPERATIONS:
                return versions[at], info
            at -= 1

    def history(self, name: str, limit: int | None = None) -> list[Commit]:
        """The table's commits, newest first (``limit``: only the newest ones); [] when absent."""
        return self._commits(name, limit)  # no log: []

    def _commits(self, name: str, limit: int | None) -> list[Commit]:
        # From the log's files (no Spark job: DESCRIBE HISTORY runs one per call, :mod:`.delta_log`)
        path = self.path(name)
        versions = commit_versions(self.spark, path)[::-1]
        return [self._commit(path, v) for v in (versions[:limit] if limit else versions)]

    def _commit(self, path: str, version: int) -> Commit:
        info = commit_info(self.spark, path, version)
        rows_out = (info.get("operationMetrics") or {}).get("numOutputRows")
        return Commit(version, str(info.get("operation")), None if rows_out is None else int(rows_out),
                      _parse_metadata(info.get("userMetadata")))

    def user_metadata(self, name: str, version: int | None = None) -> dict:
        """The ``userMetadata`` of the data at ``version``, else the version this catalog pinned, else
        the current one: of the newest commit up to it that changed rows (not of an OPTIMIZE or a
        property change after it). {} when the commit has none; FileNotFoundError when the table is absent."""
        version = version if version is not None else self._pinned.get(name)
        versions = commit_versions(self.spark, self.path(name))
        if not versions:
            raise self._absent(name)
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise ValueError(f"table {name!r} has no version {version} (it has {versions[0]}..{versions[-1]})")
        return _parse_metadata(self._data_commit(self.path(name), versions, version)[1].get("userMetadata"))

    # -- reading ---------------------------------------------------------------------------------
    def read(self, name: str, version: int | None = None):
        """The table as a DataFrame at ``version`` or, by default, at the version pinned by this
        catalog's first read of it (its current version then). Recorded in :attr:`reads`.
        FileNotFoundError when the table does not exist."""
        if version is None:
            version = self._pinned.get(name)
            if version is None:
                version = self.version(name)
                if version is None:
                    raise self._absent(name)
                self._pinned[name] = version
        elif isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"version of {name!r} must be an int >= 0 or None, got {version!r}")
        df = self.spark.read.format("delta").option("versionAsOf", version).load(self.path(name))
        self._reads[name] = version
        record_read(self, name, version)
        return df

    def _absent(self, name: str) -> FileNotFoundError:
        """The error for table ``name`` not existing: where it was looked for, and what writes it."""
        hint = self.table(name).missing_hint
        return FileNotFoundError(f"table {name!r} does not exist at {self.path(name)}" + (f": {hint}" if hint else ""))

    def require(self, names: Iterable[str], hint: str) -> None:
        """Pin every table of ``names``; FileNotFoundError naming the absent ones and ``hint``."""
        missing = []
        for name in names:
            if name not in self._pinned:
                version = self.version(name)
                if version is None:
                    missing.append(name)
                else:
                    self._pinned[name] = version
        if missing:
            raise FileNotFoundError(f"table(s) {missing} do not exist under {self.warehouse}: {hint}")

    @property
    def reads(self) -> dict[str, int]:
        """``{table: Delta version}`` of every table read so far: the job's lineage."""
        return dict(self._reads)

    @property
    def lineage(self) -> dict[str, int]:
        """``{table: Delta version}`` a :meth:`write` here records: the reads of the innermost
        :meth:`scope` of this catalog open in this context, else every read so far (:attr:`reads`)."""
        scoped = current_reads(self)
        return self.reads if scoped is None else scoped

    @property
    def writes(self) -> dict[str, int]:
        """``{table: Delta version}`` of every table this catalog wrote (the last write of each)."""
        return dict(self._writes)

    # -- writing ---------------------------------------------------------------------------------
    def write(self, name: str, df, *, days: Iterable[dt.date] | None = None, replace_where: str | None = None,
              add_columns: bool = False, user_metadata: Mapping[str, Any] | None = None) -> Commit:
        """Write ``df`` to table ``name`` and return the commit.

        A partitioned table replaces exactly the partitions ``days`` and/or ``replace_where`` (a
        predicate on its partition columns, ANDed with the days) select: a re-run never
        duplicates; the rows of several days are clustered by day first, for few files per day
        (:func:`~pinrec.jobs.io.write_layout.clustered`). A snapshot table (no partition columns) is replaced whole, schema included,
        and takes neither. ``add_columns``: columns ``df`` has and the table lacks are added
        (Delta ``mergeSchema``; older rows read them as null) instead of failing; a changed type
        still fails. ``user_metadata``: a JSON-able mapping kept in the commit's ``userMetadata``
        with :attr:`lineage` (this writer's reads) under ``"read"``, the ISO days of ``days`` under
        ``"wrote_days"``, ``replace_where`` under ``"replace_where"`` (the slice of those days the commit
        replaced: lineage then knows a later commit of another slice did not replace it) and :attr:`stamp`
        under ``"cache"``."""
        spec = self.table(name)
        days = None if days is None else list(days)  # read more than once below
        meta = dict(user_metadata or {})
        reserved = sorted(set(meta) & set(self.RESERVED))
        if reserved:
            raise ValueError(f"user_metadata of {name!r} may not hold {reserved}: the catalog records "
                             f"{list(self.RESERVED)} itself (lineage, days written, cache fingerprints)")
        meta["read"] = self.lineage
        if days is not None:
            meta["wrote_days"] = sorted({d.isoformat() for d in days})
        if replace_where is not None:
            meta["replace_where"] = replace_where
        if self.stamp:
            meta["cache"] = self.stamp
        if not spec.snapshot and days is not None:  # many days at once: few files per day (write_layout)
            df = clustered(df, spec.partition_by, len(set(days)))
        writer = df.write.format("delta").mode("overwrite").option("userMetadata", json.dumps(meta, sort_keys=True))
        if spec.snapshot:
            if days is not None or replace_where is not None:
                raise ValueError(f"table {name!r} is a snapshot (no partition columns): it is replaced whole, "
                                 f"so days= and replace_where= are not allowed")
            writer = writer.option("overwriteSchema", "true")
        else:
            if days is not None and "dt" not in spec.partition_by:
                raise ValueError(f"table {name!r} is not partitioned by dt: use replace_where=")
            predicates = ([days_predicate(days)] if days is not None else []) \
                + ([f"({replace_where})"] if replace_where else [])
            if not predicates:
                raise ValueError(f"table {name!r} is partitioned by {list(spec.partition_by)}: pass days= and/or "
                                 f"replace_where= to say which partitions the write replaces")
            writer = writer.option("replaceWhere", " AND ".join(predicates)).partitionBy(*spec.partition_by)
            if add_columns:
                writer = writer.option("mergeSchema", "true")
        path = self.path(name)
        with contextlib.nullcontext() if self._held.get(name) == threading.get_ident() else self.holding(name):
            writer.save(path)
            commit = self._commits(name, limit=1)[0]  # under the lease: no other writer in between on S3
        self._writes[name] = self._pinned[name] = commit.version
        return commit
