"""The strict JSON of the manifest's dataclasses: written with sorted keys, read back checking every key
and type.

``_loads`` refuses duplicate keys, invalid JSON and absurd nesting; ``_from_plain`` refuses unknown or
missing keys and wrong types (no coercion but int -> float), each with a
:class:`~pinrec.schemas.bundle_names.ManifestError` naming where. Base install only (the standard library).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import typing
from typing import Any

from .bundle_names import ManifestError


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
