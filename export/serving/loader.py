"""The serving loader: open a published bundle, verified, and follow its channel.

The public names of three modules, importable from here as before they were split out (the jobs,
the CLI, the benchmarks and the tests import them from this module):

- :mod:`pinrec.export.serving.bundle_open`: :class:`Bundle`, :class:`BundleError`,
  :class:`BundleUnavailable`, :data:`MMAP_FLAGS`, and opening a verified version's files (shards
  memory-mapped; nothing unpickled);
- :mod:`pinrec.export.serving.bundle_fetch`: :func:`resolve` (the channel's pointer), and what refuses
  a version before it opens: the manifest and its sha256, every file's size and sha256, the local
  version folder, and the verified, read-only download cache of a remote store;
- :mod:`pinrec.export.serving.bundle_loader`: :func:`load` and :class:`Loader` (serves one channel;
  ``refresh()`` follows it atomically, after the loader's checks pass).

Base install only: numpy, pyarrow, fsspec, faiss, onnxruntime (no Spark, torch, MLflow, Airflow).
"""
from __future__ import annotations

from .bundle_fetch import resolve
from .bundle_loader import Loader, load
from .bundle_open import MMAP_FLAGS, Bundle, BundleError, BundleUnavailable

__all__ = [
    "MMAP_FLAGS",
    "Bundle",
    "BundleError",
    "BundleUnavailable",
    "Loader",
    "load",
    "resolve",
]
