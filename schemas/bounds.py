"""Bounds of config fields that must hold without pydantic: the serving sections (``index``,
``recommend``, ``redis``) are stdlib dataclasses, since the base install has no pydantic.

:func:`bounded` declares a field with ``gt`` / ``ge`` / ``lt`` / ``le`` (and a ``description``) in
its ``metadata``, under the names of pydantic's ``Field``: pydantic reads exactly those keys from a
stdlib dataclass field, so inside the pipeline's config it enforces them and puts them in the JSON
Schema and the generated reference page; :func:`check_bounds`, called from ``__post_init__``,
enforces the same bounds with the standard library alone (a serving host). One declaration, two
enforcers that agree.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

__all__ = ["bounded", "check_bounds", "describe"]

_OPS = {"gt": (">", lambda v, b: v > b), "ge": (">=", lambda v, b: v >= b),
        "lt": ("<", lambda v, b: v < b), "le": ("<=", lambda v, b: v <= b)}


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None, description: str | None = None) -> Any:
    """A dataclass field with default ``default`` whose value (when not None) must satisfy the given bounds."""
    meta = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    if description:
        meta["description"] = description
    return dataclasses.field(default=default, metadata=meta)


def describe(metadata: dict) -> str:
    """``>= 1``, ``in (0, 1]``: what the bounds in ``metadata`` allow."""
    low = next(((k, metadata[k]) for k in ("gt", "ge") if k in metadata), None)
    high = next(((k, metadata[k]) for k in ("lt", "le") if k in metadata), None)
    if low and high:
        return f"in {'(' if low[0] == 'gt' else '['}{low[1]:g}, {high[1]:g}{')' if high[0] == 'lt' else ']'}"
    kind, bound = low or high
    return f"{_OPS[kind][0]} {bound:g}"


def _declared(annotation: Any) -> tuple[str | None, bool]:
    """(``"int"``, ``"float"`` or None, whether None is allowed) of a field's annotation (a string under
    ``from __future__ import annotations``, e.g. ``"int | None"``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = {p.strip() for p in text.split("|")}
    return ("int" if "int" in parts else "float" if "float" in parts else None), "None" in parts


def check_bounds(obj: Any, section: str) -> None:
    """Raise ``ValueError("<section>.<field> must be <bounds>, got <value>")`` for the first field of
    the dataclass ``obj`` whose value breaks the bounds :func:`bounded` declared, or the field's
    declared type: an ``int`` field takes integers (numpy's too), a ``float`` field finite real numbers,
    None only where the annotation allows it; a boolean is refused (it is a Python int, but a ``true``
    typed for a bounded number is a mistake)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not set(f.metadata) & set(_OPS):
            continue
        kind, optional = _declared(f.type)
        if value is None:
            if optional:
                continue
            raise ValueError(f"{section}.{f.name} must be {kind or 'a number'} {describe(f.metadata)}, got None")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # bool is an int: True would pass ``ge=1``
            # a ValueError, as every config error: pydantic turns those (not TypeErrors) into its validation error
            raise ValueError(f"{section}.{f.name} must be a number, got {value!r}")  # noqa: TRY004
        if kind == "int" and not isinstance(value, numbers.Integral):
            raise ValueError(f"{section}.{f.name} must be an integer {describe(f.metadata)}, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{section}.{f.name} must be a finite number {describe(f.metadata)}, got {value!r}")
        for kind, bound in f.metadata.items():
            if kind in _OPS and not _OPS[kind][1](value, bound):
                raise ValueError(f"{section}.{f.name} must be {describe(f.metadata)}, got {value!r}")
