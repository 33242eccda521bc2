"""What every pipeline config section is built on: frozen pydantic v2 dataclasses that forbid unknown
keys, and the one translation of pydantic's errors into :class:`ConfigError`.

A section is declared with :func:`section`: ``@section("ranker_train")`` makes the class a frozen
``pydantic.dataclasses.dataclass`` (``extra="forbid"``, no NaN/inf, numbers accepted for strings)
whose bounds are ``Annotated[int, Field(ge=1)]`` and whose choices are ``Literal[...]``. It stays a
real dataclass (``dataclasses.replace`` re-validates), and constructing it with a bad value raises
:class:`ConfigError` naming the dotted key (``ranker_train.lr must be > 0, got 0.0``).

The serving sections (``index``, ``recommend``, ``redis``) are stdlib dataclasses (the base install
has no pydantic) with their own checks; pydantic validates them too, field by field, when they are
fields of a section, honouring their ``__pydantic_config__ = {"extra": "forbid"}``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict, TypeAdapter, ValidationError

from .bounds import describe

__all__ = ["CONFIG", "ConfigError", "config_error", "section", "validate"]

T = TypeVar("T")

#: The pydantic settings of every section (the stdlib serving sections carry ``extra="forbid"`` themselves).
CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)

_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}

#: pydantic error type -> what the key expects, in the words of the YAML file
_EXPECTED = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "an integer"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact",
                     "date_future", "date_past"), "a YYYY-MM-DD date"),
    "string_type": "a string",
    **dict.fromkeys(("tuple_type", "list_type"), "a list"),
    **dict.fromkeys(("dict_type", "dataclass_type", "dataclass_args_type", "model_type"), "a mapping"),
}


class ConfigError(ValueError):
    """A configuration file, override or section value is invalid; the message names the key."""


def section(key: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``cls`` becomes the frozen pydantic dataclass of config section ``key``, whose
    constructor raises :class:`ConfigError` (or the domain error a validator raised, such as
    :class:`~pinrec.schemas.manifest.ManifestError`) instead of pydantic's ``ValidationError``."""

    def wrap(cls: type[T]) -> type[T]:
        cls = pydantic.dataclasses.dataclass(frozen=True, config=CONFIG)(cls)
        validated_init = cls.__init__

        @functools.wraps(validated_init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            _refuse_bools(type(self), kwargs, key)
            try:
                validated_init(self, *args, **kwargs)
            except ValidationError as e:
                raise config_error(e, type(self), prefix=key, domain=True) from None

        cls.__init__ = __init__
        cls.__config_section__ = key
        return cls

    return wrap


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def validate(cls: type[T], data: dict, prefix: str = "") -> T:
    """``data`` (plain YAML values, nested dicts for sections) as a validated ``cls``; every problem
    is reported at once in one :class:`ConfigError`, keys dotted below ``prefix``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    _refuse_bools(cls, data, prefix)
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as e:
        raise config_error(e, cls, prefix=prefix) from None


def _numeric(tp: Any) -> bool:
    """Whether ``tp`` admits numbers only (``int``, ``float``, ``Annotated`` / ``Optional`` of them)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return bool(args) and all(_numeric(a) for a in args)
    return tp in (int, float)


def _number_text(text: str) -> bool:
    """Whether pydantic's lax mode would read ``text`` as a number (other text it refuses itself)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bool_problems(tp: Any, value: Any, key: str) -> list[str]:
    """Where ``value`` (for a field of type ``tp``) holds a boolean or a text that pydantic's lax mode
    would take as a number (``true`` as 1; ``'2024_01'`` as 202401, ``'007'`` as 7: the YAML layer keeps
    such values as the text typed, and text is not a number), recursing into sections given as mappings
    and into lists of numbers."""
    if isinstance(value, bool) or (isinstance(value, str) and _number_text(value)):
        return [f"{key}: expected a number, got {'the text ' if isinstance(value, str) else ''}{value!r}"] \
            if _numeric(tp) else []
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _bool_problems(typing.get_args(tp)[0], value, key)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _bool_problems(args[0], value, key) if len(args) == 1 else []
    if isinstance(value, dict) and isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return [p for k, v in value.items() if k in hints
                for p in _bool_problems(hints[k], v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, (list, tuple)) and origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item = (lambda i: args[0]) if origin is list or len(args) == 1 or Ellipsis in typing.get_args(tp) \
            else (lambda i: args[i] if i < len(args) else None)
        return [p for i, v in enumerate(value) for p in _bool_problems(item(i), v, f"{key}[{i}]")]
    return []


def _refuse_bools(cls: type, data: dict, prefix: str) -> None:
    """Raise one :class:`ConfigError` for every boolean or text given where ``cls`` wants a number:
    pydantic's lax mode reads ``seed: true`` as 1 and ``seed: '2024_01'`` as 202401, and either typed for
    a number is a mistake."""
    if problems := _bool_problems(cls, data, prefix):
        raise ConfigError("; ".join(problems))


def config_error(error: ValidationError, root: type, prefix: str = "", domain: bool = False) -> Exception:
    """One :class:`ConfigError` for all of ``error``'s problems, each naming its dotted key (below
    ``prefix``), what was given and what is allowed; an unknown key names the nearest valid one.
    ``domain``: a single problem raised by a validator as a ValueError subclass of its own (a
    ``ManifestError``...) is returned as that error, so constructors keep their documented errors."""
    problems = error.errors()
    if domain and len(problems) == 1 and problems[0]["type"] == "value_error":
        cause = (problems[0].get("ctx") or {}).get("error")
        if isinstance(cause, ValueError) and type(cause) is not ValueError:
            return cause
    return ConfigError("; ".join(_describe(p, root, prefix) for p in problems))


def _describe(problem: dict, root: type, prefix: str) -> str:
    loc = tuple(problem["loc"])
    key = _dotted(prefix, loc)
    kind, given = problem["type"], problem.get("input")
    ctx = problem.get("ctx") or {}
    if kind in _UNKNOWN:
        valid = _field_names(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        if close:
            return f"unknown key `{key}`; did you mean `{_dotted(prefix, (*loc[:-1], close[0]))}`?"
        return f"unknown key `{key}`; valid keys: {', '.join(valid)}"
    if kind == "value_error":  # a validator's own message, which names its keys
        return str(ctx.get("error") or problem["msg"])
    if kind in _BOUNDS:
        return f"{key} must be {_allowed(root, loc, kind, ctx)}, got {given!r}"
    if kind == "literal_error":
        return f"{key} must be one of {ctx.get('expected')}, got {given!r}"
    if kind == "finite_number":
        return f"{key} must be a finite number, got {given!r}"
    if kind in _EXPECTED:
        return f"{key}: expected {_EXPECTED[kind]}, got {given!r}"
    if kind == "too_short":
        return f"{key} must have at least {ctx.get('min_length')} item(s), got {given!r}"
    message = problem["msg"].replace("Input should be ", "expected ")
    return f"{key}: {message[:1].lower() + message[1:]}, got {given!r}"


def _dotted(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part:
            out = f"{out}.{part}" if out else str(part)
    return out or "config"


def _allowed(root: type, loc: tuple, kind: str, ctx: dict) -> str:
    """``in [0, 1)`` when the field has both bounds, else the one bound pydantic reports."""
    bounds = {}
    owner, name = _field_owner(root, loc)
    info = getattr(owner, "__pydantic_fields__", {}).get(name) if owner is not None else None
    if info is None and owner is not None and dataclasses.is_dataclass(owner):  # a stdlib serving section
        meta = next((f.metadata for f in dataclasses.fields(owner) if f.name == name), {})
        if {"gt", "ge", "lt", "le"} & set(meta):
            return describe(meta)
    for item in getattr(info, "metadata", ()):
        for attr in ("gt", "ge", "lt", "le"):
            if getattr(item, attr, None) is not None:
                bounds[attr] = getattr(item, attr)
    low = [(k, v) for k, v in bounds.items() if k in ("gt", "ge")]
    high = [(k, v) for k, v in bounds.items() if k in ("lt", "le")]
    if low and high:
        (lk, lv), (hk, hv) = low[0], high[0]
        return f"in {'(' if lk == 'gt' else '['}{lv:g}, {hv:g}{')' if hk == 'lt' else ']'}"
    attr, symbol = _BOUNDS[kind]
    return f"{symbol} {ctx[attr]:g}" if isinstance(ctx.get(attr), (int, float)) else f"{symbol} {ctx.get(attr)}"


def _field_owner(root: type, loc: tuple) -> tuple[type | None, str | None]:
    """The dataclass declaring the field at ``loc`` (list indexes skipped) and the field's name."""
    names = [p for p in loc if isinstance(p, str)]
    owner: type | None = root
    for name in names[:-1]:
        owner = _section_type(owner, name)
    return (owner, names[-1]) if names else (None, None)


def _field_names(root: type, loc: tuple) -> list[str]:
    owner: type | None = root
    for name in (p for p in loc if isinstance(p, str)):
        owner = _section_type(owner, name)
    return [f.name for f in dataclasses.fields(owner)] if owner is not None else []


def _section_type(cls: type | None, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``cls`` (Optional unwrapped), or None."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    tp = typing.get_type_hints(cls).get(name)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next((a for a in typing.get_args(tp) if a is not type(None)), None)
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None
