"""A bundle store: files through fsspec, plus the compare-and-swap that moves channel pointers.

``Store(uri)`` is rooted at a local directory (default; ``file://`` or a plain path) or at
``s3://bucket/prefix``. S3 goes through ``pyarrow.fs.S3FileSystem`` wrapped as an fsspec
filesystem, so reading a bundle needs the base install only; credentials come from
:class:`S3Options` (filled by the caller's ``main()`` from its config/environment) or, when
omitted, from the AWS SDK's own chain (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``...). They are never part of a repr, a log line or a manifest.

Atomic primitives (what publishing and rollback rest on):

* :meth:`Store.put_if_absent` — create an object only if it does not exist: S3 ``PutObject``
  with ``If-None-Match: *``; locally a temporary file hard-linked into place (``os.link`` fails
  when the name exists), so the object appears complete or not at all;
* :meth:`Store.read_pointer` / :meth:`Store.swap` — compare-and-swap of a small object: S3
  ``PutObject`` with ``If-Match: <ETag>`` (or ``If-None-Match: *`` when absent); locally an
  exclusive ``flock`` on ``<key>.lock`` around read-compare-``os.replace`` (the kernel releases the
  lock when a killed publisher dies; readers never need it since ``os.replace`` is atomic). Only a
  swap writes ``<key>.tmp-*`` beside a pointer, under that lock, so the next swap removes what a
  killed one left.

A local ``put_file``/``put_bytes`` never rewrites a file in place (a new file renamed over the
old, left read-only): a reader that memory-mapped the old one keeps its bytes.

Conditional writes on S3 use boto3 (imported only then; the ``dev`` and ``pipeline`` extras).
Before its first one, a store checks once per process that the server refuses a write whose
condition fails (:meth:`Store.verify_conditional_writes`): some S3-compatible servers ignore the
headers, and on them a compare-and-swap would silently let two publishers win.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

import fsspec

from pinrec.schemas.manifest import (
    MANIFEST_FILE,
    ChannelPointer,
    Manifest,
    ManifestError,
    bundle_prefix,
    channel_key,
    check_name,
    check_relpath,
    is_channel_name,
)

_CHUNK = 1 << 20


def endpoint_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an S3 endpoint (None: nothing): it must be ``http(s)://host[:port]``.
    A path is refused (pyarrow keeps only host:port, s3a and boto3 keep the path: two clients would
    talk to different places), and so are ``user:password@`` (keys belong to the AWS variables, and
    the URL is printed and exported to MLflow), a query and a fragment. Never repeats a password."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if "@" in parsed.netloc:
        return "credentials (user:password@) are refused: give keys as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    if not parsed.hostname:
        return "it names no host"
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.params:
        return "a path, query or fragment is refused (pyarrow would drop it, s3a and boto3 keep it): give host[:port]"
    try:
        parsed.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError:
        return "its port is not a number from 0 to 65535"
    return None


def shown_url(url: str) -> str:
    """``url`` as an error may print it: a ``user:password@`` part replaced by ``***@``."""
    parsed = urlparse(url)
    return parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]).geturl() if "@" in parsed.netloc else url


@dataclass(frozen=True)
class S3Options:
    """Connection to an S3 server. ``endpoint_url`` like ``http://127.0.0.1:8333`` (None: AWS);
    keys None = the SDK's default credential chain. The keys never appear in ``repr``."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("S3Options: give both access_key and secret_key, or neither")
        if self.endpoint_url is not None and (problem := endpoint_problem(self.endpoint_url)):
            raise ValueError(f"S3Options.endpoint_url must be http(s)://host[:port], got {shown_url(self.endpoint_url)!r}: "
                             f"{problem}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Options:
        """For ``main()``: the AWS variables (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``,
        ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
        pyarrow ignores the endpoint variables, hence this."""
        return cls(endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   access_key=env.get("AWS_ACCESS_KEY_ID") or None, secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None)


def arrow_s3(opts: S3Options, **options):
    """pyarrow's S3 filesystem for ``opts`` (endpoint, region; keys, else the SDK's chain);
    ``options``: more ``S3FileSystem`` arguments (timeouts, a retry strategy)."""
    from pyarrow import fs as pafs

    kwargs: dict = {"region": opts.region, **options}
    if opts.endpoint_url:
        endpoint = urlparse(opts.endpoint_url)
        kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
    if opts.access_key is not None:
        kwargs.update(access_key=opts.access_key, secret_key=opts.secret_key)
    return pafs.S3FileSystem(**kwargs)


class PointerConflict(RuntimeError):
    """The compare-and-swap lost: someone else moved the pointer first."""


class ConditionalWritesIgnored(RuntimeError):
    """The S3 server accepted a write whose condition (``If-None-Match`` / ``If-Match``) failed: it
    ignores conditional writes, so a compare-and-swap on it could silently lose a pointer move."""


#: S3 stores (:attr:`Store.identity`) whose conditional writes this process has checked
_VERIFIED: set[str] = set()
_PROBE = "_pinrec_probe"


def sha256_stream(chunks: Iterator[bytes]) -> tuple[int, str]:
    """(size, sha256 hex) of a stream of byte chunks."""
    h, n = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return n, h.hexdigest()


def _read_chunks(f) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def file_digest(path: str) -> tuple[int, str]:
    """(size, sha256 hex) of a local file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        return sha256_stream(_read_chunks(f))


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
        self._client = None  # boto3, created on the first conditional write to S3
        self._client_lock = threading.Lock()
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
                _replace_read_only(path, _read_chunks(src))
        else:
            self.fs.put_file(local_path, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.is_local:
            _replace_read_only(path, iter([data]))
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
            for chunk in _read_chunks(src):
                h.update(chunk)
                n += len(chunk)
                dst.write(chunk)
        return n, h.hexdigest()

    def digest(self, key: str) -> tuple[int, str]:
        """(size, sha256) of the stored object, read back from the store."""
        with self.fs.open(self.path(key), "rb") as f:
            return sha256_stream(_read_chunks(f))

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
        """Raise :class:`ConditionalWritesIgnored` unless this S3 server refuses writes whose
        condition fails; nothing to check on a local store. Once per store and process (every
        atomic primitive calls it first): creates ``_pinrec_probe/<uuid>`` with ``If-None-Match: *``,
        writes it again with ``If-None-Match: *`` and with a wrong ``If-Match`` and deletes it with a
        wrong ``If-Match`` (all three must be refused with 412), then deletes it: five requests. A server that ignores the conditions
        would let two publishers both win a pointer move; some S3-compatible servers do."""
        if not self.is_s3 or self.identity in _VERIFIED:
            return
        key = f"{_PROBE}/{uuid.uuid4().hex}"
        try:
            if self._s3_put(key, b"created", if_none_match=True) is None:
                raise ConditionalWritesIgnored(f"{self!r}: the S3 server refused to create a new object with "
                                               "If-None-Match: * (412 on a fresh key): its conditional writes "
                                               "cannot be relied on")
            ignored = [cond for cond, kwargs in (("If-None-Match: *", {"if_none_match": True}),
                                                 ("If-Match", {"if_match": '"' + "0" * 32 + '"'}))
                       if self._s3_put(key, b"must be refused", **kwargs) is not None]
            if not self._s3_delete_refused(key, '"' + "0" * 32 + '"'):  # an undone first move deletes this way
                ignored.append("DELETE If-Match")
        finally:
            self.delete(key)
        if ignored:
            endpoint = (self.s3 or S3Options()).endpoint_url or "AWS"
            raise ConditionalWritesIgnored(
                f"{self!r}: the S3 server at {endpoint} accepted writes whose {' and '.join(ignored)} condition "
                "failed, so it ignores conditional writes. Publishing, rollback and prune need them to move "
                "channel pointers safely (AWS S3, MinIO and SeaweedFS honour them; docs/deploy.md). Nothing "
                "was changed.")
        _VERIFIED.add(self.identity)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` holding ``data`` unless it exists; True when this call created it."""
        if self.is_s3:
            self.verify_conditional_writes()
            return self._s3_put(key, data, if_none_match=True) is not None
        path = self._local_only(key)
        _makedirs_durable(os.path.dirname(path))
        tmp = _write_tmp(path, data)
        try:
            os.link(tmp, path)
            _fsync_dir(os.path.dirname(path))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def read_pointer(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, token) of a pointer object, (None, None) when absent; pass the token to :meth:`swap`."""
        if self.is_s3:
            client, bucket, obj = self._boto(key)
            try:
                resp = client.get_object(Bucket=bucket, Key=obj)
            except client.exceptions.NoSuchKey:
                if self.fs.isdir(self.path(key)):
                    raise IsADirectoryError(f"{key} is a folder") from None
                return None, None
            return resp["Body"].read(), resp["ETag"]
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
            new = (self._s3_put(key, data, if_none_match=True) if token is None
                   else self._s3_put(key, data, if_match=token))
        else:
            new = hashlib.sha256(data).hexdigest() if self._local_swap(self._local_only(key), data, token) else None
        if new is None:
            raise PointerConflict(f"{key} moved since it was read; compare-and-swap lost")
        return new

    def delete_pointer(self, key: str, token: str) -> None:
        """Remove the pointer ``key`` if it still is what ``token`` (from :meth:`swap` or
        :meth:`read_pointer`) was read from; else raise :class:`PointerConflict` and leave it.
        On S3 a conditional ``DeleteObject`` (``If-Match``)."""
        if self.is_s3:
            from botocore.exceptions import ClientError

            self.verify_conditional_writes()
            client, bucket, obj = self._boto(key)
            try:
                client.delete_object(Bucket=bucket, Key=obj, IfMatch=token)
            except ClientError as e:
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status in (412, 409) or e.response.get("Error", {}).get("Code") in (
                        "PreconditionFailed", "ConditionalRequestConflict"):
                    raise PointerConflict(f"{key} moved since it was read; compare-and-delete lost") from None
                raise
            return
        if not self._local_swap(self._local_only(key), None, token):
            raise PointerConflict(f"{key} moved since it was read; compare-and-delete lost")

    def _s3_delete_refused(self, key: str, etag: str) -> bool:
        """Whether the server refuses (412) deleting ``key`` on a wrong ``If-Match``."""
        from botocore.exceptions import ClientError

        client, bucket, obj = self._boto(key)
        try:
            client.delete_object(Bucket=bucket, Key=obj, IfMatch=etag)
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (412, 409) or e.response.get("Error", {}).get("Code") in (
                    "PreconditionFailed", "ConditionalRequestConflict"):
                return True
            raise
        return False

    def _local_only(self, key: str) -> str:
        if not self.is_local:
            raise ValueError(f"atomic writes are implemented for local and s3:// stores only, not {self.uri!r}")
        return self.path(key)

    @staticmethod
    def _local_swap(path: str, data: bytes | None, token: str | None) -> bool:
        """Under the pointer's lock: if its sha256 is ``token`` (None: absent), write ``data``
        (None: delete it); False when it is not."""
        import fcntl

        folder, base = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        with open(path + ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            for leftover in os.listdir(folder):  # only swaps write these, under this lock: a dead one's
                if leftover.startswith(base + ".tmp-"):
                    try:
                        os.unlink(os.path.join(folder, leftover))
                    except FileNotFoundError:
                        pass
            try:
                with open(path, "rb") as f:
                    current = hashlib.sha256(f.read()).hexdigest()
            except FileNotFoundError:
                current = None
            if current != token:
                return False
            if data is None:
                os.unlink(path)
            else:
                os.replace(_write_tmp(path, data), path)
            _fsync_dir(os.path.dirname(path))
            return True  # the lock is released when the file closes (or the process dies)

    def _boto(self, key: str):
        with self._client_lock:  # boto3 sessions are not thread-safe; clients are
            if self._client is None:
                import boto3  # only for conditional writes on S3

                opts = self.s3 or S3Options()
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=opts.endpoint_url, region_name=opts.region,
                    aws_access_key_id=opts.access_key, aws_secret_access_key=opts.secret_key)
        bucket, _, obj = self.path(key).partition("/")
        return self._client, bucket, obj

    def _s3_put(self, key: str, data: bytes, *, if_none_match: bool = False,
                if_match: str | None = None) -> str | None:
        """The new object's ETag, None when the condition failed."""
        from botocore.exceptions import ClientError

        client, bucket, obj = self._boto(key)
        cond = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": if_match}
        try:
            resp = client.put_object(Bucket=bucket, Key=obj, Body=data, **cond)
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (412, 409) or e.response.get("Error", {}).get("Code") in (
                    "PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise
        return resp["ETag"]


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def mtime(info: dict) -> dt.datetime:
    """The last-modified time (UTC) in an fsspec info dict (local: a float; pyarrow: a datetime)."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _replace_read_only(path: str, chunks: Iterator[bytes]) -> None:
    """Write a new file and rename it over ``path``: the old inode, if any, is never touched. Durable
    when it returns (file, its folder and any folder it created synced): a bundle's manifest, written
    after its files, must never outlive them in a crash."""
    _makedirs_durable(os.path.dirname(path))
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.writelines(chunks)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_tmp(path: str, data: bytes) -> str:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _makedirs_durable(folder: str) -> None:
    """``os.makedirs`` whose new folders' entries are synced into their parents."""
    missing, d = [], folder
    while d and not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    os.makedirs(folder, exist_ok=True)
    for created in reversed(missing):
        _fsync_dir(os.path.dirname(created))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the bundle layout on top of a store ------------------------------------------------------
def read_channel(store: Store, name: str, channel: str) -> ChannelPointer | None:
    """The channel's pointer, None when the channel was never set (a plain read: base install);
    :class:`ManifestError` when it is malformed, a folder, or the pointer of another channel."""
    key = channel_key(name, channel)
    try:
        return _pointer(store.get_bytes(key), name, channel)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ManifestError(f"{key} is a folder, not a channel pointer") from None


def read_channel_for_update(store: Store, name: str, channel: str) -> tuple[ChannelPointer | None, str | None]:
    """The channel's pointer and the compare-and-swap token to move it with :meth:`Store.swap`."""
    key = channel_key(name, channel)
    try:
        data, token = store.read_pointer(key)
    except IsADirectoryError:
        raise ManifestError(f"{key} is a folder, not a channel pointer") from None
    return (None, None) if data is None else (_pointer(data, name, channel), token)


def _pointer(data: bytes, name: str, channel: str) -> ChannelPointer:
    pointer = ChannelPointer.from_json(data)
    if (pointer.name, pointer.channel) != (name, channel):
        raise ManifestError(f"{channel_key(name, channel)} holds the pointer of {pointer.name}/{pointer.channel}; "
                            "refusing a pointer copied from another bundle or channel")
    return pointer


def list_channels(store: Store, name: str) -> list[str]:
    """Channels of bundle ``name``: exactly the entries that are valid channel names
    (:func:`~pinrec.schemas.manifest.is_channel_name`, the rule that validates them), so no lock or
    temporary file is listed and no channel is hidden."""
    return [c for c in store.list_dir(f"channels/{check_name('bundle name', name)}") if is_channel_name(c)]


def read_manifest(store: Store, name: str, version: str) -> tuple[Manifest, bytes]:
    """The parsed manifest of a version and its raw bytes; ``FileNotFoundError`` when the version
    has no manifest (never completed, or being deleted), :class:`ManifestError` when it is bad."""
    key = bundle_prefix(name, version) + MANIFEST_FILE
    try:
        data = store.get_bytes(key)
    except IsADirectoryError:
        raise ManifestError(f"{key} is a folder, not a manifest") from None
    manifest = Manifest.from_json(data)
    if (manifest.name, manifest.version) != (name, version):
        raise ManifestError(f"manifest at {bundle_prefix(name, version)} describes "
                            f"{manifest.name}/{manifest.version}")
    return manifest, data
