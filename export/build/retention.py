"""Retention: ``prune`` deletes old bundle versions without ever pulling one from under a channel.

What a version folder ``bundles/<name>/<version>/`` can hold besides the bundle's files:

* ``.claim`` — written create-if-absent by the publisher before anything else (see
  :mod:`pinrec.export.build.publish`); a folder without ``manifest.json`` is an incomplete version;
* ``.pruning`` — the mark a prune writes before its last look at the channel pointers.

Deleting one version (mark, then re-check, then delete):

1. create the mark (create-if-absent; a mark younger than :data:`STALE_AFTER_S` belongs to another
   live prune, which then does the job; an older one is a dead prune's and is renewed);
2. read every channel pointer again; if one points to the version, remove the mark and keep it;
3. delete ``manifest.json`` (readers now see an incomplete version), the files, the mark, the
   claim last (only then may the version name be published again), then the empty folders.

A channel move (publish, rollback) reads the mark and then the manifest after its compare-and-swap
and undoes itself if either says the version is going. Either the prune's re-read in step 2 sees
the moved pointer, or the move happened after it and so after the mark was written: the window
between "nobody points to it" and the delete is closed.

Also swept: ``channels/<name>/*.tmp-*`` files a killed pointer move left (older than
:data:`STALE_AFTER_S`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging

from pinrec.export.serving.store import (
    Store,
    list_channels,
    mtime,
    read_channel,
    read_manifest,
)
from pinrec.schemas.manifest import (
    MANIFEST_FILE,
    ManifestError,
    bundle_prefix,
    check_name,
    is_name,
)

log = logging.getLogger(__name__)

CLAIM_FILE = ".claim"
PRUNE_MARK = ".pruning"
#: A pointer move or the deletion of one version takes seconds: a mark or a temporary pointer file
#: older than this belongs to a process that died.
STALE_AFTER_S = 600

__all__ = ["CLAIM_FILE", "PRUNE_MARK", "STALE_AFTER_S", "being_pruned", "prune"]


def being_pruned(store: Store, name: str, version: str) -> bool:
    """True while a live prune holds ``version``'s mark (a stale mark is a dead prune's: False)."""
    when = store.modified(bundle_prefix(name, version) + PRUNE_MARK)
    return when is not None and (dt.datetime.now(dt.UTC) - when).total_seconds() < STALE_AFTER_S


def prune(store: Store, name: str, *, keep_blessed: int = 5, keep_unblessed: int = 2,
          incomplete_grace_s: int = 86_400, now: dt.datetime | None = None) -> list[str]:
    """Delete old versions of ``name``; returns the deleted versions. Kept: every version a channel
    points to or pointed to before its last move (its rollback target, where an undone move goes back;
    checked again, after marking, right before each deletion), the newest
    ``keep_blessed`` promoted (blessed or forced) and ``keep_unblessed`` rejected ones, and
    incomplete ones (claimed or partly uploaded) whose newest file is younger than
    ``incomplete_grace_s``."""
    for arg, value in (("keep_blessed", keep_blessed), ("keep_unblessed", keep_unblessed),
                       ("incomplete_grace_s", incomplete_grace_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"prune: {arg} must be an integer >= 0, got {value!r}")
    now = now or dt.datetime.now(dt.UTC)
    pointed = _pointed(store, name)
    promoted, rejected, doomed = [], [], []
    for version in store.list_dir(f"bundles/{check_name('bundle name', name)}"):
        if not is_name(version):  # a stray file (.DS_Store, a tool's lock): not ours to judge or delete
            log.warning("prune: skipping bundles/%s/%s, not a version name", name, version)
            continue
        try:
            manifest, _ = read_manifest(store, name, version)
        except (FileNotFoundError, ManifestError):
            files = store.list_files(bundle_prefix(name, version))
            if not files:  # an empty folder some S3 servers keep listing after its objects went
                store.delete(bundle_prefix(name, version))
            elif (now - max(mtime(info) for info in files.values())).total_seconds() > incomplete_grace_s:
                doomed.append(version)
            continue
        blessing = manifest.blessing
        (promoted if blessing.blessed or blessing.forced else rejected).append((manifest.created_at, version))
    for group, keep in ((promoted, keep_blessed), (rejected, keep_unblessed)):
        doomed += [v for _, v in sorted(group, reverse=True)[keep:]]
    deleted = [v for v in sorted(set(doomed) - pointed) if _delete_unless_pointed(store, name, v)]
    if deleted:
        log.info("pruned %d version(s) of %s: %s", len(deleted), name, ", ".join(deleted))
    swept = store.remove_stale_tmp(f"channels/{name}", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=STALE_AFTER_S))
    if swept:
        log.info("removed %d temporary pointer file(s) a killed move left in channels/%s", len(swept), name)
    return deleted


def _pointed(store: Store, name: str) -> set[str]:
    """Every version a channel of ``name`` points to now, and the one it pointed to before (a move
    that must be undone puts the channel back there; a malformed pointer raises: what it protects is
    unknown, so nothing is pruned)."""
    pointers = [p for c in list_channels(store, name) if (p := read_channel(store, name, c)) is not None]
    return {p.version for p in pointers} | {p.previous for p in pointers if p.previous is not None}


def _delete_unless_pointed(store: Store, name: str, version: str) -> bool:
    prefix = bundle_prefix(name, version)
    mark = json.dumps({"pruning_since": dt.datetime.now(dt.UTC).isoformat()}).encode()
    if not store.put_if_absent(prefix + PRUNE_MARK, mark):
        if being_pruned(store, name, version):
            return False  # another prune is deleting it
        store.put_bytes(prefix + PRUNE_MARK, mark)  # a dead prune's: renew it so movers see it as live
    if version in _pointed(store, name):  # moved to after our first look
        store.delete(prefix + PRUNE_MARK)
        log.info("not pruning %s/%s: a channel moved to it", name, version)
        return False
    store.delete(prefix + MANIFEST_FILE)  # first: from now on it is an incomplete version to everyone
    for rel in sorted(store.list_files(prefix)):
        if rel not in (CLAIM_FILE, PRUNE_MARK):
            store.delete(prefix + rel)
    store.delete(prefix + PRUNE_MARK)  # after the files: a mover that sees no mark finds them gone
    store.delete(prefix + CLAIM_FILE)  # last: the version name is free again only now
    store.remove_empty_folders(prefix)
    return True
