"""Moving a channel to a stored version: the checked compare-and-swap, ``rollback`` and ``promote``.

``rollback`` moves a channel back to a stored version after re-verifying it, and puts it back
(raising) if that version turns out to be being pruned once the pointer moved. ``promote`` finishes a
publish whose channel move never happened, while the stored verdict still holds. Both, and
:func:`~pinrec.export.build.publish_protocol.publish`, move through :func:`_move`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

from pinrec.export.serving.store import (
    PointerConflict,
    Store,
    read_channel_for_update,
    read_manifest,
)
from pinrec.schemas.manifest import (
    MANIFEST_FILE,
    ChannelPointer,
    Manifest,
    bundle_prefix,
    channel_key,
    check_channel,
)

from .publish_types import PublishError
from .retention import being_pruned
from .version_claims import _holds_claim

#: the facade's name (pinrec.export.build.publish), as before the split: logging configuration keeps working
log = logging.getLogger("pinrec.export.build.publish")


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
    or None when there is nothing to finish: a rejected version (while the channel serves the version it
    lost to), a channel already on it, or a channel an operator rolled back from it. Raises
    :class:`PublishError` when the channel moved on since the verdict, a rejection's too: it no longer
    says anything about the version the candidate would replace (publish anew)."""
    check_channel("channel", channel)
    manifest, data = read_manifest(store, name, version)
    current, token = read_channel_for_update(store, name, channel)
    if not (manifest.blessing.blessed or manifest.blessing.forced):
        served = current.version if current else None
        if served != manifest.blessing.baseline_version:  # a retry must not answer with a verdict about another
            raise PublishError(f"{name}/{version} was rejected against {manifest.blessing.baseline_version} but "
                               f"channel {channel} now serves {served}: its verdict is stale; publish it anew")
        return None
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
