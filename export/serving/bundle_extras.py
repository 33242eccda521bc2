"""A bundle's extra files as the recommender opens them: found by name, and the PinSage pin embeddings
(``extra/pin_embeddings.npy``) checked against the pins and the index. Base install only: numpy.
"""
from __future__ import annotations

import os
from collections.abc import Collection

import numpy as np

from .embedding_features import EMBEDDING_COLUMNS, EmbeddingTable

__all__ = ["EMBEDDINGS_FILE", "embedding_table", "extra_path", "open_embeddings"]
EMBEDDINGS_FILE = "pin_embeddings.npy"


def extra_path(bundle, name: str) -> str | None:
    """The local path of the bundle's extra file named ``name`` (its base name), None when it has none."""
    for entry in bundle.manifest.of_role("extra"):
        if os.path.basename(entry.path) == name:
            return os.path.join(bundle.root, entry.path)
    return None


def open_embeddings(bundle, pins: int, dim: int) -> np.ndarray | None:
    """The bundle's (pins, dim) PinSage embeddings, memory-mapped (row i: the pin of row i of the
    bundle's pins); None when it carries none. A wrong shape or a NaN/inf row raises ValueError."""
    path = extra_path(bundle, EMBEDDINGS_FILE)
    embeddings = np.load(path, mmap_mode="r", allow_pickle=False) if path else None
    if embeddings is not None and embeddings.shape != (pins, dim):
        raise ValueError(f"{EMBEDDINGS_FILE} is {embeddings.shape}, expected "
                         f"({pins}, {dim}): one row per pin, the index's dimension")
    if embeddings is not None and not np.isfinite(embeddings).all():  # ANN and MMR would go quiet
        bad = int((~np.isfinite(embeddings)).any(axis=1).sum())
        raise ValueError(f"bundle {bundle.name}/{bundle.version}: {EMBEDDINGS_FILE} holds {bad} row(s) with "
                         "NaN or inf")
    return embeddings


def embedding_table(bundle, columns: Collection[str], pin_ids: np.ndarray,
                    embeddings: np.ndarray | None) -> EmbeddingTable | None:
    """The embedding features of the (P,) pins when the ranker reads some of ``columns``
    (:data:`~pinrec.export.serving.embedding_features.EMBEDDING_COLUMNS`), else None; ValueError when
    it reads them and the bundle carries no embeddings."""
    if not set(EMBEDDING_COLUMNS) & set(columns):
        return None
    if embeddings is None:
        raise ValueError(f"the ranker reads PinSage embeddings but bundle {bundle.name}/{bundle.version} "
                         f"carries no extra/{EMBEDDINGS_FILE}")
    return EmbeddingTable(pin_ids, embeddings)
