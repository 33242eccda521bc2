"""Fingerprints of what a pipeline step reads: its code, its config and its inputs.

A step's fingerprint is a SHA-256 over three things (:func:`fingerprint`):

* the code it runs: the source of its entry module and of every ``pinrec`` module that module
  imports, transitively, found statically (:func:`module_closure`; imports inside functions count,
  as the layout test counts them), so editing any of them changes the fingerprint;
* its resolved config section(s), as canonical JSON (:func:`config_digest`);
* its inputs: Delta versions of the tables it reads, the fingerprints of the steps it builds on, or
  the content of landing files (:func:`file_digest`: the object store's ETag and size on S3, an MD5
  of the bytes locally).

:mod:`pinrec.jobs.orchestration.step_cache` compares it with the fingerprint recorded beside the
step's last output to decide whether the step can be skipped.
"""
from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from .lake import Location

__all__ = ["code_hash", "config_digest", "file_digest", "fingerprint", "module_closure"]


def _in_zip(path: str) -> tuple[str, str] | None:
    """(archive, member) when ``path`` lies inside a zip archive (pinrec shipped to a Spark cluster as
    ``--py-files pinrec.zip`` is imported from one), else None."""
    head = path
    while head and os.path.dirname(head) != head:
        if os.path.isfile(head):
            return (head, os.path.relpath(path, head).replace(os.sep, "/")) if head != path and \
                zipfile.is_zipfile(head) else None
        head = os.path.dirname(head)
    return None


def _isfile(path: str) -> bool:
    if os.path.isfile(path):
        return True
    inside = _in_zip(path)
    if inside is None:
        return False
    with zipfile.ZipFile(inside[0]) as z:
        return inside[1] in z.NameToInfo


def _read(path: str) -> bytes:
    inside = None if os.path.isfile(path) else _in_zip(path)
    if inside is None:
        with open(path, "rb") as f:
            return f.read()
    with zipfile.ZipFile(inside[0]) as z:
        return z.read(inside[1])


def _stamp(path: str) -> tuple[int, int]:
    """(mtime ns, size) of the file, or of its zip archive and its member: what :func:`_imports_of` is cached by."""
    inside = None if os.path.isfile(path) else _in_zip(path)
    if inside is None:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    with zipfile.ZipFile(inside[0]) as z:
        return os.stat(inside[0]).st_mtime_ns, z.getinfo(inside[1]).file_size


@lru_cache(maxsize=4096)
def _imports_of(path: str, package: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """Absolute module names imported by the file at ``path`` (whose package is ``package``);
    cached per (path, mtime, size), so an edited file is parsed again."""
    tree = ast.parse(_read(path), filename=path)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.append(mod)
            out.extend(f"{mod}.{alias.name}" for alias in node.names if alias.name != "*")
    return tuple(out)


def _package_dirs(name: str) -> tuple[str, ...]:
    """The folders of top-level package ``name`` (e.g. ``pinrec.jobs``; finding it imports only
    ``pinrec`` itself, a namespace)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return ()
    return tuple(spec.submodule_search_locations or ()) if spec is not None else ()


def _source(name: str) -> tuple[str, bool] | None:
    """(file of module ``name``, is a package) or None when it is no module with a source file.
    Found on disk below its top-level package, so nothing but that package is imported (finding
    ``a.b.c`` with importlib would import ``a.b``, and with it torch)."""
    parts = name.split(".")
    if len(parts) < 2:
        return None
    for folder in _package_dirs(".".join(parts[:2])):
        path = os.path.join(folder, *parts[2:])
        if _isfile(os.path.join(path, "__init__.py")):
            return os.path.join(path, "__init__.py"), True
        if len(parts) > 2 and _isfile(path + ".py"):
            return path + ".py", False
    return None


def module_closure(module: str, root: str = "pinrec") -> tuple[tuple[str, str], ...]:
    """``(module name, source file)`` of ``module`` and every module under ``root`` it imports,
    transitively and statically, sorted by name. ``from a import b`` counts ``a.b`` when that is a
    module, else ``a``. Raises ModuleNotFoundError when ``module`` itself has no source."""
    if _source(module) is None:
        raise ModuleNotFoundError(f"no Python source for module {module!r}")
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not (name == root or name.startswith(root + ".")):
            continue
        found = _source(name)
        if found is None:
            continue
        path, is_package = found
        seen[name] = path
        parent = name.rpartition(".")[0]  # importing a module runs its packages' __init__ too
        if parent.count(".") >= 1:
            todo.append(parent)
        package = name if is_package else name.rpartition(".")[0]
        todo.extend(i for i in _imports_of(path, package, *_stamp(path)) if i not in seen)
    return tuple(sorted(seen.items()))


def code_hash(*modules: str, root: str = "pinrec") -> str:
    """SHA-256 (hex) of the names and bytes of the union of the modules' closures
    (:func:`module_closure`): it changes when any source the modules run changes."""
    files = dict(p for m in modules for p in module_closure(m, root))
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(_read(files[name])).digest())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def config_digest(value: Any) -> str:
    """SHA-256 (hex) of ``value`` (dataclasses, mappings, sequences, dates, scalars) as canonical JSON."""
    return hashlib.sha256(json.dumps(_plain(value), sort_keys=True).encode()).hexdigest()


def file_digest(loc: Location, spark=None) -> str:
    """What identifies the content of one file: ``etag:<ETag>:<size>`` on S3 (the object store
    computed it on write: nothing is downloaded; read through ``spark``'s Hadoop s3a filesystem, a
    HEAD request, as pyarrow's S3 filesystem does not expose ETags), ``md5:<hex>`` of the bytes locally."""
    if loc.is_s3:
        if spark is None:
            raise ValueError(f"{loc}: the ETag of an object on S3 is read through Spark's s3a filesystem: "
                             f"pass the Spark session (spark=...)")
        path = spark._jvm.org.apache.hadoop.fs.Path(loc.spark)
        status = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).getFileStatus(path)
        etag = str(status.getEtag() or "").strip('"') if hasattr(status, "getEtag") else ""
        if not etag:
            raise ValueError(f"{loc}: the object store returned no ETag, so its content cannot be fingerprinted")
        return f"etag:{etag}:{status.getLen()}"
    h = hashlib.md5(usedforsecurity=False)
    with open(loc.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"md5:{h.hexdigest()}"


def fingerprint(step: str, *, code: str, config: Any = None, inputs: Mapping[str, Any] | Iterable = ()) -> str:
    """The step's fingerprint: SHA-256 (hex) over its name, :func:`code_hash` ``code``, its
    ``config`` (:func:`config_digest`) and ``inputs`` (table versions, upstream fingerprints, file
    digests: anything JSON-able by :func:`config_digest`)."""
    payload = {"step": step, "code": code, "config": config_digest(config), "inputs": _plain(inputs)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
