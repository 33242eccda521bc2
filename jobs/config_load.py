"""Loading the configuration: defaults, then a YAML file, then ``--set`` overrides (:func:`load_config`,
:func:`parse_overrides`), and :func:`replace` of a validated config; :mod:`pinrec.jobs.config` re-exports them."""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pinrec.jobs.config_root import PinrecConfig
from pinrec.schemas.config_base import ConfigError, validate

__all__ = ["load_config", "parse_overrides", "replace"]


def _as_dict(cfg: Any) -> dict:
    """One level: a config's fields by name, its sections still as dataclasses."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, f"{where}{k}.")
        elif isinstance(v, dict) and out.get(k) is not None:  # keys into a value: what was meant is unknown
            raise ConfigError(f"{where}{k} must be a mapping of keys, got {out[k]!r:.80}")
        else:
            out[k] = v
    return out


def parse_overrides(pairs: list[str]) -> dict:
    """``["spark.master=local[2]", "seed=3"]`` -> nested dict (values parsed as YAML,
    :func:`pinrec.jobs.config_yaml.override_value`)."""
    from .config_yaml import override_value

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form section.key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        if not all(part.strip() for part in parts):
            raise ConfigError(f"override {pair!r}: the key {key.strip()!r} has an empty part; write section.key=value")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r}: {'.'.join(parts[:i + 1])} was given a value by an earlier "
                                  "override, so it has no keys to set")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"override {pair!r}: an earlier override set keys inside {key.strip()}")
        where = f"override {pair!r}"
        if _text_field(parts):  # a text setting takes the text typed (sep=, or sep=:: is not YAML for text)
            try:
                value = override_value(raw, where)
            except ConfigError:
                value = raw.strip()
            node[parts[-1]] = value if value is None or isinstance(value, str) else raw.strip()
        else:
            node[parts[-1]] = override_value(raw, where)
    return out


def _text_field(parts: list[str]) -> bool:
    """Whether the config key ``parts`` (``["dataset", "sep"]``) is a text setting (``str``, or ``str | None``)."""
    owner: Any = PinrecConfig
    for i, name in enumerate(parts):
        info = getattr(owner, "__pydantic_fields__", {}).get(name)
        if info is None:
            return False
        if i == len(parts) - 1:
            return _is_text(info.annotation)
        owner = info.annotation
    return False


def _is_text(annotation: Any) -> bool:
    import typing

    if annotation is str:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _is_text(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return len(kinds) == 1 and _is_text(kinds[0])
    return False


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                env: Mapping[str, str] | None = None) -> PinrecConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``; validated. ``env``
    (``main()``'s ``os.environ``; None: not read) fills the S3 settings of ``storage`` that the file
    and overrides leave unset from the standard AWS variables (:meth:`S3Options.from_env`), since
    pyarrow ignores the endpoint ones (S3 keys are never read into the config)."""
    data: dict = {}
    if path is not None:
        from .config_yaml import load_yaml

        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config file {p} is a folder; give the YAML file in it")
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        loaded = load_yaml(text, f"config file {p}") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p}: top level must be a mapping")
        data = loaded
    if overrides:
        data = _merge(data, overrides)
    if env is not None:  # the variables S3Options.from_env reads; keys stay with the SDKs
        storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
        found = {"s3_endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
                 "s3_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")}
        data = _merge(data, {"storage": {k: v for k, v in found.items() if v and storage.get(k) is None}})
    return validate(PinrecConfig, data)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that also accepts nested dicts for sub-configs: ``replace(cfg,
    synthetic={"days": 1})`` changes that one key and keeps the section's others; re-validated."""
    merged = _merge({k: _as_dict(v) if dataclasses.is_dataclass(v) else v for k, v in _as_dict(cfg).items()}, changes)
    return validate(type(cfg), merged, getattr(type(cfg), "__config_section__", ""))
