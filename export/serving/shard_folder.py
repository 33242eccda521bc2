"""The ``index.json`` folder format of a sharded index: writing shards and the manifest atomically,
reading the manifest back, and checking every shard's sha256.

Folder layout::

    index.json                       factory, metric, d, search params, shards (file, ntotal,
                                     sha256), measured recall / latency / memory, drift reference
    shard-00000-of-00004.faiss ...   one faiss index per shard, holding faiss's default search
                                     parameters (the tuned ones are in index.json)

Paths are local (or a mounted shared file system): mmap needs a file.

Base install only: faiss and the standard library.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import faiss

MANIFEST = "index.json"
FORMAT_VERSION = 1
HASH_NAME = "splitmix64"


class ChecksumError(ValueError):
    """A shard file does not match the sha256 recorded in index.json."""


def shard_file(shard: int, num_shards: int) -> str:
    return f"shard-{shard:05d}-of-{num_shards:05d}.faiss"


def write_shard(index: faiss.Index, folder: str | Path, shard: int, num_shards: int, generation: int = 0) -> dict:
    """Write one shard atomically; returns its index.json entry (file, ntotal, bytes, sha256). Written
    by faiss straight to a temporary file (no in-memory copy of a shard that may be gigabytes), then
    hashed from disk and renamed into place."""
    name = shard_file(shard, num_shards)
    if generation:  # an incremental add writes new names: index.json switches to them in one rename
        name = name.removesuffix(".faiss") + f".g{generation}.faiss"
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    entry = {"shard": shard, "file": name, "ntotal": int(index.ntotal), "bytes": tmp.stat().st_size,
             "sha256": sha256_file(tmp)}
    os.replace(tmp, path)
    return entry


def write_manifest(folder: str | Path, manifest: dict) -> None:
    """Write index.json atomically (after the shards it describes)."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not an index folder")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION or manifest.get("hash") != HASH_NAME:
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} / hash {manifest.get('hash')!r}")
    return manifest


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_shards(folder: str | Path, manifest: dict) -> None:
    """Raise :class:`ChecksumError` unless every shard file matches index.json."""
    for entry in manifest["shards"]:
        path = Path(folder) / entry["file"]
        if not path.is_file():
            raise ChecksumError(f"{path} is listed in index.json but missing")
        if (digest := sha256_file(path)) != entry["sha256"]:
            raise ChecksumError(f"{path}: sha256 {digest} != {entry['sha256']} recorded in index.json")
