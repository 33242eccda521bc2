"""Sharded FAISS indexes: the public names of four modules, importable from here as before they were
split out (the build side, the Spark index job, the benchmarks and the tests import them from this module):

- :mod:`pinrec.export.serving.shard_fill`: the stable pin -> shard hash (:func:`splitmix64`,
  :func:`shard_of`), the seeded training sample (:func:`training_key`, :func:`training_sample`) and
  filling shards from one trained index (:func:`coarse_assign`, :func:`fill_shard`, :func:`build_shards`);
- :mod:`pinrec.export.serving.shard_folder`: the ``index.json`` folder format (:data:`MANIFEST`,
  :data:`FORMAT_VERSION`, :data:`HASH_NAME`, :func:`shard_file`, :func:`write_shard`,
  :func:`write_manifest`, :func:`read_manifest`, :func:`sha256_file`, :func:`verify_shards`,
  :class:`ChecksumError`);
- :mod:`pinrec.export.serving.sharded_index`: :class:`ShardedIndex` (search over all shards + merge)
  and :func:`shard_ids`;
- :mod:`pinrec.export.serving.incremental_add`: :func:`add_to_index` and its drift check
  (:class:`DriftReport`, :func:`check_drift`, :func:`mean_residual`, :func:`imbalance`).

Base install only: numpy, faiss.
"""
from __future__ import annotations

from .incremental_add import (
    DriftReport,
    add_to_index,
    check_drift,
    imbalance,
    mean_residual,
)
from .shard_fill import (
    build_shards,
    coarse_assign,
    fill_shard,
    shard_of,
    splitmix64,
    training_key,
    training_sample,
)
from .shard_folder import (
    FORMAT_VERSION,
    HASH_NAME,
    MANIFEST,
    ChecksumError,
    read_manifest,
    sha256_file,
    shard_file,
    verify_shards,
    write_manifest,
    write_shard,
)
from .sharded_index import ShardedIndex, shard_ids

__all__ = [
    "FORMAT_VERSION",
    "HASH_NAME",
    "MANIFEST",
    "ChecksumError",
    "DriftReport",
    "ShardedIndex",
    "add_to_index",
    "build_shards",
    "check_drift",
    "coarse_assign",
    "fill_shard",
    "imbalance",
    "mean_residual",
    "read_manifest",
    "sha256_file",
    "shard_file",
    "shard_ids",
    "shard_of",
    "splitmix64",
    "training_key",
    "training_sample",
    "verify_shards",
    "write_manifest",
    "write_shard",
]
