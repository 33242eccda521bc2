"""An opened, verified bundle: :class:`Bundle`, the errors that refuse one (:class:`BundleError`,
:class:`BundleUnavailable`), and opening a verified version's files.

Opening refuses the bundle unless the shards open with faiss, the ranker with onnxruntime, the
index and encoder JSON hold objects and the pin metadata has its columns; every path resolves inside
the bundle (no symlink escapes). Shards are memory-mapped with ``IO_FLAG_MMAP_IFC`` (faiss 1.15,
measured: it maps flat, IVF and HNSW storage; ``IO_FLAG_MMAP`` alone still copies a flat index into
RAM, and the two together fail on IVF shards). Nothing is unpickled: faiss' own format, ONNX
protobuf, JSON and Parquet only.

Base install only: pyarrow, faiss, onnxruntime.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import faiss
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from pinrec.schemas.manifest import PIN_COLUMNS, Manifest

MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC


class BundleError(RuntimeError):
    """A bundle was refused: missing, incomplete, corrupt, tampered, unsafe or unsupported."""


class BundleUnavailable(BundleError):
    """A bundle could not be read, so it was not judged: the store failed or refused access (network,
    credentials, bucket policy), or the download cache cannot be written. Often transient: a
    :meth:`~pinrec.export.serving.bundle_loader.Loader.refresh` that raises it keeps the old bundle
    serving, as for any :class:`BundleError`."""


@dataclass(frozen=True, eq=False)
class Bundle:
    """An opened, verified bundle. ``shards``: faiss indexes in manifest order (memory-mapped);
    ``index_meta``: ``index.json``; ``ranker``: ONNX session; ``encoder``: the encoder JSON;
    ``pins``: pin metadata (Arrow table, memory-mapped); ``root``: local folder of the files."""

    manifest: Manifest
    root: str
    shards: tuple[Any, ...]
    index_meta: dict
    ranker: ort.InferenceSession
    encoder: dict
    pins: pa.Table
    #: sha256 of the manifest's bytes: a version name freed by prune and published again is another bundle
    manifest_sha256: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ntotal(self) -> int:
        return sum(s.ntotal for s in self.shards)

    def __repr__(self) -> str:
        return (f"Bundle({self.name}/{self.version}, shards={len(self.shards)}, vectors={self.ntotal}, "
                f"pins={self.pins.num_rows}, blessed={self.manifest.blessing.blessed})")


def _inside(root: str, rel: str) -> str:
    """The real path of ``root/rel``, refusing anything that resolves outside ``root``."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, path]) != real_root:
        raise BundleError(f"refusing bundle path {rel!r}: it resolves outside the bundle ({path})")
    return path


def _open(manifest: Manifest, root: str, manifest_sha256: str) -> Bundle:
    def path(entry) -> str:
        return _inside(root, entry.path)

    where = f"{manifest.name}/{manifest.version}"
    try:
        shards = tuple(faiss.read_index(path(e), MMAP_FLAGS) for e in manifest.of_role("index_shard"))
        with open(path(manifest.of_role("index_meta")[0]), "rb") as f:
            index_meta = json.load(f)
        with open(path(manifest.of_role("encoder")[0]), "rb") as f:
            encoder = json.load(f)
        ranker = ort.InferenceSession(path(manifest.of_role("ranker")[0]), providers=["CPUExecutionProvider"])
        pins = pq.read_table(path(manifest.of_role("pins")[0]), memory_map=True)
    except BundleError:
        raise
    except Exception as e:  # faiss RuntimeError, onnxruntime Fail/InvalidProtobuf, JSON, Arrow errors
        raise BundleError(f"refusing {where}: a file does not open ({type(e).__name__}: {e})") from e
    if not isinstance(index_meta, dict) or not isinstance(encoder, dict):
        raise BundleError(f"refusing {where}: index.json and the encoder JSON must hold JSON objects")
    dims = {s.d for s in shards}
    if len(dims) != 1:
        raise BundleError(f"refusing {where}: shards have different dimensions {sorted(dims)}")
    _check_pins(where, pins.schema)
    return Bundle(manifest, root, shards, index_meta, ranker, encoder, pins, manifest_sha256)


def _check_pins(where: str, schema: pa.Schema) -> None:
    problems = []
    for column, kind in PIN_COLUMNS.items():
        if column not in schema.names:
            problems.append(f"no column {column!r}")
            continue
        t = schema.field(column).type
        ok = pa.types.is_timestamp(t) if kind == "timestamp" else (
            pa.types.is_string(t) or pa.types.is_large_string(t) if kind == "string" else str(t) == kind)
        if not ok:
            problems.append(f"{column} is {t}, expected {kind}")
    if problems:
        raise BundleError(f"refusing {where}: pin metadata {'; '.join(problems)}")
