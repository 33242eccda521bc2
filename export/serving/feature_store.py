"""Online features for serving: the bundle's feature snapshot, looked up per entity, and Redis in front.

The public names of five modules, importable from here as before they were split out (notebooks
and bundles' docs import them from this module):

- :mod:`pinrec.export.serving.snapshot_meta`: the snapshot file, its :class:`SnapshotMeta`, times;
- :mod:`pinrec.export.serving.view_snapshot`: :class:`ViewSnapshot`, one view indexed by its key;
- :mod:`pinrec.export.serving.feature_snapshot`: :class:`FeatureSnapshot`, every view of a bundle;
- :mod:`pinrec.export.serving.redis_format`: :class:`RedisConfig`, the keys and values in Redis;
- :mod:`pinrec.export.serving.redis_store`: :class:`RedisFeatureStore`, Redis with the snapshot as
  fallback.

Base install only: numpy and pyarrow (redis-py is imported lazily; it is the ``redis`` extra).
"""
from __future__ import annotations

from .feature_snapshot import FeatureSnapshot
from .redis_format import (
    RedisConfig,
    encode_rows,
    redis_generation_pattern,
    redis_key,
    redis_meta,
    redis_meta_key,
)
from .redis_store import RedisFeatureStore
from .snapshot_meta import (
    META_KEY,
    SnapshotError,
    SnapshotMeta,
    snapshot_file_name,
    to_micros,
    with_meta,
)
from .view_snapshot import ViewSnapshot

__all__ = [
    "META_KEY",
    "FeatureSnapshot",
    "RedisConfig",
    "RedisFeatureStore",
    "SnapshotError",
    "SnapshotMeta",
    "ViewSnapshot",
    "encode_rows",
    "redis_generation_pattern",
    "redis_key",
    "redis_meta",
    "redis_meta_key",
    "snapshot_file_name",
    "to_micros",
    "with_meta",
]
