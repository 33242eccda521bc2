"""A bundle store: files through fsspec, plus the compare-and-swap that moves channel pointers.

The public names of five modules, importable from here as before they were split out (the build
side, the jobs and notebooks import them from this module), and a sixth that only
``bundle_store`` uses:

- :mod:`pinrec.export.serving.s3_options`: :class:`S3Options`, :func:`arrow_s3`, the endpoint's
  checks (:func:`endpoint_problem`, :func:`shown_url`);
- :mod:`pinrec.export.serving.digests`: :func:`sha256_stream`, :func:`file_digest`;
- :mod:`pinrec.export.serving.bundle_store`: :class:`Store`, :class:`PointerConflict`, :func:`mtime`;
- :mod:`pinrec.export.serving.local_writes`: durable, atomic writes of a local store;
- :mod:`pinrec.export.serving.s3_conditional`: conditional writes on S3 (boto3), and
  :class:`ConditionalWritesIgnored` when a server ignores them;
- :mod:`pinrec.export.serving.bundle_layout`: channel pointers and manifests on a store
  (:func:`read_channel`, :func:`read_channel_for_update`, :func:`list_channels`, :func:`read_manifest`).

Base install only: fsspec and pyarrow (boto3 is imported lazily, for conditional writes on S3).
"""
from __future__ import annotations

from .bundle_layout import (
    list_channels,
    read_channel,
    read_channel_for_update,
    read_manifest,
)
from .bundle_store import PointerConflict, Store, mtime
from .digests import file_digest, sha256_stream
from .s3_conditional import ConditionalWritesIgnored
from .s3_options import S3Options, arrow_s3, endpoint_problem, shown_url

__all__ = [
    "ConditionalWritesIgnored",
    "PointerConflict",
    "S3Options",
    "Store",
    "arrow_s3",
    "endpoint_problem",
    "file_digest",
    "list_channels",
    "mtime",
    "read_channel",
    "read_channel_for_update",
    "read_manifest",
    "sha256_stream",
    "shown_url",
]
