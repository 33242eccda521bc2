"""Export a feature snapshot to Redis for online serving, versioned by bundle version.

Every export of a view writes a new generation (a random id): every row becomes
``SET <prefix>:<version>:<view>:<generation>:<json key> <json values> EX ttl`` (the format
:class:`pinrec.export.serving.redis_store.RedisFeatureStore` reads: one JSON list of the view's
``value_columns``, ``feature_ts`` in microseconds), sent ``batch_size`` at a time through a
non-transactional pipeline (one round trip per batch). Then ``<prefix>:<version>:<view>:_meta``
is set to name the generation (with the columns, their Arrow types, the cut-off and the row count).
That one write switches readers to the new export whole: a reader never sees a half-written
export, a mix of two exporters' rows, or an entity the new snapshot no longer holds; an export cut
off before the switch leaves readers on the previous complete export (or, on a first export, on the
bundle snapshot). The previous generation's keys are deleted after the switch (``SCAN`` +
``UNLINK``, ``batch_size`` keys at a time); those of an exporter that lost a race to the switch are
left to expire. Keys of other versions are left alone: they expire with their TTL. A Redis that
cannot be reached, times out or refuses a command is a :class:`RedisExportError` naming the URL.

The expiry is the view's TTL counted from the export, not from a value's ``feature_ts``. Every
``feature_ts`` lies at or before the snapshot's cut-off, so an export run after the cut-off (as the
pipeline runs it) never lets Redis drop a value while the snapshot would still serve it: Redis
keeps it longer, by the time from its ``feature_ts`` to the export. The reader applies the exact
freshness rule on ``feature_ts``, so a value Redis still holds past it is served as missing, just as
the snapshot serves it; the expiry only frees the memory.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.redis_format import (
    RedisConfig,
    encode_rows,
    redis_generation_pattern,
    redis_key,
    redis_meta,
    redis_meta_key,
)


class RedisExportError(RuntimeError):
    """Redis could not take the export (unreachable, timed out, refused a command); names the URL."""


@dataclass(frozen=True)
class RedisExportReport:
    """``generation``: the id the export's keys carry; ``replaced``: view -> keys of the previous
    export of the same version deleted after the switch."""

    version: str
    rows: dict[str, int] = field(default_factory=dict)
    round_trips: int = 0
    seconds: float = 0.0
    generation: str = ""
    replaced: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in sorted(self.rows.items()))
        old = sum(self.replaced.values())
        return (f"redis export of version {self.version} (generation {self.generation}): {rows} in "
                f"{self.round_trips} pipelined round trips, {self.seconds:.2f} s"
                + (f"; {old} keys of the previous export deleted" if old else ""))


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
    try:
        return _export(snapshot, version, cfg, client)
    except Exception as e:  # redis-py's errors derive from RedisError, not OSError
        if not any(c.__module__.startswith("redis") and c.__name__ == "RedisError" for c in type(e).__mro__):
            raise
        raise RedisExportError(f"redis export of version {version} to {cfg.url or client} failed: "
                               f"{type(e).__name__}: {e}") from e


def _export(snapshot: FeatureSnapshot, version: str, cfg: RedisConfig, client) -> RedisExportReport:
    start = time.perf_counter()
    generation = secrets.token_hex(8)
    rows, replaced, trips = {}, {}, 0
    for name in snapshot.views:
        view = snapshot.view(name)
        ttl = view.meta.ttl_s
        meta_key = redis_meta_key(cfg.key_prefix, version, name)
        previous = _generation(client.get(meta_key))
        pipe = client.pipeline(transaction=False)
        pending = 0
        for key, value in encode_rows(view):
            pipe.set(redis_key(cfg.key_prefix, version, name, generation, key), value, ex=ttl)
            pending += 1
            if pending == cfg.batch_size:
                pipe.execute()
                trips, pending = trips + 1, 0
        if pending:
            pipe.execute()
            trips += 1
        client.set(meta_key, redis_meta(view, generation), ex=ttl)  # the switch
        rows[name] = view.num_rows
        if previous is not None:
            pattern = redis_generation_pattern(cfg.key_prefix, version, name, previous)
            replaced[name] = _unlink(client, pattern, cfg.batch_size)
    return RedisExportReport(version, rows, trips, time.perf_counter() - start, generation, replaced)


def _generation(raw: bytes | None) -> str | None:
    """The generation an existing ``_meta`` value names (None: no export, or not this code's format)."""
    try:
        header = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    generation = header.get("generation") if isinstance(header, dict) else None
    return generation if isinstance(generation, str) and generation else None


def _unlink(client, pattern: str, batch_size: int) -> int:
    """Unlink every key matching ``pattern``, ``batch_size`` per round trip; returns how many."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=pattern, count=batch_size):
        batch.append(key)
        if len(batch) == batch_size:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted
