"""The serving loader: open a published bundle, verified, and follow its channel.

``load(uri, name, channel="prod")`` (or ``version=...``) reads the channel pointer and the
version's ``manifest.json`` and refuses the bundle (:class:`BundleError`) unless

* the manifest parses, is of the supported format version and names only paths inside the bundle;
* its bytes hash to the ``manifest_sha256`` the channel pointer recorded (loads by channel);
* every file exists with the manifest's size and sha256 (and, on a local store, the version
  folder is where the store says and every file resolves inside it: no symlink escapes);
* the shards open with faiss, the ranker with onnxruntime, the pin metadata has its columns.

A channel pointer must be a file naming this bundle and channel; manifests and pointers with
duplicate keys or absurd nesting are refused (all as :class:`BundleError`). What the store or the local
disk raises on the way (access denied, network, an unwritable ``cache_dir``) is a
:class:`BundleUnavailable` (a :class:`BundleError`) naming the store and what to check.

A local store is opened in place; anything else (``s3://``) is downloaded into
``cache_dir/<store identity>/<name>/<version>.<manifest sha256[:16]>`` (verified while
downloading, made read-only, then renamed into place). A cached copy is never rewritten nor
removed, since a running process may be reading it: a copy that no longer verifies is left
alone and a fresh one is downloaded beside it; the same version from another store, or
republished under the same name, has its own folder. Shards are memory-mapped with
``IO_FLAG_MMAP_IFC`` (faiss 1.15, measured: it maps flat, IVF and HNSW storage; ``IO_FLAG_MMAP``
alone still copies a flat index into RAM, and the two together fail on IVF shards). Nothing is
unpickled: faiss' own format, ONNX protobuf, JSON and Parquet only.

:class:`Loader` holds the current :class:`Bundle`; ``refresh()`` loads the channel's new version
completely, and runs the loader's checks on it (``check(bundle)``, raising when it cannot serve:
:class:`~pinrec.export.serving.recommend.LoaderRecommender` registers one that builds a recommender and answers a
probe request), before swapping one reference; a failed load or check raises and keeps the old
bundle serving.

Base install only: numpy, pyarrow, fsspec, faiss, onnxruntime (no Spark, torch, MLflow, Airflow).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from pinrec.schemas.manifest import (
    PIN_COLUMNS,
    ChannelPointer,
    Manifest,
    ManifestError,
    bundle_prefix,
    check_name,
)

from .store import S3Options, Store, file_digest, read_channel, read_manifest

log = logging.getLogger(__name__)

MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC


class BundleError(RuntimeError):
    """A bundle was refused: missing, incomplete, corrupt, tampered, unsafe or unsupported."""


class BundleUnavailable(BundleError):
    """A bundle could not be read, so it was not judged: the store failed or refused access (network,
    credentials, bucket policy), or the download cache cannot be written. Often transient: a
    :meth:`Loader.refresh` that raises it keeps the old bundle serving, as for any :class:`BundleError`."""


@dataclass(frozen=True, eq=False)
class Bundle:
    """An opened, verified bundle. ``shards``: faiss indexes in manifest order (memory-mapped);
    ``index_meta``: ``index.json``; ``ranker``: ONNX session; ``encoder``: the encoder JSON;
    ``pins``: pin metadata (Arrow table, memory-mapped); ``root``: local folder of the files."""

    manifest: Manifest
    root: str
    shards: tuple[Any, ...]
    index_meta: dict
    ranker: ort.InferenceSession
    encoder: dict
    pins: pa.Table
    #: sha256 of the manifest's bytes: a version name freed by prune and published again is another bundle
    manifest_sha256: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ntotal(self) -> int:
        return sum(s.ntotal for s in self.shards)

    def __repr__(self) -> str:
        return (f"Bundle({self.name}/{self.version}, shards={len(self.shards)}, vectors={self.ntotal}, "
                f"pins={self.pins.num_rows}, blessed={self.manifest.blessing.blessed})")


def load(uri: str, name: str, channel: str = "prod", *, version: str | None = None, cache_dir: str | None = None,
         s3: S3Options | None = None) -> Bundle:
    """Open bundle ``name`` at the version ``channel`` points to, or at ``version`` when given."""
    return _load(Store(uri, s3), name, channel, version, cache_dir)


def _load(store: Store, name: str, channel: str, version: str | None, cache_dir: str | None) -> Bundle:
    try:
        manifest, data, root = _fetch(store, name, channel, version, cache_dir)
    except BundleError:
        raise
    except OSError as e:  # anything else the store or the local disk raised: name where and what to check
        raise BundleUnavailable(f"cannot read {name}/{version or channel} from {store!r}: {_why(e, store)}") from e
    return _open(manifest, root, hashlib.sha256(data).hexdigest())


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
        raise BundleError(f"channel {name}/{channel} does not exist in {store!r}: nothing published yet")
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


def _inside(root: str, rel: str) -> str:
    """The real path of ``root/rel``, refusing anything that resolves outside ``root``."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, path]) != real_root:
        raise BundleError(f"refusing bundle path {rel!r}: it resolves outside the bundle ({path})")
    return path


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


def _open(manifest: Manifest, root: str, manifest_sha256: str) -> Bundle:
    def path(entry) -> str:
        return _inside(root, entry.path)

    where = f"{manifest.name}/{manifest.version}"
    try:
        shards = tuple(faiss.read_index(path(e), MMAP_FLAGS) for e in manifest.of_role("index_shard"))
        with open(path(manifest.of_role("index_meta")[0]), "rb") as f:
            index_meta = json.load(f)
        with open(path(manifest.of_role("encoder")[0]), "rb") as f:
            encoder = json.load(f)
        ranker = ort.InferenceSession(path(manifest.of_role("ranker")[0]), providers=["CPUExecutionProvider"])
        pins = pq.read_table(path(manifest.of_role("pins")[0]), memory_map=True)
    except BundleError:
        raise
    except Exception as e:  # faiss RuntimeError, onnxruntime Fail/InvalidProtobuf, JSON, Arrow errors
        raise BundleError(f"refusing {where}: a file does not open ({type(e).__name__}: {e})") from e
    if not isinstance(index_meta, dict) or not isinstance(encoder, dict):
        raise BundleError(f"refusing {where}: index.json and the encoder JSON must hold JSON objects")
    dims = {s.d for s in shards}
    if len(dims) != 1:
        raise BundleError(f"refusing {where}: shards have different dimensions {sorted(dims)}")
    _check_pins(where, pins.schema)
    return Bundle(manifest, root, shards, index_meta, ranker, encoder, pins, manifest_sha256)


def _check_pins(where: str, schema: pa.Schema) -> None:
    problems = []
    for column, kind in PIN_COLUMNS.items():
        if column not in schema.names:
            problems.append(f"no column {column!r}")
            continue
        t = schema.field(column).type
        ok = pa.types.is_timestamp(t) if kind == "timestamp" else (
            pa.types.is_string(t) or pa.types.is_large_string(t) if kind == "string" else str(t) == kind)
        if not ok:
            problems.append(f"{column} is {t}, expected {kind}")
    if problems:
        raise BundleError(f"refusing {where}: pin metadata {'; '.join(problems)}")


class Loader:
    """Serves one channel of one bundle; ``refresh()`` follows the channel atomically.

    ``check``: called with every bundle before it serves (the first one included), raising when it
    cannot serve (more with :meth:`add_check`). ``failed_refreshes`` counts the refreshes that
    raised, ``last_error`` holds the latest one's error.

    >>> loader = Loader("s3://bucket/serving", "homefeed", s3=S3Options(endpoint_url=...))  # doctest: +SKIP
    >>> loader.bundle.shards[0].search(q, 10)                                              # doctest: +SKIP
    """

    def __init__(self, uri: str, name: str, channel: str = "prod", *, cache_dir: str | None = None,
                 s3: S3Options | None = None, check: Callable[[Bundle], None] | None = None) -> None:
        self.name, self.channel, self.cache_dir = name, channel, cache_dir
        self._store = Store(uri, s3)
        self._refresh_lock = threading.Lock()
        self._checks: list[Callable[[Bundle], None]] = []
        self._refused: tuple[str, str, str] | None = None  # (version, manifest sha, why) of what a check refused
        self.failed_refreshes, self.last_error = 0, None
        self._bundle = _load(self._store, name, channel, None, cache_dir)
        if check is not None:
            self.add_check(check)

    @property
    def bundle(self) -> Bundle:
        """The bundle being served; take one reference per request (a refresh swaps it)."""
        return self._bundle

    @property
    def version(self) -> str:
        return self._bundle.version

    def add_check(self, check: Callable[[Bundle], None]) -> None:
        """Run ``check(bundle)`` on the bundle serving now (its error propagates, and the check is
        not added) and on every version a refresh would switch to."""
        with self._refresh_lock:
            check(self._bundle)
            self._checks.append(check)

    def refresh(self) -> bool:
        """Switch to the channel's current version; True if it changed. The switch happens only
        once the version loaded completely and every check passed. On any failure the old bundle
        keeps serving (never a half-switched loader), the failure is logged and counted
        (``failed_refreshes``, ``last_error``) and a :class:`BundleError` propagates (a failed
        check's error as its cause). A version a check refused is not loaded again: refreshing
        while the channel still points to it raises the same error at once."""
        with self._refresh_lock:
            try:
                pointer = resolve(self._store, self.name, self.channel)
                if (pointer.version, pointer.manifest_sha256) == (self._bundle.version, self._bundle.manifest_sha256):
                    return False  # the same bundle (a name prune freed and a publish reused is not)
                if self._refused is not None and self._refused[:2] == (pointer.version, pointer.manifest_sha256):
                    raise BundleError(self._refused[2])
                new = _load(self._store, self.name, self.channel, None, self.cache_dir)
                for check in self._checks:
                    try:
                        check(new)
                    except Exception as e:
                        traceback.clear_frames(e.__traceback__)  # last_error must not keep what the check built alive
                        why = f"refusing {new.name}/{new.version}: it cannot serve ({type(e).__name__}: {e})"
                        self._refused = (pointer.version, pointer.manifest_sha256, why)
                        raise BundleError(why) from e
            except Exception as e:
                self.failed_refreshes, self.last_error = self.failed_refreshes + 1, e
                log.warning("loader %s/%s: refresh failed, still serving %s: %s", self.name, self.channel,
                            self._bundle.version, e)
                raise
            old, self._bundle = self._bundle, new
            log.info("loader %s/%s: %s -> %s", self.name, self.channel, old.version, new.version)
            return True

    def __repr__(self) -> str:
        return f"Loader({self._store!r}, {self.name}/{self.channel} -> {self._bundle.version})"
