"""The bundle manifest and the channel pointer, shared by the publisher and the serving loader.

A bundle version is a folder ``bundles/<name>/<version>/`` in a store (see :mod:`pinrec.export.serving.store`):
index shards + ``index/index.json``, the ONNX ranker and its encoder JSON, the pin metadata
(Parquet) and ``manifest.json``, written last. A channel (``channels/<name>/<channel>``) is a small
JSON pointer to one version, moved only by compare-and-swap.

The manifest records the format version, when and from what the bundle was built (git sha, config
hash, MLflow run ids, the Delta version of every input table), its offline metrics, the blessing
verdict with reasons, and the size and sha256 of every file. Paths are POSIX, relative to the
version folder, made of ``[A-Za-z0-9._-]`` components and never ``.`` / ``..``: a manifest naming
a path outside its bundle does not parse. ``from_json`` is strict: unknown, missing or duplicate
keys, wrong types, absurd nesting and a format version other than :data:`FORMAT_VERSION` raise
:class:`ManifestError`. Channel names follow :func:`is_channel_name` (never like the store's
``.lock`` / ``.tmp-`` files), for writing and for listing alike.

Imports with the base install only (the loader uses it).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import numbers
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

#: What each file of a bundle is; the loader opens files by role.
#: ``(min, max)`` files per role; ``None`` = no upper bound.
ROLES: dict[str, tuple[int, int | None]] = {
    "index_meta": (1, 1), "index_shard": (1, None), "ranker": (1, 1), "encoder": (1, 1), "pins": (1, 1),
    "extra": (0, None),
}
#: Columns (and Arrow type names) the pin metadata Parquet must hold.
PIN_COLUMNS: dict[str, str] = {"pin_id": "int64", "category": "string", "created_at": "timestamp",
                               "nsfw": "bool", "blocked": "bool"}

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


def _utc(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ManifestError(f"{what} must be a timezone-aware datetime, got {value!r}")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before the first representable UTC instant
        raise ManifestError(f"{what} {value.isoformat()} is out of the representable range in UTC") from None


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: ``path`` relative to the version folder, ``size`` bytes, ``sha256`` hex."""

    path: str
    size: int
    sha256: str
    role: str = "extra"

    def __post_init__(self) -> None:
        check_relpath(self.path)
        if self.path == MANIFEST_FILE:
            raise ManifestError(f"{MANIFEST_FILE} cannot list itself")
        if self.size < 0:
            raise ManifestError(f"{self.path}: size must be >= 0, got {self.size}")
        if not _SHA256.fullmatch(self.sha256):
            raise ManifestError(f"{self.path}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.role not in ROLES:
            raise ManifestError(f"{self.path}: unknown role {self.role!r}; use one of {sorted(ROLES)}")


@dataclass(frozen=True)
class Metrics:
    """Offline metrics of a candidate: retrieval recall@k, serving latency, per-task AUC and
    expected calibration error of the ranker (tasks e.g. ``closeup``, ``save``), and ``drift``:
    the newest day against the training window (``score_psi.<task>``, ``feature_drift.<column>``,
    ``null_rate_shift.<column>``, ``label_rate_shift.<task>``, each >= 0; see
    :mod:`pinrec.jobs.monitoring.drift`), and ``funnel``: the serving
    funnel replayed on the test day (``candidates.merged.recall@500.saves``, ``served.hr@50``,
    ``served.cosine``...; see :mod:`pinrec.jobs.funnel.replay`), finite values (a mean cosine may be
    negative), and ``stability``: how far the bundle's PinSage embeddings moved from the previous
    version (``overlap_at_10``, ``procrustes_cosine``, ...; see :mod:`pinrec.jobs.pinsage.pinsage_versions`) and
    from the champion's (``champion_overlap_at_10``; :mod:`pinrec.jobs.publish.champion_stability`),
    finite. ``drift``, ``funnel`` and ``stability`` are optional and left out of the JSON when empty, so
    manifests without them read and write exactly as before."""

    k: int
    recall_at_k: float
    latency_p50_ms: float
    latency_p99_ms: float
    auc: dict[str, float] = field(default_factory=dict)
    calibration_error: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})
    funnel: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})
    stability: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        if not _is_int(self.k) or self.k < 1:
            raise ManifestError(f"metrics.k must be an integer >= 1, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))
        for name in ("recall_at_k", "latency_p50_ms", "latency_p99_ms"):
            object.__setattr__(self, name, _number(f"metrics.{name}", getattr(self, name)))
        for name in ("auc", "calibration_error", "drift", "funnel", "stability"):
            values = _mapping(f"metrics.{name}", getattr(self, name))
            object.__setattr__(self, name, {t: _number(f"metrics.{name}[{t!r}]", v) for t, v in values.items()})
        for name in ("funnel", "stability"):
            bad = {key: v for key, v in getattr(self, name).items() if not math.isfinite(v)}
            if bad:
                raise ManifestError(f"metrics.{name} values must be finite, got {bad}")
        values = {"recall_at_k": self.recall_at_k, "latency_p50_ms": self.latency_p50_ms,
                  "latency_p99_ms": self.latency_p99_ms, **{f"auc[{t}]": v for t, v in self.auc.items()},
                  **{f"calibration_error[{t}]": v for t, v in self.calibration_error.items()},
                  **{f"drift[{t}]": v for t, v in self.drift.items()}}
        for key, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ManifestError(f"metrics.{key} must be finite and >= 0, got {value}")
        for key, value in {"recall_at_k": self.recall_at_k, **{f"auc[{t}]": v for t, v in self.auc.items()}}.items():
            if value > 1:
                raise ManifestError(f"metrics.{key} must be <= 1, got {value}")
        if set(self.auc) != set(self.calibration_error):
            raise ManifestError(f"metrics: auc tasks {sorted(self.auc)} and calibration_error tasks "
                                f"{sorted(self.calibration_error)} differ")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(where: str, value: Any) -> float:
    """A real number as a float (numpy's too); a bool, a string or None is a ManifestError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ManifestError(f"{where} must be a number, got {value!r}")
    return float(value)


def _mapping(where: str, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ManifestError(f"{where} must be a mapping with string keys, got {value!r:.120}")
    return value


@dataclass(frozen=True)
class Lineage:
    """What the bundle was built from: code (git sha), configuration hash, MLflow runs by role
    (``pinsage``, ``ranker``, ``index``...), the Delta version of every input table, and the publish
    step's cache ``fingerprint`` (omitted when empty)."""

    code_version: str
    config_hash: str
    mlflow_run_ids: dict[str, str] = field(default_factory=dict)
    delta_versions: dict[str, int] = field(default_factory=dict)
    #: the publish step's fingerprint (pinrec.jobs.orchestration.step_cache): a rerun with the same one reuses this bundle
    fingerprint: str = field(default="", metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        for name in ("code_version", "config_hash"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ManifestError(f"lineage.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.fingerprint, str):
            raise ManifestError(f"lineage.fingerprint must be a string, got {self.fingerprint!r}")
        runs = _mapping("lineage.mlflow_run_ids", self.mlflow_run_ids)
        if bad := {t: v for t, v in runs.items() if not isinstance(v, str)}:
            raise ManifestError(f"lineage.mlflow_run_ids values must be strings (run ids), got {bad}")
        versions = _mapping("lineage.delta_versions", self.delta_versions)
        if bad := {t: v for t, v in versions.items() if not _is_int(v) or v < 0}:
            raise ManifestError(f"lineage.delta_versions values must be integers >= 0, got {bad}")
        object.__setattr__(self, "delta_versions", {t: int(v) for t, v in versions.items()})


@dataclass(frozen=True)
class Blessing:
    """The gate's verdict: ``blessed`` with the failed checks in ``reasons``; ``baseline_version``
    is the version the channel pointed to when the candidate was judged (None for the first);
    ``forced`` when the candidate was promoted regardless of the verdict; ``notes``: checks the gate
    could not make and why (left out of the JSON when empty)."""

    blessed: bool
    reasons: tuple[str, ...] = ()
    baseline_version: str | None = None
    forced: bool = False
    notes: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        if self.blessed and self.reasons:
            raise ManifestError(f"a blessed verdict carries no failure reasons, got {self.reasons}")
        if not self.blessed and not self.reasons:
            raise ManifestError("an unblessed verdict needs at least one reason")


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


def _loads(text: str | bytes, what: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):  # json keeps the last silently: what would a reader believe?
            dup = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise ManifestError(f"{what} has a duplicate key {dup!r}; refusing an ambiguous document")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique)
    except RecursionError:
        raise ManifestError(f"{what} is nested too deeply to be a {what}; refusing it") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError (ManifestError too)
        if isinstance(e, ManifestError):
            raise
        raise ManifestError(f"{what} is not valid JSON ({e}); truncated or corrupt?") from None


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_empty") and not getattr(obj, f.name))}
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _from_plain(tp: Any, value: Any, where: str) -> Any:
    """Build ``tp`` from parsed JSON, checking every key and type (no coercion but int -> float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = set(value) - set(fields)
        missing = {n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING}
        if unknown or missing:
            raise ManifestError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        kwargs = {k: _from_plain(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except ManifestError as e:
            raise ManifestError(f"{where}: {e}") from None
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_plain(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ManifestError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_from_plain(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _from_plain(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is dt.datetime:
        try:
            return dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: expected an ISO-8601 timestamp, got {value!r}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ManifestError(f"{where}: {value} is too large for a float") from None
    if tp in (int, float, str, bool) and type(value) is tp:
        return value
    raise ManifestError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__} {value!r}")
