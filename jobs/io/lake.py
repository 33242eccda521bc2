"""Where the lake's files live, for the code that touches them outside Spark.

Spark reads and writes the lake through Hadoop (``s3a://``, configured by
:func:`pinrec.jobs.io.spark.get_spark` from the same :class:`S3Options`). The Python code around
it (listing landing partitions, writing landing files or the synthetic truth, reading a report)
goes through a :class:`Location`: a local folder or an ``s3://`` / ``s3a://`` prefix behind one
fsspec API, so every stage runs unchanged on a laptop and on object storage.

``Location("s3a://lake/landing", s3)`` and ``Location("./var/landing")`` give:

* ``.fs`` / ``.path``: the fsspec filesystem and this location's path in it (``lake/landing``;
  an absolute local path);
* ``.spark``: the URI Spark is given (``s3a://lake/landing``: Hadoop has no ``s3://`` scheme of
  its own; ``file:///abs/path`` locally, never resolved against ``fs.defaultFS``);
* ``/ "name"``: a child location.

S3 goes through ``pyarrow.fs.S3FileSystem`` (as the bundle store does); its endpoint and region
come from :class:`S3Options`, keys from the options or the AWS SDK's chain, never from a URI.
"""
from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import fsspec

from pinrec.export.serving.store import S3Options, arrow_s3

S3_SCHEMES = ("s3", "s3a")


@functools.lru_cache(maxsize=16)
def _s3_fs(s3: S3Options) -> fsspec.AbstractFileSystem:
    from fsspec.implementations.arrow import ArrowFSWrapper

    return ArrowFSWrapper(arrow_s3(s3))


@dataclass(frozen=True)
class Location:
    """A folder of the lake: ``uri`` a local path, ``file://`` URI or ``s3://``/``s3a://bucket/prefix``;
    ``s3`` the connection (None: AWS itself with the SDK's default chain)."""

    uri: str
    s3: S3Options | None = None

    def __post_init__(self) -> None:
        parsed = urlparse(self.uri)
        if "@" in parsed.netloc:
            raise ValueError(f"credentials in a storage URI are refused ({parsed.scheme}://...@...): "
                             "use the AWS environment (AWS_ACCESS_KEY_ID ...)")
        if parsed.scheme in S3_SCHEMES and not parsed.netloc:
            raise ValueError(f"an S3 location needs a bucket: {self.uri!r} (allowed: s3://bucket/prefix)")
        if self.uri.startswith("~"):  # no shell between a config file and here: it would be a folder named '~'
            raise ValueError(f"storage path {self.uri!r} starts with '~', which is not expanded here: write the "
                             "full path (or one relative to the working directory)")
        if parsed.scheme not in ("", "file", *S3_SCHEMES) and len(parsed.scheme) > 1:
            raise ValueError(f"storage URI {self.uri!r}: scheme {parsed.scheme!r} is not supported "
                             f"(allowed: a local path, file://, s3://, s3a://)")

    @property
    def is_s3(self) -> bool:
        return urlparse(self.uri).scheme in S3_SCHEMES

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_s3:
            return _s3_fs(self.s3 or S3Options())
        return fsspec.filesystem("file")

    @property
    def arrow_fs(self):
        """This location's filesystem as pyarrow's own (for ``pyarrow.dataset``/``parquet``)."""
        from pyarrow import fs as pafs

        return self.fs.fs if self.is_s3 else pafs.LocalFileSystem()

    @property
    def path(self) -> str:
        """This location in :attr:`fs`: ``bucket/prefix`` on S3, an absolute path locally. What
        follows the scheme is taken as it is written (``?`` and ``#`` of a file name under the
        location are part of the name, as Hadoop's ``Path`` takes them, not a query or fragment)."""
        scheme = urlparse(self.uri).scheme
        if self.is_s3:
            return self.uri[len(scheme) + len("://"):].rstrip("/")
        local = self.uri[len("file://"):] if scheme == "file" else self.uri
        return os.path.abspath(local)

    @property
    def spark(self) -> str:
        """The URI Spark reads and writes this location at: ``s3a://bucket/prefix``, or ``file://`` and
        the absolute path (a scheme-less path would be resolved against Hadoop's ``fs.defaultFS``,
        HDFS on a YARN node). The path follows the scheme as written, not percent-encoded: Hadoop's
        ``Path`` takes it literally."""
        return f"s3a://{self.path}" if self.is_s3 else f"file://{self.path}"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def __truediv__(self, part: str) -> Location:
        part = str(part).strip("/")
        if not part or {"", ".", ".."} & set(part.split("/")):
            raise ValueError(f"not a relative name inside {self.uri!r}: {part!r}")
        return Location(f"{self.uri.rstrip('/')}/{part}", self.s3)

    def __str__(self) -> str:
        return self.uri

    # -- file operations (what the jobs need; anything else: .fs / .path) -------------------
    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def entries(self) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` of the direct children, sorted; [] when this is no folder."""
        if not self.is_dir():
            return []
        out = []
        for info in self.fs.ls(self.path, detail=True):
            name = posixpath.basename(info["name"].rstrip("/"))
            if name:
                out.append((name, info["type"] == "directory"))
        return sorted(out)

    def files_below(self) -> list[Location]:
        """Every file under this folder, at any depth, sorted."""
        if not self.is_dir():
            return []
        root = self.path.rstrip("/") + "/"
        return [self / name[len(root):] for name in sorted(self.fs.find(self.path)) if name.startswith(root)]

    def mkdir(self) -> None:
        """Create the folder (a no-op on S3, whose folders are key prefixes)."""
        if not self.is_s3:
            os.makedirs(self.path, exist_ok=True)

    def write_bytes(self, data: bytes) -> None:
        """Write the whole object at once: on S3 one PUT; locally a temporary file renamed into
        place, so a reader never sees half a file."""
        if self.is_s3:
            with self.fs.open(self.path, "wb") as f:
                f.write(data)
            return
        folder, name = os.path.split(self.path)
        os.makedirs(folder, exist_ok=True)
        # a hidden name ('.'), so a reader of the folder (ingestion skips hidden names) never takes a
        # temporary a crash left behind for data; removed when the write fails
        tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def read_bytes(self) -> bytes:
        with self.fs.open(self.path, "rb") as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def delete(self) -> None:
        """Remove this file or folder (recursively); absent is fine."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


def check_storage_uri(uri: str) -> None:
    """Raises ValueError when ``uri``, the root of a lake folder (a ``storage.*`` setting, a
    library caller's warehouse), would be read differently by the tools that meet it:

    * ``?``, ``#`` or ``%`` in an ``s3://``, ``s3a://`` or ``file://`` URI: URL parsers (boto3,
      MLflow, pinrec's bundle store) cut a query or fragment off, or decode ``%``, where Hadoop
      takes the characters literally (``s3://lake/wh#2`` would put every table at ``lake/wh``).
      A plain local path may hold them (Spark and Delta write and read such a folder as named);
    * an empty, ``.`` or ``..`` segment in an S3 URI (``s3://lake//landing``, ``s3://lake/a/../b``):
      Hadoop normalises it away, pyarrow refuses the empty one and keeps the dots as key names.
      Local paths and ``file://`` URIs are normalised for Spark and Python alike.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", *S3_SCHEMES):
        return
    if bad := "".join(c for c in "?#%" if c in uri):
        raise ValueError(f"storage URI {uri!r} holds {' '.join(map(repr, bad))}, which URL parsers and Hadoop read "
                         "differently: name the folder without them (a plain local path may hold them)")
    if parsed.scheme in S3_SCHEMES:
        segments = uri[len(parsed.scheme) + len("://"):].rstrip("/").split("/")[1:]  # after the bucket
        if {"", ".", ".."} & set(segments):
            raise ValueError(f"storage URI {uri!r} has an empty, '.' or '..' path segment, which Hadoop normalises "
                             f"and pyarrow does not: write the prefix plainly (allowed: s3://bucket/prefix/...)")


class LakeUnreachableError(OSError):
    """An S3 bucket of the lake is missing, or its server refuses or cannot be reached (:func:`check_buckets`)."""


#: what the S3 server of every location comes from, for the messages of :func:`check_buckets`
ENDPOINT_SETTING = "storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)"
KEY_VARIABLES = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the instance role)"


def check_buckets(locations: Mapping[str, Location], timeout_s: float = 5.0) -> None:
    """Raises :class:`LakeUnreachableError` naming the setting (the keys of ``locations``), the
    bucket, the S3 server and what to check when a bucket of an S3 location does not exist, or its
    server refuses these keys or does not answer within ``timeout_s`` (two attempts): what would
    otherwise surface as a JVM stack trace from Spark's first ``s3a://`` access, after minutes of
    retries. One ``HeadBucket`` per (server, bucket); when that is refused, a listing of the
    location itself (a policy may grant a prefix but not ``HeadBucket``). Local locations are skipped."""
    from pyarrow import fs as pafs

    buckets: dict[tuple[S3Options, str], list[tuple[str, Location]]] = {}
    for name, loc in locations.items():
        if loc.is_s3:
            buckets.setdefault((loc.s3 or S3Options(), loc.path.split("/")[0]), []).append((name, loc))
    for (s3, bucket), named in buckets.items():
        fs = arrow_s3(s3, connect_timeout=timeout_s, request_timeout=timeout_s,
                      retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2))
        where = f"bucket {bucket!r} ({', '.join(n for n, _ in named)}) on {s3.endpoint_url or 'AWS S3'}"
        try:
            found = fs.get_file_info(bucket).type != pafs.FileType.NotFound
        except OSError as e:
            if "ACCESS_DENIED" not in str(e):
                raise LakeUnreachableError(f"{where} cannot be reached: {e}. Check {ENDPOINT_SETTING} and that the "
                                           f"server runs (keys: {KEY_VARIABLES})") from None
            try:  # HeadBucket refused: these keys may still list the location's prefix
                for _, loc in named:
                    fs.get_file_info(pafs.FileSelector(loc.path, allow_not_found=True))
            except OSError as e:
                raise LakeUnreachableError(f"{where} refused access: {e}. Check the keys in {KEY_VARIABLES}, "
                                           f"storage.s3_region and {ENDPOINT_SETTING}") from None
            found = True
        if not found:
            raise LakeUnreachableError(f"{where} does not exist: create it, or correct the bucket of "
                                       f"{' / '.join(n for n, _ in named)} or {ENDPOINT_SETTING}")


def as_location(where: str | Path | Location, s3: S3Options | None = None) -> Location:
    """``where`` as a :class:`Location` (a string or path gets ``s3``); a string or path is
    checked by :func:`check_storage_uri` (ValueError)."""
    if isinstance(where, Location):
        return where
    check_storage_uri(str(where))
    return Location(str(where), s3)


def spark_path(where: str | Path | Location) -> str:
    """The path Spark is given for ``where`` (``s3://`` becomes ``s3a://``)."""
    return as_location(where).spark
