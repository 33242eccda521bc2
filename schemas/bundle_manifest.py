"""The bundle :class:`Manifest` and the :class:`ChannelPointer`, shared by the publisher and the serving loader.

The manifest records the format version, when and from what the bundle was built (git sha, config
hash, MLflow run ids, the Delta version of every input table), its offline metrics, the blessing
verdict with reasons, and the size and sha256 of every file (:mod:`pinrec.schemas.manifest_parts`): a
manifest naming a path outside its bundle does not parse. ``from_json`` is strict
(:mod:`pinrec.schemas.manifest_json`): unknown, missing or duplicate keys, wrong types, absurd nesting and
a format version other than :data:`FORMAT_VERSION` raise :class:`~pinrec.schemas.bundle_names.ManifestError`.
A channel pointer is a small JSON pointer to one version, moved only by compare-and-swap.

Base install only (the standard library).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from .bundle_names import _SHA256, ManifestError, check_channel, check_name
from .manifest_json import _from_plain, _loads, _to_plain
from .manifest_parts import ROLES, Blessing, FileEntry, Lineage, Metrics

FORMAT_VERSION = 1


def _utc(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ManifestError(f"{what} must be a timezone-aware datetime, got {value!r}")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before the first representable UTC instant
        raise ManifestError(f"{what} {value.isoformat()} is out of the representable range in UTC") from None


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created_at: dt.datetime
    lineage: Lineage
    metrics: Metrics
    blessing: Blessing
    files: tuple[FileEntry, ...]
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ManifestError(f"manifest format_version {self.format_version} is not supported "
                                f"(this code reads {FORMAT_VERSION})")
        check_name("bundle name", self.name)
        check_name("version", self.version)
        for name, kind in (("lineage", Lineage), ("metrics", Metrics), ("blessing", Blessing)):
            if not isinstance(getattr(self, name), kind):
                raise ManifestError(f"manifest {name} must be a {kind.__name__}, got {getattr(self, name)!r:.80}")
        object.__setattr__(self, "created_at", _utc(self.created_at, "created_at"))
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ManifestError(f"manifest lists a path twice: {sorted(p for p in paths if paths.count(p) > 1)}")
        for role, (low, high) in ROLES.items():
            n = sum(f.role == role for f in self.files)
            if n < low or (high is not None and n > high):
                raise ManifestError(f"manifest needs {low}..{high if high is not None else 'n'} file(s) "
                                    f"of role {role!r}, got {n}")

    def of_role(self, role: str) -> tuple[FileEntry, ...]:
        """Files of ``role``, in manifest order (shards in index order)."""
        return tuple(f for f in self.files if f.role == role)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        return json.dumps(_to_plain(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        data = _loads(text, "manifest")
        if isinstance(data, dict) and data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"manifest format_version {data.get('format_version')!r} is not supported "
                                f"(this code reads {FORMAT_VERSION})")
        return _from_plain(cls, data, "manifest")


@dataclass(frozen=True)
class ChannelPointer:
    """``channels/<name>/<channel>``: the version a channel serves and the sha256 of that version's
    manifest bytes (so a reader detects a manifest swapped behind the pointer's back)."""

    name: str
    channel: str
    version: str
    manifest_sha256: str
    moved_at: dt.datetime
    reason: str
    previous: str | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ManifestError(f"channel pointer format_version {self.format_version} is not supported")
        check_name("bundle name", self.name)
        check_channel("channel", self.channel)
        check_name("version", self.version)
        if self.previous is not None:
            check_name("version", self.previous)
        if not _SHA256.fullmatch(self.manifest_sha256):
            raise ManifestError(f"channel pointer manifest_sha256 is not a sha256: {self.manifest_sha256!r}")
        if self.reason not in ("publish", "force", "rollback"):
            raise ManifestError(f"channel pointer reason must be publish, force or rollback, got {self.reason!r}")
        object.__setattr__(self, "moved_at", _utc(self.moved_at, "moved_at"))

    def to_json(self) -> str:
        return json.dumps(_to_plain(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ChannelPointer:
        return _from_plain(cls, _loads(text, "channel pointer"), "channel pointer")
