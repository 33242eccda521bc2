"""Export a feature snapshot to Redis for online serving, versioned by bundle version.

Every row of every view becomes ``SET <prefix>:<version>:<view>:<json key> <json values> EX ttl``
(the format :class:`pinrec.export.serving.feature_store.RedisFeatureStore` reads: one JSON list of the view's
``value_columns``, ``feature_ts`` in microseconds), sent ``batch_size`` at a time through a
non-transactional pipeline (one round trip per batch). Per view the ``_meta`` key is deleted first
and written last, so a reader never takes a half-written export for a complete one (it falls back
to the bundle snapshot instead). Keys of other versions are left alone: they expire with their TTL.

The expiry is the view's TTL counted from the export, not from a value's ``feature_ts``. Every
``feature_ts`` lies at or before the snapshot's cut-off, so an export run after the cut-off (as the
pipeline runs it) never lets Redis drop a value while the snapshot would still serve it: Redis
keeps it longer, by the time from its ``feature_ts`` to the export. The reader applies the exact
freshness rule on ``feature_ts``, so a value Redis still holds past it is served as missing, just as
the snapshot serves it; the expiry only frees the memory.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from pinrec.export.serving.feature_store import (
    FeatureSnapshot,
    RedisConfig,
    encode_rows,
    redis_key,
    redis_meta,
    redis_meta_key,
)


@dataclass(frozen=True)
class RedisExportReport:
    version: str
    rows: dict[str, int] = field(default_factory=dict)
    round_trips: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in sorted(self.rows.items()))
        return (f"redis export of version {self.version}: {rows} in {self.round_trips} pipelined round trips, "
                f"{self.seconds:.2f} s")


def export_snapshot(snapshot: FeatureSnapshot, version: str, cfg: RedisConfig, client=None) -> RedisExportReport:
    """Write every view of ``snapshot`` to Redis under bundle ``version`` (module docstring).
    ``client``: a redis-py client (default: one from ``cfg.url``)."""
    from pinrec.schemas.manifest import check_name

    check_name("version", version)
    if client is None:
        if cfg.url is None:
            raise ValueError("export_snapshot needs cfg.url (e.g. redis://127.0.0.1:6379/0) or a client")
        import redis

        client = redis.Redis.from_url(cfg.url, socket_timeout=30.0, socket_connect_timeout=5.0)
    start = time.perf_counter()
    rows, trips = {}, 0
    for name in snapshot.views:
        view = snapshot.view(name)
        ttl = view.meta.ttl_s
        meta_key = redis_meta_key(cfg.key_prefix, version, name)
        client.delete(meta_key)
        pipe = client.pipeline(transaction=False)
        pending = 0
        for key, value in encode_rows(view):
            pipe.set(redis_key(cfg.key_prefix, version, name, key), value, ex=ttl)
            pending += 1
            if pending == cfg.batch_size:
                pipe.execute()
                trips, pending = trips + 1, 0
        if pending:
            pipe.execute()
            trips += 1
        client.set(meta_key, redis_meta(view), ex=ttl)
        rows[name] = view.num_rows
    return RedisExportReport(version, rows, trips, time.perf_counter() - start)
