"""Finishing an interrupted publish: promote a stored bundle whose publish never moved the channel, or
refuse it when its verdict went stale (the step cache calls it before answering with a stored bundle)."""
from __future__ import annotations

from .serving_bundle import BundleReport


def finish_publish(cfg, manifest, register: bool = True) -> BundleReport | None:
    """Promote the stored bundle ``manifest`` describes when its publish never moved ``cfg.publish.channel``
    (:func:`~pinrec.export.build.publish.promote`: a crash or a lost swap, then a retry the step cache
    answered), and register it in MLflow with the channel's alias; None when there was nothing to finish.
    Raises :class:`~pinrec.export.build.publish.PublishError` when its verdict is stale: judged against a
    version the channel no longer serves (a rejection too: the caller publishes anew)."""
    from pinrec.export.build.publish import promote
    from pinrec.export.serving.store import Store
    from pinrec.jobs.config import s3_options

    store = Store(cfg.bundle_store_uri, s3_options(cfg.storage))
    if promote(store, manifest.name, cfg.publish.channel, manifest.version) is None:
        return None
    registered: dict[str, str] = {}
    if register and cfg.storage.mlflow_tracking_uri:
        from .registry import register_bundle

        registered = register_bundle(cfg.storage.mlflow_tracking_uri, cfg.bundle_store_uri, manifest,
                                     channel=cfg.publish.channel)
    return BundleReport(manifest.version, True, manifest.blessing.blessed, manifest.blessing.reasons,
                        cfg.bundle_store_uri, manifest.name, cfg.publish.channel, len(manifest.files),
                        manifest.total_bytes, registered)
