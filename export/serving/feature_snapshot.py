"""The bundle's feature snapshot: :class:`FeatureSnapshot`, one view snapshot per feature view.

:meth:`FeatureSnapshot.open` reads the ``features_<view>.parquet`` files (memory-mapped; the format
is :mod:`pinrec.export.serving.snapshot_meta`) from a folder, files, tables or a bundle's extras, and
checks them against the code's feature views; :meth:`FeatureSnapshot.lookup` hands each lookup to
its view's :class:`~pinrec.export.serving.view_snapshot.ViewSnapshot`. Base install only: numpy and
pyarrow.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .snapshot_meta import SnapshotError, SnapshotMeta, snapshot_file_name
from .view_snapshot import ViewSnapshot


class FeatureSnapshot:
    """The bundle's feature snapshot: one :class:`ViewSnapshot` per view.

    >>> snap = FeatureSnapshot.open("bundle/extra")                               # doctest: +SKIP
    >>> snap.lookup("user", [7, 8], now=request_time)["user__saves_7d"]            # doctest: +SKIP
    >>> snap.lookup("user_category", {"user_id": [7], "category": ["art"]})       # doctest: +SKIP
    """

    def __init__(self, views: Mapping[str, ViewSnapshot]) -> None:
        self._views = dict(views)

    @classmethod
    def open(cls, source: str | pa.Table | Iterable[str | pa.Table], expected: Iterable[Any] | None = None
             ) -> FeatureSnapshot:
        """Open a snapshot from a folder of ``features_<view>.parquet`` files, one file, a table
        with snapshot metadata, or several of those. ``expected``: feature views (e.g.
        ``pinrec.schemas.features.FEATURE_VIEWS``) whose every feature, entity and TTL must be there."""
        views: dict[str, ViewSnapshot] = {}
        for table in _tables(source):
            view = ViewSnapshot(table)
            if view.meta.view in views:
                raise SnapshotError(f"view {view.meta.view!r} appears twice in the snapshot sources")
            views[view.meta.view] = view
        snap = cls(views)
        for view in expected or ():
            snap.check(view)
        return snap

    @classmethod
    def from_bundle(cls, bundle, expected: Iterable[Any] | None = None) -> FeatureSnapshot:
        """The snapshot files an opened :class:`pinrec.export.serving.loader.Bundle` carries as extras
        (``extra/features_<view>.parquet``, verified by the loader)."""
        paths = [os.path.join(bundle.root, e.path) for e in bundle.manifest.of_role("extra")
                 if os.path.basename(e.path).startswith("features_") and e.path.endswith(".parquet")]
        if not paths:
            raise SnapshotError(f"bundle {bundle.name}/{bundle.version} carries no feature snapshot "
                                "(extra/features_<view>.parquet)")
        return cls.open(paths, expected)

    def check(self, view) -> None:
        """Raise unless this snapshot serves every feature of ``view`` (a FeatureView) as declared."""
        if view.name not in self._views:
            raise SnapshotError(f"the snapshot has no view {view.name!r} (it has {sorted(self._views)})")
        meta = self._views[view.name].meta
        lacking = [f.name for f in view.features if f.name not in meta.features]
        if lacking:
            raise SnapshotError(f"the snapshot of view {view.name!r} lacks features {lacking}: it was built with "
                                "other feature views than this code's; rebuild it")
        if tuple(view.entities) != meta.entities or int(view.ttl.total_seconds()) != meta.ttl_s:
            raise SnapshotError(f"the snapshot of view {view.name!r} is keyed by {meta.entities} with ttl "
                                f"{meta.ttl_s}s, the view by {tuple(view.entities)} with ttl {view.ttl}")

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(sorted(self._views))

    def view(self, name: str) -> ViewSnapshot:
        try:
            return self._views[name]
        except KeyError:
            raise SnapshotError(f"the snapshot has no view {name!r} (it has {sorted(self._views)})") from None

    def meta(self, name: str) -> SnapshotMeta:
        return self.view(name).meta

    def lookup(self, view: str, keys: Any, now: Any = None) -> pa.Table:
        """``view``'s columns for B keys at ``now`` (scalar or (B,) times; default the cut-off):
        ``<view>__<feature>``..., ``<view>__feature_ts``, ``<view>__missing`` (B rows)."""
        return self.view(view).lookup(keys, now)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={v.num_rows}" for n, v in sorted(self._views.items()))
        cutoffs = sorted({v.meta.cutoff.isoformat() for v in self._views.values()})
        return f"FeatureSnapshot({parts}; cutoff={', '.join(cutoffs)})"


def _tables(source: Any) -> Iterator[pa.Table]:
    if isinstance(source, pa.Table):
        yield source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            files = sorted(glob.glob(os.path.join(path, snapshot_file_name("*"))))
            if not files:
                raise SnapshotError(f"no {snapshot_file_name('<view>')} files in {path}")
            for f in files:
                yield pq.read_table(f, memory_map=True)
        elif os.path.isfile(path):
            yield pq.read_table(path, memory_map=True)
        else:
            raise FileNotFoundError(f"feature snapshot {path} does not exist")
    else:
        for item in source:
            yield from _tables(item)
