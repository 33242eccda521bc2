"""A bundle store: files through fsspec, plus the compare-and-swap that moves channel pointers.

``Store(uri)`` is rooted at a local directory (default; ``file://`` or a plain path) or at
``s3://bucket/prefix``. S3 goes through ``pyarrow.fs.S3FileSystem`` wrapped as an fsspec
filesystem, so reading a bundle needs the base install only; credentials come from
:class:`~pinrec.export.serving.s3_options.S3Options` or the AWS SDK's own chain.

Atomic primitives (what publishing and rollback rest on):

* :meth:`Store.put_if_absent` — create an object only if it does not exist: S3 ``PutObject``
  with ``If-None-Match: *``; locally a temporary file hard-linked into place;
* :meth:`Store.read_pointer` / :meth:`Store.swap` — compare-and-swap of a small object: S3
  ``PutObject`` with ``If-Match: <ETag>`` (or ``If-None-Match: *`` when absent); locally an
  exclusive ``flock`` around read-compare-``os.replace``.

A local ``put_file``/``put_bytes`` never rewrites a file in place (a new file renamed over the
old, left read-only): a reader that memory-mapped the old one keeps its bytes. The local side is
:mod:`pinrec.export.serving.local_writes`, the S3 side (boto3, and the check that the server honours
conditional writes) :mod:`pinrec.export.serving.s3_conditional`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from urllib.parse import urlparse

import fsspec

from pinrec.schemas.manifest import check_relpath

from .digests import read_chunks, sha256_stream
from .local_writes import link_if_absent, replace_read_only, swap_locked
from .s3_conditional import S3Conditional
from .s3_options import S3Options, arrow_s3

__all__ = ["PointerConflict", "Store", "mtime"]


class PointerConflict(RuntimeError):
    """The compare-and-swap lost: someone else moved the pointer first."""


class Store:
    """Files under one root URI, addressed by relative POSIX keys (``bundles/x/v1/manifest.json``)."""

    def __init__(self, uri: str, s3: S3Options | None = None) -> None:
        if isinstance(uri, os.PathLike):
            uri = os.fspath(uri)
        if not isinstance(uri, str) or not uri.strip("/"):
            raise ValueError(f"a store URI must be a non-empty path or s3:// URI, got {uri!r}")
        self.uri = uri.rstrip("/")
        if "@" in urlparse(self.uri).netloc:
            raise ValueError("credentials in a store URI are refused: pass S3Options or use the AWS environment")
        self.s3 = s3
        self._s3_writes = S3Conditional(self)  # its boto3 client is created on the first conditional write
        parsed = urlparse(self.uri)
        self.is_s3 = parsed.scheme in ("s3", "s3a")
        if self.is_s3:
            from fsspec.implementations.arrow import ArrowFSWrapper

            if not parsed.netloc:
                raise ValueError(f"S3 store URI needs a bucket: {uri!r}")
            self.root = f"{parsed.netloc}{parsed.path}".rstrip("/")
            self.fs = ArrowFSWrapper(arrow_s3(s3 or S3Options()))
        else:
            self.fs, root = fsspec.core.url_to_fs(self.uri)
            self.root = root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    @property
    def identity(self) -> str:
        """16 hex digits naming what this store holds: its kind, endpoint and root (bucket/prefix
        or absolute folder), never its keys. The loader's download cache is keyed by it."""
        if self.is_s3:
            where = f"s3\n{(self.s3 or S3Options()).endpoint_url or ''}\n{self.root}"
        else:
            where = f"{'+'.join(sorted(_protocols(self.fs)))}\n{self.root}"
        return hashlib.sha256(where.encode()).hexdigest()[:16]

    # -- paths ------------------------------------------------------------------------------
    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (validated: no ``..``, no absolute keys)."""
        return f"{self.root}/{check_relpath(key.rstrip('/'))}"

    def local_path(self, key: str) -> str:
        """The OS path of ``key`` on a local store (to open or memory-map in place)."""
        if not self.is_local:
            raise ValueError(f"{self!r} is not a local store")
        return self.path(key)

    # -- plain objects ----------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def put_file(self, local_path: str, key: str) -> None:
        path = self.path(key)
        if self.is_local:
            with open(local_path, "rb") as src:
                replace_read_only(path, read_chunks(src))
        else:
            self.fs.put_file(local_path, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.is_local:
            replace_read_only(path, iter([data]))
        else:
            self.fs.pipe_file(path, data)

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when absent, ``IsADirectoryError`` when
        ``key`` is a folder (on S3: objects exist under ``key/``)."""
        path = self.path(key)
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            if self.fs.isdir(path):
                raise IsADirectoryError(f"{key} is a folder") from None
            raise

    def modified(self, key: str) -> dt.datetime | None:
        """When the object was last written (UTC), None when absent."""
        try:
            return mtime(self.fs.info(self.path(key)))
        except FileNotFoundError:
            return None

    def get_file(self, key: str, local_path: str) -> tuple[int, str]:
        """Download ``key`` to ``local_path``, hashing on the way; returns (size, sha256)."""
        h, n = hashlib.sha256(), 0
        with self.fs.open(self.path(key), "rb") as src, open(local_path, "wb") as dst:
            for chunk in read_chunks(src):
                h.update(chunk)
                n += len(chunk)
                dst.write(chunk)
        return n, h.hexdigest()

    def digest(self, key: str) -> tuple[int, str]:
        """(size, sha256) of the stored object, read back from the store."""
        with self.fs.open(self.path(key), "rb") as f:
            return sha256_stream(read_chunks(f))

    def list_dir(self, key: str) -> list[str]:
        """Names directly under ``key`` (files and folders); [] when it does not exist."""
        path = self.path(key)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries} - {""})

    def list_files(self, key: str) -> dict[str, dict]:
        """Every file under ``key``, recursively: relative key -> fsspec info (size, mtime...)."""
        base = self.path(key)
        found = self.fs.find(base, detail=True)
        return {name[len(base) + 1:]: info for name, info in found.items() if name.startswith(base + "/")}

    def remove_empty_folders(self, key: str) -> None:
        """Remove the folders under ``key`` (and ``key``) that hold no file; never a file."""
        path = self.path(key)
        if self.is_local:
            for folder, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(folder)  # fails on a folder that is not empty: what a newcomer wrote stays
                except OSError:
                    pass
        elif not self.list_files(key):
            self.delete(key)  # some S3 servers keep listing a folder after its last object went

    def remove_stale_tmp(self, key: str, before: dt.datetime) -> list[str]:
        """Delete the ``*.tmp-*`` files directly in folder ``key`` last written before ``before``
        (what a killed writer left); returns their names."""
        gone = []
        for rel, info in sorted(self.list_files(key).items()):
            if "/" not in rel and ".tmp-" in rel and mtime(info) < before:
                self.delete(f"{key}/{rel}")
                gone.append(rel)
        return gone

    def delete(self, key: str) -> None:
        """Remove ``key`` (a file or a whole folder); absent is fine."""
        path = self.path(key)
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:  # S3 servers may list a folder whose objects are all gone
            pass

    # -- atomic primitives ------------------------------------------------------------------
    def verify_conditional_writes(self) -> None:
        """Raise :class:`~pinrec.export.serving.s3_conditional.ConditionalWritesIgnored` unless this S3
        server refuses writes whose condition fails; nothing to check on a local store. Once per store
        and process (every atomic primitive calls it first): creates ``_pinrec_probe/<uuid>`` with
        ``If-None-Match: *``, writes it again with ``If-None-Match: *`` and with a wrong ``If-Match``
        and deletes it with a wrong ``If-Match`` (all three must be refused with 412), then deletes
        it: five requests. A server that ignores the conditions would let two publishers both win a
        pointer move; some S3-compatible servers do."""
        if self.is_s3:
            self._s3_writes.verify()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` holding ``data`` unless it exists; True when this call created it."""
        if self.is_s3:
            self.verify_conditional_writes()
            return self._s3_writes.put(key, data, if_none_match=True) is not None
        return link_if_absent(self._local_only(key), data)

    def read_pointer(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, token) of a pointer object, (None, None) when absent; pass the token to :meth:`swap`."""
        if self.is_s3:
            return self._s3_writes.read(key)
        try:
            data = self.get_bytes(key)
        except FileNotFoundError:
            return None, None
        return data, hashlib.sha256(data).hexdigest()

    def swap(self, key: str, data: bytes, token: str | None) -> str:
        """Replace the pointer ``key`` by ``data`` if it still is what ``token`` was read from
        (None: if it still does not exist); else raise :class:`PointerConflict`. Returns the token
        of what it wrote (to move it again, e.g. back)."""
        if self.is_s3:
            self.verify_conditional_writes()
            new = (self._s3_writes.put(key, data, if_none_match=True) if token is None
                   else self._s3_writes.put(key, data, if_match=token))
        else:
            new = hashlib.sha256(data).hexdigest() if swap_locked(self._local_only(key), data, token) else None
        if new is None:
            raise PointerConflict(f"{key} moved since it was read; compare-and-swap lost")
        return new

    def delete_pointer(self, key: str, token: str) -> None:
        """Remove the pointer ``key`` if it still is what ``token`` (from :meth:`swap` or
        :meth:`read_pointer`) was read from; else raise :class:`PointerConflict` and leave it.
        On S3 a conditional ``DeleteObject`` (``If-Match``)."""
        if self.is_s3:
            self.verify_conditional_writes()
            deleted = self._s3_writes.delete(key, token)
        else:
            deleted = swap_locked(self._local_only(key), None, token)
        if not deleted:
            raise PointerConflict(f"{key} moved since it was read; compare-and-delete lost")

    def _local_only(self, key: str) -> str:
        if not self.is_local:
            raise ValueError(f"atomic writes are implemented for local and s3:// stores only, not {self.uri!r}")
        return self.path(key)


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def mtime(info: dict) -> dt.datetime:
    """The last-modified time (UTC) in an fsspec info dict (local: a float; pyarrow: a datetime)."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)
