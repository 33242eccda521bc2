"""Versioned, atomic publishing of serving bundles behind the blessing gate, and the job that publishes then prunes.

``publish`` writes a new version ``bundles/<name>/<version>/`` and, if blessed, moves the channel:

0. claim the version: create ``.claim`` in its folder, create-if-absent. A second publisher of the
   same version (an explicit name, or the same second and content) fails here, before writing
   anything: a publisher only ever writes into a version it claimed, and never rewrites a file;
1. upload every file (index shards + ``index.json``, ranker ONNX + encoder JSON, pin metadata);
2. read every file back from the store and check its size and sha256;
3. judge the candidate against the version the channel points to now (:mod:`pinrec.export.build.blessing`);
4. write ``manifest.json`` last, create-if-absent, with the verdict and every file's checksum;
5. if blessed (or ``force=True``, logged as a warning), compare-and-swap ``channels/<name>/<channel>``
   from the pointer read in step 3 to the new version.

A publisher killed at any step leaves the channel on a complete, verified version: files without a
manifest are an incomplete version nobody points to (``prune`` removes it after a grace period), and
a manifest without the pointer move is a stored, unpromoted candidate (:func:`~pinrec.export.build.channel_moves.promote` finishes it
while its verdict still holds). Of two concurrent publishers
judged against the same baseline exactly one wins the swap; the other raises
:class:`~pinrec.export.serving.store.PointerConflict` with its candidate stored. A rejected candidate stays
stored, marked unblessed with its reasons.

``publish_bundle`` (the job) publishes to the configured store, then prunes
(:func:`~pinrec.export.build.retention.prune`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging

from pinrec.export.serving.store import (
    Store,
    file_digest,
    read_channel_for_update,
    read_manifest,
)
from pinrec.schemas.manifest import (
    MANIFEST_FILE,
    Blessing,
    ChannelPointer,
    FileEntry,
    Lineage,
    Manifest,
    ManifestError,
    Metrics,
    bundle_prefix,
    check_channel,
    check_name,
)

from .blessing import BlessingConfig, evaluate
from .channel_moves import _move
from .publish_types import BundleFiles, Hook, PublishConfig, PublishError, PublishResult
from .retention import prune
from .version_claims import _claim, _holds_claim

#: the facade's name (pinrec.export.build.publish), as before the split: logging configuration keeps working
log = logging.getLogger("pinrec.export.build.publish")


def _noop(step: str) -> None:
    pass


def publish(store: Store, name: str, files: BundleFiles, metrics: Metrics, lineage: Lineage, *,
            channel: str = "prod", blessing: BlessingConfig | None = None, force: bool = False,
            version: str | None = None, now: dt.datetime | None = None, hook: Hook | None = None,
            baseline_funnel: tuple[str, dict[str, float]] | None = None) -> PublishResult:
    """Store a new version of bundle ``name`` and promote it to ``channel`` if blessed (see the
    module docstring). ``version`` defaults to ``<UTC time>-<content hash>``. ``baseline_funnel``:
    ``(champion version, funnel metrics)`` of the champion replayed on the candidate's own day; the
    gate compares the candidate's funnel with those instead of the champion manifest's (measured on
    its own day) when the channel still points to that version."""
    hook = hook or _noop
    now = now or dt.datetime.now(dt.UTC)
    check_channel("channel", channel)
    entries = [(FileEntry(target, *file_digest(local), role=role), local) for target, local, role in files.layout()]
    content = hashlib.sha256("".join(f"{e.path}:{e.sha256};" for e, _ in entries).encode()).hexdigest()
    version = check_name("version", version or f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{content[:10]}")
    prefix = bundle_prefix(name, version)
    if store.exists(prefix + MANIFEST_FILE):
        raise PublishError(f"{name}/{version} already exists in {store!r}; versions are immutable")
    claim = _claim(store, name, version)
    hook("claimed")

    for entry, local in entries:
        store.put_file(local, prefix + entry.path)
        hook(f"upload:{entry.path}")
    hook("uploaded")
    for entry, _ in entries:
        got = store.digest(prefix + entry.path)
        if got != (entry.size, entry.sha256):
            raise PublishError(f"{name}/{version}/{entry.path}: read back {got[0]} bytes sha256 {got[1][:12]}..., "
                               f"uploaded {entry.size} bytes sha256 {entry.sha256[:12]}...")
    hook("verified")

    current, token = read_channel_for_update(store, name, channel)
    baseline, unreadable = _baseline(store, name, current, force)
    notes: tuple[str, ...] = (unreadable,) if unreadable else ()
    if baseline is not None and baseline_funnel is not None:
        if baseline_funnel[0] == current.version:  # the same day on both sides
            baseline = dataclasses.replace(baseline, funnel=dict(baseline_funnel[1]))
            notes = (f"funnel compared with {current.version} replayed on the candidate's day",)
        else:
            notes = ((f"funnel compared with {current.version}'s own day: the same-day replay was of "
                     f"{baseline_funnel[0]}"),)
    verdict = evaluate(metrics, baseline, blessing or BlessingConfig(),
                       baseline_version=current.version if current else None)
    verdict = Blessing(verdict.blessed, verdict.reasons, verdict.baseline_version, forced=force,
                       notes=(*notes, *verdict.notes))
    manifest = Manifest(name=name, version=version, created_at=now, lineage=lineage, metrics=metrics,
                        blessing=verdict, files=tuple(e for e, _ in entries))
    data = manifest.to_json().encode()
    if not _holds_claim(store, prefix, claim):
        raise PublishError(f"{name}/{version} was removed while it was being uploaded (a prune whose "
                           "incomplete_grace_s is shorter than an upload?); nothing was published")
    if not store.put_if_absent(prefix + MANIFEST_FILE, data):
        raise PublishError(f"{name}/{version}: another publisher wrote its manifest first")
    hook("manifest")

    if not verdict.blessed and not force:
        log.info("bundle %s/%s stored but not blessed for %s: %s", name, version, channel, "; ".join(verdict.reasons))
        return PublishResult(manifest, promoted=False, pointer=None)
    if not verdict.blessed:
        log.warning("force=True: promoting %s/%s to %s despite: %s", name, version, channel,
                    "; ".join(verdict.reasons))
    reason = "publish" if verdict.blessed and not unreadable else "force"  # past an unreadable champion: forced
    hook("pointer:before")
    pointer = _move(store, name, channel, version, data, current, token, reason, now, claim)
    hook("pointer:after")
    log.info("channel %s/%s -> %s (was %s; %d files, %d bytes)", name, channel, version,
             current.version if current else None, len(manifest.files), manifest.total_bytes)
    return PublishResult(manifest, promoted=True, pointer=pointer)


def _baseline(store: Store, name: str, current: ChannelPointer | None, force: bool) -> tuple[Metrics | None, str]:
    """The champion's metrics, and a note when ``force`` went past a champion whose manifest is unreadable."""
    if current is None:
        return None, ""
    try:
        manifest, _ = read_manifest(store, name, current.version)
    except (FileNotFoundError, ManifestError) as e:
        if not force:
            raise PublishError(f"cannot judge the candidate: the channel's version {current.version} has no "
                               f"readable manifest ({e}); roll the channel back or publish with force=True") from e
        log.warning("force=True: baseline %s unreadable (%s); judging against the floors only", current.version, e)
        return None, (f"force=True: the champion {current.version}'s manifest is unreadable ({e}); judged against "
                      "the floors only")
    return manifest.metrics, ""


def publish_bundle(cfg: PublishConfig, files: BundleFiles, metrics: Metrics, lineage: Lineage, *,
                   blessing: BlessingConfig | None = None, s3=None, force: bool = False,
                   baseline_funnel: tuple[str, dict[str, float]] | None = None) -> PublishResult:
    """The job: publish to ``cfg.store_uri`` then prune (``s3``: :class:`~pinrec.export.serving.store.S3Options`;
    ``baseline_funnel``: see :func:`publish`)."""
    if cfg.store_uri is None:
        raise ValueError("publish.store_uri is unset: pass the store (PinrecConfig.bundle_store_uri derives it "
                         "from storage.artifacts)")
    store = Store(cfg.store_uri, s3)
    result = publish(store, cfg.name, files, metrics, lineage, channel=cfg.channel, blessing=blessing, force=force,
                     baseline_funnel=baseline_funnel)
    prune(store, cfg.name, keep_blessed=cfg.keep_blessed, keep_unblessed=cfg.keep_unblessed,
          incomplete_grace_s=cfg.incomplete_grace_s)
    return result
