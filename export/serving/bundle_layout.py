"""The bundle layout on top of a :class:`~pinrec.export.serving.bundle_store.Store`: channel pointers
(``channels/<name>/<channel>``) and version manifests (``bundles/<name>/<version>/manifest.json``),
read and checked against the names they are read under (:mod:`pinrec.schemas.manifest`). Base install only.
"""
from __future__ import annotations

from pinrec.schemas.manifest import (
    MANIFEST_FILE,
    ChannelPointer,
    Manifest,
    ManifestError,
    bundle_prefix,
    channel_key,
    check_name,
    is_channel_name,
)

from .bundle_store import Store

__all__ = ["list_channels", "read_channel", "read_channel_for_update", "read_manifest"]


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
