"""Names and paths of a bundle in a store, and :class:`ManifestError`, which every check of a manifest raises.

A bundle version is a folder ``bundles/<name>/<version>/`` (:func:`bundle_prefix`) holding its files and
``manifest.json`` (:data:`MANIFEST_FILE`); a channel is a pointer at ``channels/<name>/<channel>``
(:func:`channel_key`). Paths are POSIX, relative to the version folder, made of ``[A-Za-z0-9._-]``
components and never ``.`` / ``..`` (:func:`check_relpath`). Channel names follow :func:`is_channel_name`
(never like the store's ``.lock`` / ``.tmp-`` files), for writing and for listing alike.

Base install only (the standard library).
"""
from __future__ import annotations

import re

MANIFEST_FILE = "manifest.json"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PART = re.compile(r"[A-Za-z0-9._-]{1,255}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A manifest or channel pointer is malformed, of an unsupported format, or unsafe."""


def is_name(value: object) -> bool:
    """Bundle names, versions and channels: ``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 128 characters."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and value not in (".", "..")


def check_name(kind: str, value: str) -> str:
    """A name as :func:`is_name` allows; returns it."""
    if not is_name(value):
        raise ManifestError(f"{kind} {value!r} is not a valid name: use [A-Za-z0-9._-], starting alphanumeric")
    return value


#: Suffixes of the store's own files beside the channel pointers (``<channel>.lock``,
#: ``<channel>.tmp-<hex>``): a channel may not look like one, so listing channels never hides one.
RESERVED_CHANNEL_SUFFIX = ".lock"
RESERVED_CHANNEL_PART = ".tmp-"


def is_channel_name(value: object) -> bool:
    """The one rule for channel names (used to validate and to list them): a valid name
    (:func:`check_name`) that does not end in ``.lock`` nor contain ``.tmp-``."""
    return (is_name(value) and not value.endswith(RESERVED_CHANNEL_SUFFIX) and RESERVED_CHANNEL_PART not in value)


def check_channel(kind: str, value: str) -> str:
    """A channel name (see :func:`is_channel_name`); returns it."""
    check_name(kind, value)
    if not is_channel_name(value):
        raise ManifestError(f"{kind} {value!r} is reserved: names ending in '{RESERVED_CHANNEL_SUFFIX}' or "
                            f"containing '{RESERVED_CHANNEL_PART}' are the store's lock and temporary files")
    return value


def check_relpath(path: str) -> str:
    """A file path inside a bundle: relative POSIX, safe components, no ``.``/``..``; returns it."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"bundle path must be a non-empty string, got {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") or not _PART.fullmatch(p) for p in parts):
        raise ManifestError(f"bundle path {path!r} is unsafe: it must be relative, without '.', '..', "
                            "empty components or characters outside [A-Za-z0-9._-]")
    return path


def bundle_prefix(name: str, version: str) -> str:
    return f"bundles/{check_name('bundle name', name)}/{check_name('version', version)}/"


def channel_key(name: str, channel: str) -> str:
    return f"channels/{check_name('bundle name', name)}/{check_channel('channel', channel)}"
