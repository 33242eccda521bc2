"""Scorers for retrieval evaluation: item embeddings of any model, popularity, ALS, BPR and EASE.

A :class:`Scorer` maps query users (U,) and their candidate items (U, C) to scores (U, C); higher
ranks first. All are fitted on a training interaction log, a frame of ``(user_id, pin_id, ts)``
(for the item-to-item protocol, boards play the users: ``user_id`` = ``board_id``).

* :class:`EmbeddingScorer`: the user is the mean of the embeddings of their training items
  (recency-weighted with a half-life, optionally); score = dot product with the candidate's
  embedding. Works for any model that gives item embeddings (PinSage, ALS item factors, ...).
* :class:`PopularityScorer`: the number of distinct training users of the candidate.
* :class:`ImplicitScorer`: ``u_user . v_item`` of a matrix factorisation from the ``implicit``
  package fitted on the binary user x item matrix: ALS (Hu, Koren & Volinsky, ICDM 2008,
  confidence ``1 + alpha``) or BPR (Rendle et al., UAI 2009; the item bias is the last factor).
* :class:`EaseScorer`: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW
  2019), the closed-form item-item model ``B = I - P diag(1 / diag P)``, ``P = (X^T X + lambda I)^-1``
  on the binary user x item matrix X; score = ``x_user . B[:, item]``.

Items missing from an embedding table score ``-inf`` (never recommended, see
:mod:`pinrec.models.retrieval_metrics`); the matrix factorisations index every item of the catalogue they
are given, so an item without training interactions keeps its (regularised) factor.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

LOG_COLUMNS = ("user_id", "pin_id", "ts")


class Scorer(Protocol):
    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """users (U,) int64, candidates (U, C) int64 pin ids -> (U, C) float scores."""


@dataclass(frozen=True)
class ItemEmbeddings:
    """Embeddings of items by pin id: ``ids`` (N,) int64 unique, ``vectors`` (N, D) float32."""

    ids: np.ndarray
    vectors: np.ndarray

    def __post_init__(self) -> None:
        ids, vectors = np.asarray(self.ids, dtype=np.int64), np.asarray(self.vectors, dtype=np.float32)
        if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors) or len(ids) == 0:
            raise ValueError(f"ids must be (N,) and vectors (N, D) with N >= 1, got {ids.shape} and {vectors.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ItemEmbeddings.ids repeats a pin id")
        if not np.isfinite(vectors).all():
            raise ValueError("ItemEmbeddings.vectors hold NaN or inf")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "vectors", vectors)

    @classmethod
    def of(cls, value: ItemEmbeddings | Mapping[int, np.ndarray] | tuple[np.ndarray, np.ndarray]) -> ItemEmbeddings:
        """From an :class:`ItemEmbeddings`, a ``{pin_id: vector}`` dict or an ``(ids, matrix)`` pair."""
        if isinstance(value, ItemEmbeddings):
            return value
        if isinstance(value, Mapping):
            if not value:
                raise ValueError("the embedding dict is empty")
            vectors = np.stack([np.asarray(v) for v in value.values()])
            return cls(np.fromiter(value.keys(), np.int64, len(value)), vectors)
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise ValueError("expected ItemEmbeddings, a {pin_id: vector} dict or (ids, matrix), "
                         f"got {type(value).__name__}")

    def lookup(self, pin_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, found)`` for any-shaped ``pin_ids``: (..., D) float32 (zeros where missing), (...) bool."""
        order = np.argsort(self.ids)
        pos = np.clip(np.searchsorted(self.ids, pin_ids, sorter=order), 0, len(self.ids) - 1)
        rows = order[pos]
        found = self.ids[rows] == pin_ids
        return np.where(found[..., None], self.vectors[rows], 0.0).astype(np.float32), found

    def normalized(self) -> ItemEmbeddings:
        """Rows scaled to unit L2 norm (zero rows stay zero): dot product = cosine."""
        norm = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return ItemEmbeddings(self.ids, self.vectors / np.where(norm > 0, norm, 1.0))


#: Item embeddings (or what :meth:`ItemEmbeddings.of` takes), or a function that trains a model on
#: the training log and returns them (the hook for PinSage: it must only see the training
#: interactions of the split being evaluated).
EmbeddingSource = ItemEmbeddings | Mapping | tuple | Callable[[pd.DataFrame], ItemEmbeddings]


def check_log(log: pd.DataFrame) -> pd.DataFrame:
    """``log`` with int64 ids and UTC ``ts``; ValueError when a column or a value is missing."""
    missing = [c for c in LOG_COLUMNS if c not in log.columns]
    if missing:
        raise ValueError(f"interaction log lacks column(s) {missing}; has {list(log.columns)}")
    if log[list(LOG_COLUMNS)].isna().any().any():
        raise ValueError("interaction log has null user_id, pin_id or ts")
    return pd.DataFrame({"user_id": log["user_id"].astype("int64"), "pin_id": log["pin_id"].astype("int64"),
                         "ts": pd.to_datetime(log["ts"], utc=True)}).reset_index(drop=True)


class EmbeddingScorer:
    """Mean of the user's training item embeddings (weights ``0.5 ** (age / half_life_days)``,
    age measured from the user's latest training interaction; ``half_life_days = 0``: plain mean),
    dotted with the candidates' embeddings. Candidates without an embedding score ``-inf``."""

    def __init__(self, embeddings: ItemEmbeddings, train: pd.DataFrame, half_life_days: float = 0.0) -> None:
        if half_life_days < 0:
            raise ValueError(f"half_life_days must be >= 0, got {half_life_days}")
        self.embeddings = ItemEmbeddings.of(embeddings)
        train = check_log(train)
        vectors, found = self.embeddings.lookup(train["pin_id"].to_numpy())
        age = (train.groupby("user_id")["ts"].transform("max") - train["ts"]).dt.total_seconds().to_numpy() / 86400
        weight = (0.5 ** (age / half_life_days) if half_life_days > 0 else np.ones(len(train))) * found
        users, inverse = np.unique(train["user_id"].to_numpy(), return_inverse=True)
        total = np.zeros((len(users), vectors.shape[1]))
        np.add.at(total, inverse, vectors * weight[:, None])
        mass = np.bincount(inverse, weights=weight, minlength=len(users))
        self.users, self.user_vectors = users, total / np.where(mass > 0, mass, 1.0)[:, None]

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.users, users), 0, len(self.users) - 1)
        user_vec = np.where((self.users[pos] == users)[:, None], self.user_vectors[pos], 0.0)
        vectors, found = self.embeddings.lookup(candidates)
        return np.where(found, np.einsum("ud,ucd->uc", user_vec, vectors), -np.inf)


class PopularityScorer:
    """Number of distinct training users of each candidate (0 for an item never seen)."""

    def __init__(self, train: pd.DataFrame) -> None:
        counts = check_log(train).drop_duplicates(["user_id", "pin_id"])["pin_id"].value_counts()
        self.counts = counts

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        flat = self.counts.reindex(np.asarray(candidates).ravel(), fill_value=0).to_numpy(dtype=np.float64)
        return flat.reshape(np.shape(candidates))


class ImplicitScorer:
    """A matrix factorisation of the ``implicit`` package (CPU) fitted on the binary matrix of
    ``train`` over the item ``catalogue`` (pin ids; every candidate must be in it).

    Args:
        kind: ``"als"`` or ``"bpr"``; params: keyword arguments of
        ``implicit.cpu.als.AlternatingLeastSquares`` / ``implicit.cpu.bpr.BayesianPersonalizedRanking``
        (``factors``, ``regularization``, ``iterations``, ``alpha`` / ``learning_rate``,
        ``random_state``, ``num_threads``).
    """

    def __init__(self, kind: str, train: pd.DataFrame, catalogue: np.ndarray, **params) -> None:
        import scipy.sparse as sp
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        models = {"als": AlternatingLeastSquares, "bpr": BayesianPersonalizedRanking}
        if kind not in models:
            raise ValueError(f"unknown implicit model {kind!r}; known: {sorted(models)}")
        pairs = check_log(train).drop_duplicates(["user_id", "pin_id"])
        self.items = np.unique(np.asarray(catalogue, dtype=np.int64))
        unknown = np.setdiff1d(pairs["pin_id"].to_numpy(), self.items)
        if len(unknown):
            raise ValueError(f"{len(unknown)} training pin(s) are not in the catalogue, e.g. {unknown[:5].tolist()}")
        self.users, rows = np.unique(pairs["user_id"].to_numpy(), return_inverse=True)
        cols = np.searchsorted(self.items, pairs["pin_id"].to_numpy())
        matrix = sp.csr_matrix((np.ones(len(pairs), np.float32), (rows, cols)),
                               shape=(len(self.users), len(self.items)))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, single-threaded BLAS
            self.model = models[kind](**params)
            self.model.fit(matrix, show_progress=False)
        self.kind = kind

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.users, users).clip(0, len(self.users) - 1)
        if not (self.users[pos] == users).all():
            raise ValueError(f"{self.kind}: scoring a user without training interactions")
        cols = np.searchsorted(self.items, candidates).clip(0, len(self.items) - 1)
        if not (self.items[cols] == candidates).all():
            raise ValueError(f"{self.kind}: a candidate is not in the catalogue the model was fitted on")
        return np.einsum("ud,ucd->uc", self.model.user_factors[pos], self.model.item_factors[cols]).astype(np.float64)

    def item_embeddings(self) -> ItemEmbeddings:
        """The item factors as embeddings (BPR: without the bias column)."""
        factors = self.model.item_factors
        return ItemEmbeddings(self.items, factors[:, :-1] if self.kind == "bpr" else factors)


#: EASE's default ceiling on the catalogue (two dense N x N float64 matrices: 6.4 GB at 20,000)
EASE_MAX_ITEMS = 20_000


class BaselineTooLarge(ValueError):
    """A baseline would not fit its size limit on this dataset (the message says how big it would be);
    evaluation skips it with a note instead of failing the whole report."""


class EaseScorer:
    """EASE (module docstring) on the binary matrix of ``train`` over the item ``catalogue``.

    ``lam`` (lambda, > 0) is the L2 weight on B; Steck picks it on validation data (hundreds to
    thousands for MovieLens-sized data). Memory and time: X is sparse (users x items, one entry per
    interaction); the (N, N) Gram matrix and its inverse are dense float64 (two at the peak, the
    inverse becoming B in place): ``max_items`` (default 20,000: 2 x 3.2 GB) refuses larger catalogues
    with :class:`BaselineTooLarge`.
    """

    def __init__(self, train: pd.DataFrame, catalogue: np.ndarray, lam: float = 500.0,
                 max_items: int = EASE_MAX_ITEMS) -> None:
        from scipy import sparse

        if not lam > 0:
            raise ValueError(f"EASE lambda must be > 0, got {lam}")
        self.items = np.unique(np.asarray(catalogue, dtype=np.int64))
        if len(self.items) > max_items:
            raise BaselineTooLarge(f"EASE: {len(self.items):,} items exceed max_items={max_items:,} (two dense N x N "
                                   f"float64 matrices, {2 * 8 * len(self.items) ** 2 / 2 ** 30:.1f} GiB)")
        pairs = check_log(train).drop_duplicates(["user_id", "pin_id"])
        cols = np.searchsorted(self.items, pairs["pin_id"].to_numpy()).clip(0, len(self.items) - 1)
        if (self.items[cols] != pairs["pin_id"].to_numpy()).any():
            raise ValueError("EASE: a training pin is not in the catalogue")
        self.users, rows = np.unique(pairs["user_id"].to_numpy(), return_inverse=True)
        self.x = sparse.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)),
                                   shape=(len(self.users), len(self.items)))
        gram = (self.x.T @ self.x).toarray()
        gram[np.diag_indices_from(gram)] += lam
        p = np.linalg.inv(gram)
        del gram
        p /= -np.diag(p)[None, :]  # B = -P / diag(P), in place
        np.fill_diagonal(p, 0.0)
        self.weights = p

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.users, users).clip(0, len(self.users) - 1)
        if not (self.users[pos] == users).all():
            raise ValueError("ease: scoring a user without training interactions")
        cols = np.searchsorted(self.items, candidates).clip(0, len(self.items) - 1)
        if not (self.items[cols] == candidates).all():
            raise ValueError("ease: a candidate is not in the catalogue the model was fitted on")
        full = self.x[pos] @ self.weights  # (U, N) dense: a sparse block of rows times B
        return np.take_along_axis(full, cols, axis=1)
