"""The online feature snapshot: every entity's features as of a cut-off, by the training join itself.

For each feature view the spine is one row per entity with a feature row that could be served at
``cutoff`` (``created_ts <= cutoff``, ``feature_ts`` in ``[cutoff - ttl, cutoff]``), at
``ts = cutoff``; :func:`pinrec.jobs.features.pit_join.point_in_time_join` — the function that attached features to
the training set — picks each entity's value, so the TTL and "as known at" (``created_ts``) rules
cannot drift apart between training and serving. Feature rows older than ``cutoff - ttl`` are
pruned before the join; they could never win it.

Each view becomes one Parquet file ``features_<view>.parquet`` (sorted by key; columns: the
entities, ``<view>__<feature>``, ``<view>__feature_ts``; a :class:`pinrec.export.serving.snapshot_meta.SnapshotMeta`
in the file's metadata) in a local folder or an S3 location, small enough to ship in the bundle
(``BundleFiles.extras``) and served by :class:`pinrec.export.serving.feature_snapshot.FeatureSnapshot`.
The files are collected on the driver: one row per entity (users and pins), not per event.
``pinrec feature-snapshot`` runs it and, with ``--redis-url`` or ``redis.url``, also exports the snapshot to Redis
(:mod:`pinrec.jobs.features.redis_export`).

A pipeline that knows its cut-offs early builds the views ahead with :func:`prebuild_snapshot` (Spark work,
run beside the torch steps) and hands the result to :func:`build_feature_snapshot`, which takes a view's
prebuilt table only for the same cut-off and the same Delta version of its feature table, and builds
it again otherwise: prebuilding changes when the work is done, never what is written.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.snapshot_meta import (
    SnapshotMeta,
    snapshot_file_name,
    with_meta,
)
from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.timestamps import ts_lit
from pinrec.schemas.features import FEATURE_VIEWS, FeatureView

from .pit_join import point_in_time_join

SPINE_TS = "__snapshot_ts"


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class SnapshotReport:
    cutoff: str
    out_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    input_versions: dict[str, int | None] = field(default_factory=dict)

    def render(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in sorted(self.rows.items()))
        return f"feature_snapshot as of {self.cutoff}: {rows} -> {self.out_dir}"


def snapshot_frame(features, view: FeatureView, cutoff: dt.datetime):
    """Pure transform: ``view``'s feature table in, one row per entity served at ``cutoff`` out
    (the entity columns, ``<view>__<feature>``..., ``<view>__feature_ts``)."""
    from pyspark.sql import functions as F

    t = ts_lit(cutoff)
    oldest = t - F.expr(f"INTERVAL {int(view.ttl.total_seconds())} SECONDS")
    recent = features.where(F.col(view.feature_ts) >= oldest)
    has_key = F.lit(True)
    for e in view.entities:
        has_key = has_key & F.col(e).isNotNull()
    spine = (recent.where(has_key & (F.col(view.feature_ts) <= t) & (F.col(view.created_ts) <= t))
             .select(*view.entities).distinct().withColumn(SPINE_TS, t))
    joined = point_in_time_join(spine, recent, view, spine_ts=SPINE_TS)
    columns = [*view.entities, *(view.column(f.name) for f in view.features), view.column("feature_ts")]
    return joined.where(~F.col(view.missing_column)).select(*columns)


def snapshot_table(frame, view: FeatureView, cutoff: dt.datetime):
    """Collect a :func:`snapshot_frame` into a key-sorted Arrow table carrying its metadata."""
    table = frame.toArrow()
    table = table.sort_by([(e, "ascending") for e in view.entities])
    return with_meta(table, SnapshotMeta.from_view(view, cutoff))


def write_snapshot(tables: dict[str, object], out_dir: str | Path | Location) -> dict[str, str]:
    """Write ``{view: table}`` as ``out_dir/features_<view>.parquet``, one row group each (read
    back memory-mapped as one chunk per column), each file whole (locally a temporary file renamed
    into place, on S3 one PUT); ``out_dir`` a local folder or a Location. Returns the local paths
    (on S3 the URIs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = as_location(out_dir)
    paths = {}
    for name, table in tables.items():
        target = folder / snapshot_file_name(name)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=max(table.num_rows, 1))  # one chunk when read back
        target.write_bytes(sink.getvalue().to_pybytes())
        paths[name] = str(target) if target.is_s3 else target.path
    return paths


def open_snapshot(where: str | Path | Location | list[Location], expected: tuple[FeatureView, ...] = ()
                  ) -> FeatureSnapshot:
    """The serving snapshot in the folder ``where`` (its ``features_<view>.parquet`` files) or in
    the listed files: local files memory-mapped as the loader opens them, S3 objects read into
    memory. ``expected``: views that must be served whole (:meth:`FeatureSnapshot.open`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(where, list):
        folder = as_location(where)
        if not folder.is_s3:
            return FeatureSnapshot.open(folder.path, expected=expected)
        pattern = snapshot_file_name("*")
        where = [folder / n for n, is_dir in folder.entries() if not is_dir and fnmatch.fnmatch(n, pattern)]
        if not where:
            raise FileNotFoundError(f"no {snapshot_file_name('<view>')} files in {folder}")
    return FeatureSnapshot.open([pq.read_table(pa.BufferReader(f.read_bytes())) if f.is_s3 else f.path
                                 for f in where], expected=expected)


@dataclass(frozen=True)
class PrebuiltSnapshot:
    """Snapshot tables built ahead (:func:`prebuild_snapshot`): ``tables[(view, cut-off, version)]`` is
    the view's table as of the cut-off (``isoformat()``, as its metadata records it) from that Delta
    version of its feature table."""

    tables: dict[tuple[str, str, int], object] = field(default_factory=dict)

    def get(self, view: str, cutoff: dt.datetime, version: int):
        """The prebuilt table, or None when none was built for exactly this view, cut-off and version."""
        return self.tables.get((view, cutoff.isoformat(), version))


def prebuild_snapshot(spark, warehouse, cutoffs, views: tuple[FeatureView, ...] = FEATURE_VIEWS) -> PrebuiltSnapshot:
    """Every view's snapshot table as of each of ``cutoffs``, from the feature tables' current Delta
    versions (one catalog: one version per table for all cut-offs), for a later
    :func:`build_feature_snapshot` (``prebuilt=``). Nothing is written."""
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.catalog import feature_table

    catalog = Catalog.of(spark, warehouse)
    catalog.require([feature_table(v) for v in views], "run `pinrec features` first")
    tables = {}
    for cutoff in dict.fromkeys(cutoffs):
        for view in views:
            features = catalog.read(feature_table(view))
            tables[(view.name, cutoff.isoformat(), catalog.reads[feature_table(view)])] = \
                snapshot_table(snapshot_frame(features, view, cutoff), view, cutoff)
    return PrebuiltSnapshot(tables)


def build_feature_snapshot(spark, warehouse, cutoff: dt.datetime, out_dir: str | Path | Location,
                           views: tuple[FeatureView, ...] = FEATURE_VIEWS,
                           prebuilt: PrebuiltSnapshot | None = None, allow_empty: bool = True) -> SnapshotReport:
    """Read the feature tables (pinned Delta versions), build every view's snapshot as of
    ``cutoff``, write it to ``out_dir`` (a local folder or a Location) and re-open it with the
    serving code as a check. ``warehouse``: a path, Location or :class:`~pinrec.jobs.io.catalog.Catalog`.
    ``prebuilt``: tables :func:`prebuild_snapshot` built ahead; a view's is used only when built for
    ``cutoff`` from the version read here. ``allow_empty`` False: a snapshot without a row in any view
    (no feature row created by ``cutoff``) is a ValueError, and nothing is written."""
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.catalog import feature_table

    catalog = Catalog.of(spark, warehouse)
    catalog.require([feature_table(v) for v in views], "run `pinrec features` first")
    tables = {}
    for view in views:
        features = catalog.read(feature_table(view))
        ready = prebuilt.get(view.name, cutoff, catalog.reads[feature_table(view)]) if prebuilt else None
        tables[view.name] = ready if ready is not None else \
            snapshot_table(snapshot_frame(features, view, cutoff), view, cutoff)
    versions = {feature_table(v): catalog.reads[feature_table(v)] for v in views}
    if not allow_empty and not any(t.num_rows for t in tables.values()):
        raise ValueError(f"no feature row is servable at the cut-off {_naive_utc(cutoff).isoformat()} (none of "
                         f"{list(versions)} holds a row created by then): pass a later --cutoff, or run "
                         "`pinrec features` for the days before it first")
    folder = as_location(out_dir)
    files = write_snapshot(tables, folder)
    open_snapshot([folder / snapshot_file_name(n) for n in tables], expected=views)
    return SnapshotReport(_naive_utc(cutoff).isoformat(), str(folder), {n: t.num_rows for n, t in tables.items()},
                          files, versions)
