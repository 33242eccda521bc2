"""Fetching a bundle's verified files: the channel pointer, the manifest, and a local folder that holds
the version's files exactly as the manifest says.

A version is refused (:class:`~pinrec.export.serving.bundle_open.BundleError`) unless

* the manifest parses, is of the supported format version and names only paths inside the bundle;
* its bytes hash to the ``manifest_sha256`` the channel pointer recorded (loads by channel);
* every file exists with the manifest's size and sha256 (and, on a local store, the version
  folder is where the store says and every file resolves inside it: no symlink escapes).

A channel pointer must be a file naming this bundle and channel; manifests and pointers with
duplicate keys or absurd nesting are refused (all as :class:`BundleError`). What the store or the local
disk raises on the way (access denied, network, an unwritable ``cache_dir``) is a
:class:`BundleUnavailable` (a :class:`BundleError`) naming the store and what to check.

A local store is opened in place; anything else (``s3://``) is downloaded into
``cache_dir/<store identity>/<name>/<version>.<manifest sha256[:16]>`` (verified while
downloading, made read-only, then renamed into place). A cached copy is never rewritten nor
removed, since a running process may be reading it: a copy that no longer verifies is left
alone and a fresh one is downloaded beside it; the same version from another store, or
republished under the same name, has its own folder.

Base install only: fsspec (through the store) and the standard library.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid

from pinrec.schemas.manifest import (
    ChannelPointer,
    Manifest,
    ManifestError,
    bundle_prefix,
    check_name,
)

from .bundle_open import BundleError, BundleUnavailable, _inside
from .store import Store, file_digest, read_channel, read_manifest

# the name it logged under before loader.py was split: filters may match it
log = logging.getLogger("pinrec.export.serving.loader")


def _why(e: OSError, store: Store) -> str:
    text = f"{type(e).__name__}: {e}"
    if store.is_s3 and (isinstance(e, PermissionError) or "ACCESS_DENIED" in text or "AccessDenied" in text):
        return (f"{text} (access denied: check the S3 credentials, S3Options or the AWS_* environment, and the "
                "bucket's policy)")
    return text


def _fetch(store: Store, name: str, channel: str, version: str | None,
           cache_dir: str | None) -> tuple[Manifest, bytes, str]:
    """The verified manifest, its bytes and the local folder holding the version's files."""
    expected_sha = None
    try:
        if version is None:
            pointer = resolve(store, name, channel)
            version, expected_sha = pointer.version, pointer.manifest_sha256
        check_name("version", version)
        if store.is_local:
            _check_version_folder(store, name, version)
        try:
            manifest, data = read_manifest(store, name, version)
        except FileNotFoundError:
            raise BundleError(f"{name}/{version} has no {bundle_prefix(name, version)}manifest.json in {store!r}: "
                              "incomplete or not a bundle") from None
    except ManifestError as e:
        raise BundleError(f"refusing {name}/{version or channel}: {e}") from None
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise BundleError(f"refusing {name}/{version}: manifest.json does not hash to the sha256 recorded by "
                          f"channel {channel!r}; it was modified after publishing")
    root = _local_copy(store, manifest, data, cache_dir) if not store.is_local else _verify_in_place(store, manifest)
    return manifest, data, root


def resolve(store: Store, name: str, channel: str) -> ChannelPointer:
    """The channel's pointer; :class:`BundleError` when the channel was never set."""
    try:
        pointer = read_channel(store, name, channel)
    except ManifestError as e:
        raise BundleError(f"channel {name}/{channel}: {e}") from None
    except OSError as e:
        raise BundleUnavailable(f"cannot read channel {name}/{channel} from {store!r}: {_why(e, store)}") from e
    if pointer is None:
        if store.is_local and not os.path.isdir(store.root):  # say so: a mistyped path reads like an empty store
            raise BundleError(f"bundle store {store.root} does not exist: nothing was ever published there (`pinrec "
                              f"publish bundle` publishes one), or the store URI is mistyped")
        raise BundleError(f"channel {name}/{channel} does not exist in {store!r}: nothing published yet (`pinrec "
                          f"publish bundle` publishes one)")
    return pointer


def _check_version_folder(store: Store, name: str, version: str) -> None:
    """A local version folder must be where the store says: no symlinked bundle or version folder."""
    rel = bundle_prefix(name, version).rstrip("/")
    real_root = os.path.realpath(store.root)
    real = os.path.realpath(store.local_path(rel))
    if real != os.path.join(real_root, *rel.split("/")):
        where = "outside the store" if os.path.commonpath([real_root, real]) != real_root else "elsewhere in the store"
        raise BundleError(f"refusing {name}/{version}: {rel} resolves {where} ({real}); a symlinked version is "
                          "not the published one")


def _check(manifest: Manifest, rel: str, got: tuple[int, str], expected_size: int, expected_sha: str) -> None:
    if got[0] != expected_size:
        raise BundleError(f"refusing {manifest.name}/{manifest.version}: {rel} has {got[0]} bytes, "
                          f"the manifest says {expected_size}")
    if got[1] != expected_sha:
        raise BundleError(f"refusing {manifest.name}/{manifest.version}: {rel} sha256 {got[1][:16]}... does not "
                          f"match the manifest's {expected_sha[:16]}...")


def _verify_in_place(store: Store, manifest: Manifest) -> str:
    root = store.local_path(bundle_prefix(manifest.name, manifest.version))
    for entry in manifest.files:
        path = _inside(root, entry.path)
        if not os.path.isfile(path):
            raise BundleError(f"refusing {manifest.name}/{manifest.version}: {entry.path} is missing")
        _check(manifest, entry.path, file_digest(path), entry.size, entry.sha256)
    return root


def _local_copy(store: Store, manifest: Manifest, manifest_bytes: bytes, cache_dir: str | None) -> str:
    """A verified, read-only local copy of the version (see the module docstring); returns its folder."""
    base = os.path.join(cache_dir or os.path.join(tempfile.gettempdir(), "pinrec-bundles"), store.identity,
                        manifest.name)
    stem = f"{manifest.version}.{hashlib.sha256(manifest_bytes).hexdigest()[:16]}"
    for copy in _copies(base, stem):
        try:
            for entry in manifest.files:
                _check(manifest, entry.path, file_digest(_inside(copy, entry.path)), entry.size, entry.sha256)
            return copy
        except (BundleError, OSError) as e:
            log.warning("cached copy %s does not verify (%s); leaving it to whoever reads it, downloading anew",
                        copy, e)
    try:
        os.makedirs(base, exist_ok=True)
        if not os.access(base, os.W_OK | os.X_OK):
            raise PermissionError(f"{base} is not writable")
    except OSError as e:
        raise BundleUnavailable(f"cannot download {manifest.name}/{manifest.version}: the download cache {base} "
                                f"cannot be written ({type(e).__name__}: {e}); pass cache_dir= a writable "
                                "folder") from e
    partial = os.path.join(base, f".partial-{uuid.uuid4().hex}")
    try:
        prefix = bundle_prefix(manifest.name, manifest.version)
        for entry in manifest.files:
            target = _inside(partial, entry.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                got = store.get_file(prefix + entry.path, target)
            except FileNotFoundError:
                raise BundleError(f"refusing {manifest.name}/{manifest.version}: {entry.path} is missing") from None
            _check(manifest, entry.path, got, entry.size, entry.sha256)
        _make_read_only(partial)
        final = os.path.join(base, stem)
        try:
            os.rename(partial, final)  # fails when a copy is there (damaged, or another process's)
        except OSError:
            final = os.path.join(base, f"{stem}.{uuid.uuid4().hex[:8]}")
            os.rename(partial, final)
    except BaseException:
        _remove_partial(partial)
        raise
    return final


def _copies(base: str, stem: str) -> list[str]:
    """Cached copies of one manifest: ``<stem>`` first, then the ones downloaded beside a damaged one."""
    try:
        names = os.listdir(base)
    except (FileNotFoundError, NotADirectoryError):  # no copy yet; making the folder says what is wrong
        return []
    return [os.path.join(base, n) for n in sorted(names, key=lambda n: (n != stem, n))
            if n == stem or n.startswith(stem + ".")]


def _make_read_only(root: str) -> None:
    """Files 0444, folders 0555: nothing in a cached copy is modified while it may be served."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for f in files:
            os.chmod(os.path.join(folder, f), 0o444)
        os.chmod(folder, 0o555)


def _remove_partial(partial: str) -> None:
    for folder, _, _ in os.walk(partial):
        os.chmod(folder, 0o755)
    shutil.rmtree(partial, ignore_errors=True)
