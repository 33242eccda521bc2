"""The ``cf`` candidate channel: the user's ALS factor searched in the bundle's index of pin factors.

A bundle that serves it carries three extra files, written by the cf job (:mod:`pinrec.jobs.cf.cf`):

* ``extra/cf_items.faiss``: an exact inner-product index (``IDMap,Flat``) over the pin factors, ids =
  pin ids. ALS scores a (user, pin) pair by ``user . pin`` with factors of any norm, so the search is
  a maximum inner product search; exact, because the engaged catalogue is small (a query costs N x F
  multiply-adds) and because approximate indexes tuned for normalised vectors lose recall on
  unnormalised ones;
* ``extra/cf_items.parquet``: the same factors as a table (``pin_id`` int64, ``factor``
  list<float32>), for offline readers; checked against the index when the channel opens;
* ``extra/cf_users.parquet``: the user factors as of the cf job's cut-off (``user_id`` int64 sorted
  unique, ``factor`` list<float32>): the collaborative part of the user's snapshot, beside
  ``features_<view>.parquet``.

A user without a factor (unknown, or no engagement before the cut-off) gets nothing from this
channel; the other channels fill the list. Base install only (numpy, pyarrow, faiss).
"""
from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

INDEX_FILE = "cf_items.faiss"
ITEMS_FILE = "cf_items.parquet"
USERS_FILE = "cf_users.parquet"
FILES = (INDEX_FILE, ITEMS_FILE, USERS_FILE)
_EMPTY = np.zeros(0, np.int64)


def factor_table(ids: np.ndarray, factors: np.ndarray, key: str) -> pa.Table:
    """``(key int64, factor list<float32>)`` of (N,) ids and (N, F) factors: the files' layout."""
    factors = np.ascontiguousarray(factors, np.float32)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(factors.reshape(-1)), factors.shape[1])
    return pa.table({key: pa.array(np.asarray(ids, np.int64)), "factor": flat.cast(pa.list_(pa.float32()))})


def read_factors(path: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,) int64, factors (N, F) float32) of a factor file; ValueError naming the file and the
    problem when a column is missing, an id repeats or is out of order, or the factors are ragged,
    null or not finite."""
    table = pq.read_table(path)
    if key not in table.column_names or "factor" not in table.column_names:
        raise ValueError(f"{path} must have columns {key!r} and 'factor', has {table.column_names}")
    ids = table.column(key).to_numpy().astype(np.int64)
    if len(ids) and np.any(np.diff(ids) <= 0):
        raise ValueError(f"{path}: {key} must be sorted and unique")
    col = table.column("factor").combine_chunks()
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if col.null_count or (len(ids) and lengths.min() != lengths.max()) or not len(ids):
        raise ValueError(f"{path}: every row needs a factor of one length (none null), and at least one row")
    factors = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(ids), -1)
    if not np.isfinite(factors).all():
        raise ValueError(f"{path}: factors hold NaN or inf")
    return ids, factors


class CfChannel:
    """The channel over a bundle's three cf files (module docstring).

    Args:
        index_path (str): ``cf_items.faiss``. items_path (str): ``cf_items.parquet``.
        users_path (str): ``cf_users.parquet``.

    Raises ValueError when the files disagree (dimension, pins of the index vs the table).
    """

    def __init__(self, index_path: str, items_path: str, users_path: str) -> None:
        self.index = faiss.read_index(index_path)
        if self.index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"{index_path} must be an inner-product index (ALS scores are dot products)")
        pin_ids, _ = read_factors(items_path, "pin_id")
        id_map = getattr(faiss.downcast_index(self.index), "id_map", None)
        index_ids = None if id_map is None else np.sort(faiss.vector_to_array(id_map))
        if index_ids is None or not np.array_equal(index_ids, pin_ids):
            raise ValueError(f"{index_path} must hold exactly the pins of {items_path} as ids "
                             f"({self.index.ntotal} vs {len(pin_ids)} pins)")
        self.user_ids, self.user_factors = read_factors(users_path, "user_id")
        if self.user_factors.shape[1] != self.index.d:
            raise ValueError(f"{users_path} has {self.user_factors.shape[1]} factors, {index_path} {self.index.d}")

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def factor(self, user: int | None) -> np.ndarray | None:
        """The user's (F,) factor, or None for a user without one."""
        if user is None:
            return None
        pos = int(np.searchsorted(self.user_ids, user))
        if pos == len(self.user_ids) or self.user_ids[pos] != user:
            return None
        return self.user_factors[pos]

    def search(self, user: int | None, n: int) -> np.ndarray:
        """Pin ids (<= n,) int64 with the largest ``user . pin``, best first (ties: smaller pin id
        first); empty for a user without a factor."""
        vec = self.factor(user)
        k = min(n, len(self))
        if vec is None or k < 1:
            return _EMPTY
        scores, ids = self.index.search(vec[None, :], k)
        scores, ids = scores[0], ids[0]
        keep = ids >= 0
        scores, ids = scores[keep], ids[keep]
        return ids[np.lexsort((ids, -scores))]
