"""A publisher's claim on a version: ``.claim`` in the version's folder, created if absent.

A publisher writes only into a version it claimed (:func:`_claim`), and checks it still holds the claim
(:func:`_holds_claim`) before it writes the manifest and after it moves a channel: a prune deletes an
incomplete version's files and then its claim (:mod:`pinrec.export.build.retention`).
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

from pinrec.export.serving.store import Store
from pinrec.schemas.manifest import MANIFEST_FILE, bundle_prefix

from .publish_types import PublishError
from .retention import CLAIM_FILE


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
