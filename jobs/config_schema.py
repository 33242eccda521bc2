"""The JSON Schema of :class:`~pinrec.jobs.config.PinrecConfig` and the reference page generated from it.

``json_schema()`` is pydantic's schema (draft 2020-12) with every section's defaults as the pipeline
uses them (``index.shards`` is 2 there, 1 in a bare ``IndexConfig``). ``render_reference()`` is the
Markdown page ``docs/config-reference.md``: per section its docstring, then every key (dotted) with
its type, default, what is allowed (bounds, choices) and its text from that docstring.

Both files are committed and a test fails when either is stale; regenerate them from the repository
root with ``pinrec config docs`` (``--check`` only compares).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from pinrec.jobs.config import PinrecConfig

__all__ = ["REFERENCE_PATH", "SCHEMA_PATH", "json_schema", "render_reference", "write_docs"]

#: Where :func:`write_docs` writes, relative to the repository root.
REFERENCE_PATH = Path("docs/config-reference.md")
SCHEMA_PATH = Path("config/pinrec.schema.json")
REGENERATE = "pinrec config docs"


def plain(value: Any) -> Any:
    """A config value as YAML / JSON writes it (tuples as lists, dates as YYYY-MM-DD)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def json_schema() -> dict:
    """The JSON Schema of the YAML config file (every key optional; unknown keys are errors)."""
    schema = TypeAdapter(PinrecConfig).json_schema()
    defaults = plain(PinrecConfig())
    for f in dataclasses.fields(PinrecConfig):
        ref = schema["properties"][f.name].get("$ref", "")
        if ref.startswith("#/$defs/"):
            for key, prop in schema["$defs"][ref.removeprefix("#/$defs/")]["properties"].items():
                prop["default"] = defaults[f.name][key]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _resolve(prop: dict, defs: dict) -> dict:
    return defs[prop["$ref"].removeprefix("#/$defs/")] if "$ref" in prop else prop


def _type(prop: dict) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        if "prefixItems" in prop:
            return f"[{', '.join(_type(p) for p in prop['prefixItems'])}]"
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        return f"map of {_type(prop.get('additionalProperties', {}))}" if "additionalProperties" in prop else "map"
    if kind == "string" and prop.get("format") == "date":
        return "date"
    return {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}.get(kind, kind)


def _allowed(prop: dict) -> str:
    """Bounds and choices of ``prop`` and of its items, as ``>= 1``, ``[0, 1)``, ``one of a, b``."""
    parts = []
    if "anyOf" in prop:
        parts += [a for p in prop["anyOf"] if (a := _allowed(p))]
    if "enum" in prop:
        parts.append("one of " + ", ".join(f"`{v}`" for v in prop["enum"]))
    low = ("[", prop["minimum"]) if "minimum" in prop else ("(", prop["exclusiveMinimum"]) \
        if "exclusiveMinimum" in prop else None
    high = (prop["maximum"], "]") if "maximum" in prop else (prop["exclusiveMaximum"], ")") \
        if "exclusiveMaximum" in prop else None
    if low and high:
        parts.append(f"{low[0]}{low[1]:g}, {high[0]:g}{high[1]}")
    elif low:
        parts.append(f"{'>=' if low[0] == '[' else '>'} {low[1]:g}")
    elif high:
        parts.append(f"{'<=' if high[1] == ']' else '<'} {high[0]:g}")
    if "minItems" in prop and "prefixItems" not in prop:
        parts.append(f"at least {prop['minItems']} item(s)")
    if "minLength" in prop:
        parts.append("non-empty")
    for item in ([prop["items"]] if "items" in prop else []) + prop.get("prefixItems", [])[:1]:
        if inner := _allowed(item):
            parts.append(f"each {inner}")
    return "; ".join(parts)


# a sentence ends at ". " or "; " before a capital, a ``key``, or the next "key:" of a plain list
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z`(]|\w+: |$)|(?<=\.)$")


def _key_doc(key: str, doc: str) -> str:
    """The clause of a section's docstring that introduces ``key`` (``key``: text / ``key`` / ``other``:
    text / key: text), up to the end of its sentence; "" when the docstring has none."""
    start = rf"(?:^|(?<=[\s(]))(?:``\w+`` / )*``{key}``(?: / ``\w+``)*(?: \([^)]*\))?:|(?:^|(?<=\s)){key}:"
    found = re.search(start, doc)
    if not found:
        return ""
    rest = doc[found.end():].strip()
    end = _SENTENCE_END.search(rest)
    text = rest[: end.start()] if end else rest
    return " ".join(text.split()).rstrip(";").replace("|", "\\|")


def _cell(value: Any) -> str:
    return "`" + json.dumps(value) + "`"


def render_reference() -> str:
    """``docs/config-reference.md``: every key of the config, section by section."""
    schema = json_schema()
    defs, defaults = schema["$defs"], plain(PinrecConfig())
    lines = ["# Configuration reference", "",
             (f"Generated from `pinrec.jobs.config` by `{REGENERATE}`; do not edit by hand (a test fails when "
             "this page or `config/pinrec.schema.json` is stale)."), "",
             ("Every key is optional: defaults live in code, a YAML file (`--config`) and `--set section.key=value` "
             "change only what they name. An unknown key, a wrong type or a value outside what is allowed fails "
             "with one error naming the dotted key. `index`, `recommend` and `redis` are the serving side's own "
             "dataclasses (its base install has no pydantic): they declare their bounds in field metadata "
             "(`pinrec.schemas.bounds`), which their constructors check and pydantic enforces here alike. "
             "The JSON Schema of the file is `config/pinrec.schema.json`."), ""]
    top = [f for f in dataclasses.fields(PinrecConfig) if "$ref" not in schema["properties"][f.name]]
    for f in dataclasses.fields(PinrecConfig):
        prop = schema["properties"][f.name]
        if "$ref" not in prop:
            continue
        section = _resolve(prop, defs)
        doc = inspect.cleandoc(type(getattr(PinrecConfig(), f.name)).__doc__ or "")
        lines += [f"## `{f.name}`", "", doc, "", "| Key | Type | Default | Allowed | Doc |", "|---|---|---|---|---|"]
        for key, p in section["properties"].items():
            lines.append(f"| `{f.name}.{key}` | {_type(p)} | {_cell(defaults[f.name][key])} | {_allowed(p)} "
                         f"| {_key_doc(key, doc)} |")
        lines.append("")
    lines += ["## Top level", "", "| Key | Type | Default | Allowed | Doc |", "|---|---|---|---|---|"]
    top_doc = inspect.cleandoc(PinrecConfig.__doc__ or "")
    for f in top:
        p = schema["properties"][f.name]
        lines.append(f"| `{f.name}` | {_type(p)} | {_cell(defaults[f.name])} | {_allowed(p)} "
                     f"| {_key_doc(f.name, top_doc)} |")
    return "\n".join(lines) + "\n"


def render_schema() -> str:
    """``config/pinrec.schema.json`` as written (two-space indent, a final newline)."""
    return json.dumps(json_schema(), indent=2) + "\n"


def write_docs(root: Path, check: bool = False) -> list[Path]:
    """Write the reference page and the schema under ``root`` (the repository root); return the files
    that were stale (with ``check``: only compare, write nothing)."""
    stale = []
    for rel, text in ((REFERENCE_PATH, render_reference()), (SCHEMA_PATH, render_schema())):
        path = root / rel
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return stale
