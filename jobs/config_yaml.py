"""YAML as pinrec's configuration reads it: a file, or one ``--set`` value.

PyYAML's ``safe_load`` follows YAML 1.1, which reads much typed text as something else: ``2024_01``
and ``0700`` as the numbers 202401 and 448 (a folder or column name then gets that number's text),
``12:30`` as 750, ``yes``/``on`` as true; a key given twice silently keeps the last; and ``|`` or
``#x`` as an empty value. Here:

* numbers are only the plain forms (``12``, ``-3``, ``0.5``, ``1e3``, ``.inf``), booleans only
  ``true``/``false``; everything else stays the text given;
* a key given twice in one mapping is an error naming it;
* an override whose text YAML would read as nothing (``|``, ``>``, ``#ts``) stays that text; only
  ``null``/``~`` are null and ``''`` empty;
* malformed YAML is a :class:`~pinrec.schemas.config_base.ConfigError` naming the file or override.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from pinrec.schemas.config_base import ConfigError

_INT, _FLOAT, _BOOL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"
_NULLS = {"null", "Null", "NULL", "~"}


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise ConfigError(f"key {key!r} is given twice (lines {seen[key] + 1} and "
                                      f"{key_node.start_mark.line + 1}); YAML would silently keep the last")
                seen[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: YAML's own error below says so
                pass
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
                       r"|^\.(?:nan|NaN|NAN)$"), list("-+0123456789."))
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str, where: str) -> Any:
    """The value of YAML ``text`` (module docstring); ``where`` names it in errors."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except (yaml.YAMLError, ValueError) as e:  # ValueError: an impossible date such as 2025-02-30
        problem = " ".join(str(e).split())
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None


def override_value(raw: str, where: str) -> Any:
    """One ``--set`` value: YAML, but text that YAML would read as nothing stays the text typed."""
    text = raw.strip()
    if not text:
        return ""
    value = load_yaml(raw, where)
    if (value is None and text not in _NULLS) or (value == "" and text not in ("''", '""')):
        return text
    return value
