"""Materialise a published bundle's features in Redis, the online store serving reads first.

Serving (:class:`~pinrec.export.serving.feature_store.RedisFeatureStore`) looks features up in Redis
under the bundle version it serves, and falls back to the bundle's own snapshot while Redis holds no
export of that version. This job writes that export: the feature snapshot the bundle carries (the
features as of its cut-off, those the blessing gate judged it with), through
:func:`~pinrec.jobs.features.redis_export.export_snapshot` with every ``redis.*`` setting, under the
version the publish channel points to (or a given one). A second export of a version replaces the
first whole (generations), so running it again after a retry, a cached publish or a rollback is
safe. Feast's ``materialize`` is the peer; fresher features than the bundle's come from
``pinrec feature-snapshot --cutoff T --redis-url U --bundle-version V``.

Run by the training DAG's ``online_features`` task after publish, by ``pinrec demo`` when
``redis.url`` is set, and as ``pinrec publish online-features [--version V] [--redis-url U]``.
"""
from __future__ import annotations

from pinrec.jobs.config import ConfigError, PinrecConfig, s3_options

__all__ = ["export_bundle_features"]


def export_bundle_features(cfg: PinrecConfig, version: str | None = None) -> dict:
    """Export the feature snapshot of bundle ``cfg.publish.name`` at ``version`` (default: the one
    ``cfg.publish.channel`` points to) to ``cfg.redis.url``. Returns ``{"name", "version", "url",
    "generation", "rows": {view: n}, "replaced": {view: n}, "seconds"}``. ConfigError when
    ``redis.url`` is not set; the loader's errors when the bundle or channel is missing;
    :class:`~pinrec.jobs.features.redis_export.RedisExportError` naming the URL when Redis fails."""
    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
    from pinrec.export.serving.loader import load
    from pinrec.jobs.features.redis_export import export_snapshot

    if not cfg.redis.url:
        raise ConfigError("redis.url is not set: give the Redis to export to (redis://host:port/db, or --redis-url)")
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, version=version,
                  s3=s3_options(cfg.storage))
    report = export_snapshot(FeatureSnapshot.from_bundle(bundle), bundle.version, cfg.redis)
    return {"name": bundle.name, "version": bundle.version, "url": cfg.redis.url, "generation": report.generation,
            "rows": dict(report.rows), "replaced": dict(report.replaced), "seconds": round(report.seconds, 3),
            "summary": report.render()}
