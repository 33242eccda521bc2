"""The bundle manifest and the channel pointer, shared by the publisher and the serving loader.

A bundle version is a folder ``bundles/<name>/<version>/`` in a store (see :mod:`pinrec.export.serving.store`):
index shards + ``index/index.json``, the ONNX ranker and its encoder JSON, the pin metadata
(Parquet) and ``manifest.json``, written last. A channel (``channels/<name>/<channel>``) is a small
JSON pointer to one version, moved only by compare-and-swap.

The public names of three modules, importable from here as before they were split out (the loader,
the publisher, the jobs and the tests import them from this module), and a fourth with only private
helpers:

- :mod:`pinrec.schemas.bundle_names`: :class:`ManifestError`, :data:`MANIFEST_FILE`, the rules for
  names, channel names and paths (:func:`is_name`, :func:`check_name`, :func:`is_channel_name`,
  :func:`check_channel`, :func:`check_relpath`, :data:`RESERVED_CHANNEL_SUFFIX`,
  :data:`RESERVED_CHANNEL_PART`) and where a version and a channel live (:func:`bundle_prefix`,
  :func:`channel_key`);
- :mod:`pinrec.schemas.manifest_parts`: the parts of a manifest (:class:`FileEntry` with its
  :data:`ROLES`, :class:`Metrics`, :class:`Lineage`, :class:`Blessing`) and :data:`PIN_COLUMNS`;
- :mod:`pinrec.schemas.bundle_manifest`: :class:`Manifest`, :class:`ChannelPointer`,
  :data:`FORMAT_VERSION`;
- :mod:`pinrec.schemas.manifest_json`: the strict JSON both are written and read with.

Imports with the base install only (the loader uses it).
"""
from __future__ import annotations

from .bundle_manifest import FORMAT_VERSION, ChannelPointer, Manifest
from .bundle_names import (
    MANIFEST_FILE,
    RESERVED_CHANNEL_PART,
    RESERVED_CHANNEL_SUFFIX,
    ManifestError,
    bundle_prefix,
    channel_key,
    check_channel,
    check_name,
    check_relpath,
    is_channel_name,
    is_name,
)
from .manifest_parts import PIN_COLUMNS, ROLES, Blessing, FileEntry, Lineage, Metrics

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "PIN_COLUMNS",
    "RESERVED_CHANNEL_PART",
    "RESERVED_CHANNEL_SUFFIX",
    "ROLES",
    "Blessing",
    "ChannelPointer",
    "FileEntry",
    "Lineage",
    "Manifest",
    "ManifestError",
    "Metrics",
    "bundle_prefix",
    "channel_key",
    "check_channel",
    "check_name",
    "check_relpath",
    "is_channel_name",
    "is_name",
]
