"""Versioned, atomic publishing of serving bundles behind the blessing gate; retention; rollback.

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
a manifest without the pointer move is a stored, unpromoted candidate (:func:`promote` finishes it
while its verdict still holds). Of two concurrent publishers
judged against the same baseline exactly one wins the swap; the other raises
:class:`~pinrec.export.serving.store.PointerConflict` with its candidate stored. A rejected candidate stays
stored, marked unblessed with its reasons.

``prune`` (:mod:`pinrec.export.build.retention`) keeps the newest ``keep_blessed`` promoted and
``keep_unblessed`` rejected versions and never deletes one a channel points to; ``rollback`` moves a
channel back to a stored version after re-verifying it, and puts it back (raising) if that version
turns out to be being pruned once the pointer moved.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator

from pinrec.export.serving.store import (
    PointerConflict,
    Store,
    file_digest,
    read_channel_for_update,
    read_manifest,
)
from pinrec.schemas.config_base import section
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
    channel_key,
    check_channel,
    check_name,
    check_relpath,
)

from .blessing import BlessingConfig, evaluate
from .retention import CLAIM_FILE, being_pruned, prune

log = logging.getLogger(__name__)

Hook = Callable[[str], None]
"""Called with the name of each step done (``claimed``, ``upload:<path>``, ``uploaded``, ``verified``,
``manifest``, ``pointer:before``, ``pointer:after``); tests inject failures through it."""

__all__ = ["BundleFiles", "PointerConflict", "PublishConfig", "PublishError", "PublishResult", "prune", "publish",
           "publish_bundle", "rollback"]


class PublishError(RuntimeError):
    """A bundle cannot be published (version exists, a file did not survive the upload...)."""


@section("publish")
class PublishConfig:
    """Where bundles go and how many stay.

    ``store_uri``: local directory or ``s3://bucket/prefix`` (None: the pipeline's
    ``<storage.artifacts>/serving``, see ``PinrecConfig.bundle_store_uri``); ``name``: the bundle (e.g. the
    surface, ``homefeed``); ``channel``: what serving follows; ``keep_blessed`` /
    ``keep_unblessed``: newest promoted / rejected versions kept by ``prune``;
    ``incomplete_grace_s``: age after which a version without manifest (a dead publisher's) goes.
    """

    store_uri: str | None = None
    name: str = "homefeed"
    channel: str = "prod"
    keep_blessed: Annotated[int, Field(ge=1)] = 5
    keep_unblessed: Annotated[int, Field(ge=0)] = 2
    incomplete_grace_s: Annotated[int, Field(ge=0)] = 86_400

    @field_validator("store_uri")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        """A local path, ``file://`` or ``s3://`` / ``s3a://bucket[/prefix]``: checked here, not after a build."""
        if value is None:
            return value
        scheme, _, rest = value.partition("://")
        if not value.strip() or (rest and scheme not in ("file", "s3", "s3a")) or (scheme in ("s3", "s3a") and not
                                                                                  rest.split("/")[0]):
            raise ValueError(f"publish.store_uri must be a local path, file://..., or s3://bucket[/prefix] "
                             f"(s3a:// too), got {value!r}")
        if not rest and value.split("/")[0].rstrip(":").lower() in ("s3", "s3a", "gs", "gcs", "http", "https"):
            raise ValueError(f"publish.store_uri {value!r} looks like a URI missing its '://' (a local folder named "
                             f"{value.split('/')[0]!r} would be used): write s3://bucket[/prefix]")
        return value

    @field_validator("name", "channel")
    @classmethod
    def _safe_name(cls, value: str, info) -> str:  # ManifestError names the key and the allowed characters
        (check_name if info.field_name == "name" else check_channel)(f"publish.{info.field_name}", value)
        return value


@dataclass(frozen=True)
class BundleFiles:
    """Local files of a candidate; their place in the bundle is fixed: ``index/index.json``,
    ``index/<shard file name>``, ``ranker/ranker.onnx``, ``ranker/encoder.json``,
    ``pins/pins.parquet``, ``extra/<file name>``."""

    index_meta: str
    index_shards: tuple[str, ...]
    ranker: str
    encoder: str
    pins: str
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.index_shards, str) or not self.index_shards:
            raise ValueError("BundleFiles.index_shards must be a non-empty tuple of paths")
        missing = [p for _, p, _ in self.layout() if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"bundle files not found: {missing}")
        targets = [t for t, _, _ in self.layout()]
        if len(set(targets)) != len(targets):
            raise ValueError(f"two files map to the same bundle path: {sorted(targets)}")

    def layout(self) -> list[tuple[str, str, str]]:
        """(bundle path, local path, role) for every file, shards in index order."""
        rows = [("index/index.json", self.index_meta, "index_meta")]
        rows += [(f"index/{os.path.basename(p)}", p, "index_shard") for p in self.index_shards]
        rows += [("ranker/ranker.onnx", self.ranker, "ranker"), ("ranker/encoder.json", self.encoder, "encoder"),
                 ("pins/pins.parquet", self.pins, "pins")]
        rows += [(f"extra/{os.path.basename(p)}", p, "extra") for p in self.extras]
        for target, _, _ in rows:
            check_relpath(target)
        return rows


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    promoted: bool
    pointer: ChannelPointer | None

    @property
    def version(self) -> str:
        return self.manifest.version


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


def _claim(store: Store, name: str, version: str) -> str:
    """Claim ``version`` (create-if-absent ``.claim``); returns this publisher's id, which the claim holds."""
    prefix = bundle_prefix(name, version)
    me = uuid.uuid4().hex
    claim = json.dumps({"publisher": me, "claimed_at": dt.datetime.now(dt.UTC).isoformat()})
    if not store.put_if_absent(prefix + CLAIM_FILE, claim.encode()):
        raise PublishError(f"{name}/{version} is being published or was published by another publisher in "
                           f"{store!r}; versions are immutable: publish under another version")
    if store.exists(prefix + MANIFEST_FILE):  # published before versions were claimed: not ours either
        store.delete(prefix + CLAIM_FILE)
        raise PublishError(f"{name}/{version} already exists in {store!r}; versions are immutable")
    return me


def _holds_claim(store: Store, prefix: str, me: str) -> bool:
    """Whether the version's ``.claim`` is still this publisher's: a prune deletes an incomplete version's
    files and then its claim, so a publisher that lost it must not write the manifest (or keep a move)."""
    try:
        return json.loads(store.get_bytes(prefix + CLAIM_FILE)).get("publisher") == me
    except (FileNotFoundError, ValueError, AttributeError):
        return False


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


def _move(store: Store, name: str, channel: str, version: str, manifest_bytes: bytes,
          current: ChannelPointer | None, token: str | None, reason: str, now: dt.datetime,
          claim: str | None = None) -> ChannelPointer:
    """Compare-and-swap the channel to ``version``, then make sure the version is still there: a
    prune marks a version before its last look at the pointers, so a move it did not see finds
    the mark (or the manifest gone, or, for a publisher's ``claim``, the claim gone) here, and is undone."""
    pointer = ChannelPointer(name=name, channel=channel, version=version,
                             manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(), moved_at=now,
                             reason=reason, previous=current.version if current else None)
    key = channel_key(name, channel)
    new_token = store.swap(key, pointer.to_json().encode(), token)
    problem = _vanishing(store, name, version, pointer.manifest_sha256)
    if problem is None and claim is not None and not _holds_claim(store, bundle_prefix(name, version), claim):
        problem = "was removed while it was being published"
    if problem is None:
        return pointer
    try:
        if current is None:
            store.delete_pointer(key, new_token)  # the channel did not exist before this move
        else:
            store.swap(key, current.to_json().encode(), new_token)
        where = f"put back on {current.version if current else 'nothing'}"
    except PointerConflict:
        where = "moved since by someone else"
    raise PublishError(f"{name}/{version} {problem} while channel {channel} moved to it; the channel was {where}")


def _vanishing(store: Store, name: str, version: str, manifest_sha256: str) -> str | None:
    """Why ``version`` cannot be served any more, None when it can. The mark is read before the
    manifest: prune deletes the manifest before the mark, so one of the two is always seen."""
    if being_pruned(store, name, version):
        return "is being pruned"
    try:
        data = store.get_bytes(bundle_prefix(name, version) + MANIFEST_FILE)
    except FileNotFoundError:
        return "was deleted"
    if hashlib.sha256(data).hexdigest() != manifest_sha256:
        return "has another manifest now"
    return None


def rollback(store: Store, name: str, channel: str, to_version: str, *, allow_unblessed: bool = False,
             now: dt.datetime | None = None) -> ChannelPointer:
    """Point ``channel`` back at the stored ``to_version`` after re-reading and checking every
    file of it; an unblessed version (a forced one too) needs ``allow_unblessed=True``. A channel already
    on ``to_version`` is left as it is (its rollback target kept)."""
    check_channel("channel", channel)
    try:
        manifest, data = read_manifest(store, name, to_version)
    except FileNotFoundError:
        raise PublishError(f"{name}/{to_version} is not a complete version in {store!r}") from None
    if being_pruned(store, name, to_version):
        raise PublishError(f"{name}/{to_version} is being pruned; not rolling back to it")
    # blessed only: a forced version may never have served this channel (forced to canary, or lost the swap)
    if not (manifest.blessing.blessed or allow_unblessed):
        forced = " (it was published with force=True)" if manifest.blessing.forced else ""
        raise PublishError(f"{name}/{to_version} was not blessed{forced} ({'; '.join(manifest.blessing.reasons)}); "
                           "pass allow_unblessed=True to roll back to it anyway")
    _check_files(store, manifest, "not rolling back")
    current, token = read_channel_for_update(store, name, channel)
    if current is not None and (current.version, current.manifest_sha256) == (to_version,
                                                                             hashlib.sha256(data).hexdigest()):
        log.info("rollback: channel %s/%s already on %s; left as it is", name, channel, to_version)
        return current  # a retried rollback must not make the version its own rollback target
    pointer = _move(store, name, channel, to_version, data, current, token, "rollback",
                    now or dt.datetime.now(dt.UTC))
    log.warning("rollback: channel %s/%s -> %s (was %s)", name, channel, to_version,
                current.version if current else None)
    return pointer


def promote(store: Store, name: str, channel: str, version: str, *,
            now: dt.datetime | None = None) -> ChannelPointer | None:
    """Finish the publish of the stored ``version`` whose channel move never happened (the publisher died
    after the manifest, or lost the swap, or a retry found the step cached): move ``channel`` to it when its
    verdict promotes it (blessed, or forced) and the channel still serves the version that verdict was
    judged against (``blessing.baseline_version``), after re-checking every file. Returns the new pointer,
    or None when there is nothing to finish: a rejected version, a channel already on it, or a channel an
    operator rolled back from it. Raises :class:`PublishError` when the channel moved on since the
    verdict: it no longer says anything about the version the candidate would replace (publish anew)."""
    check_channel("channel", channel)
    manifest, data = read_manifest(store, name, version)
    if not (manifest.blessing.blessed or manifest.blessing.forced):
        return None
    current, token = read_channel_for_update(store, name, channel)
    if current is not None and (current.version == version
                                or (current.reason == "rollback" and current.previous == version)):
        return None  # served already, or taken off it on purpose: not to be undone by a retry
    served = current.version if current else None
    if served != manifest.blessing.baseline_version:
        raise PublishError(f"{name}/{version} was judged against {manifest.blessing.baseline_version} but channel "
                           f"{channel} now serves {served}: its verdict is stale; publish it anew")
    if being_pruned(store, name, version):
        raise PublishError(f"{name}/{version} is being pruned; not promoting it")
    _check_files(store, manifest, "not promoting it")
    # as publish() names the move: forced past the gate, or past an unreadable champion (its note)
    past_unreadable = any(n.startswith("force=True") for n in manifest.blessing.notes)
    reason = "publish" if manifest.blessing.blessed and not past_unreadable else "force"
    pointer = _move(store, name, channel, version, data, current, token, reason, now or dt.datetime.now(dt.UTC))
    log.warning("promote: channel %s/%s -> %s (was %s): the publish that stored it did not move the channel",
                name, channel, version, served)
    return pointer


def _check_files(store: Store, manifest: Manifest, action: str) -> None:
    """Re-read every file of a stored version: its size and sha256 must be the manifest's."""
    prefix = bundle_prefix(manifest.name, manifest.version)
    for entry in manifest.files:
        try:
            got = store.digest(prefix + entry.path)
        except FileNotFoundError:
            got = (-1, "missing")
        if got != (entry.size, entry.sha256):
            raise PublishError(f"{manifest.name}/{manifest.version}/{entry.path} does not match its manifest; "
                               f"{action}")


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
