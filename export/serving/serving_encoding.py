"""The ranker's encoder split by input source, with what depends on the bundle only encoded once.

A ranker input comes from the request (``context``: :data:`CONTEXT`; ``user``: the user feature
view; ``request``: ``user_id``), the pin (``meta``: category, pin id; ``pin``: the pin view),
``embedding`` (PinSage pin and user embeddings), ``uc`` (the user x category view) or ``cross``
(a feature reading several sources, e.g. ``eq(category, user__top_category)``). Every feature is
encoded from its own input columns only, so encoding each source's features with an encoder of
their own (a :class:`Part`) and writing the outputs to their places gives the full encoder's
(B, C) and (B, F) bit for bit.

:class:`ServingEncoder` encodes once per bundle the pins' metadata and pin view, and, when the
bundle's :class:`~pinrec.export.serving.feature_snapshot.FeatureSnapshot` serves (not Redis), every user's user-view
row (:class:`~pinrec.export.serving.serving_request.UserTable`) and every user x category row; per request it only gathers rows. A row
whose ``feature_ts`` is older than ``now - ttl`` gets the encoding of a missing row, exactly as
:meth:`FeatureSnapshot.lookup` would give. The context's categoricals are dict lookups into the
encoder's vocabularies; ``eq(category, user__<string>)`` compares category codes. What cannot be
precomputed (embeddings, hashed ids, other cross features) is encoded per request from a frame.
Base install only: numpy, pyarrow.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pinrec.export.encoding import (
    Categorical,
    Dot,
    Embedding,
    EncoderSpec,
    Equal,
    FeatureEncoder,
)

from .embedding_features import EMBEDDING_COLUMNS

CONTEXT = ("surface", "device", "country", "hour", "day_of_week")


def needed_columns(encoder: FeatureEncoder) -> list[str]:
    """Every input column ``encoder`` reads, in feature order."""
    out: list[str] = []
    embedded = [f.name for f in encoder.spec.features if isinstance(f, Embedding) and f.name not in EMBEDDING_COLUMNS]
    if embedded:
        raise ValueError(f"the ranker reads embedding columns {embedded}; serving provides {EMBEDDING_COLUMNS}")
    for f in encoder.spec.features:
        for name in _inputs(f):
            if name not in out:
                out.append(name)
    return out


def _inputs(f) -> tuple[str, ...]:
    return (f.left, f.right) if isinstance(f, (Dot, Equal)) else (f.name,)


def source(column: str) -> str:
    """Where a ranker input comes from (see the module docstring)."""
    if column in EMBEDDING_COLUMNS:
        return "embedding"
    if column in CONTEXT:
        return "context"
    if column.startswith("user__"):
        return "user"
    if column == "user_id":
        return "request"
    if column in ("category", "pin_id"):
        return "meta"
    return "pin" if column.startswith("pin__") else "uc" if column.startswith("user_category__") else "cross"


class Part:
    """The features of one source as an encoder of their own, and where its (B, C') and (B, F')
    outputs go in the full encoder's (B, C) and (B, F)."""

    def __init__(self, full: FeatureEncoder, features: list) -> None:
        self.features = features
        self.encoder = FeatureEncoder(EncoderSpec(tuple(features), None, full.spec.max_position),
                                      {f.name: full.state[f.name] for f in features if f.name in full.state})
        cat_at = {n: i for i, n in enumerate(full.categorical_names)}
        dense_at = {n: i for i, n in enumerate(full.dense_names)}
        self.cat_pos = np.array([cat_at[n] for n in self.encoder.categorical_names], np.int64)
        self.dense_pos = np.array([dense_at[n] for n in self.encoder.dense_names], np.int64)
        self.columns = needed_columns(self.encoder)

    def encode_rows(self, table: pa.Table, missing: pa.Table) -> tuple[np.ndarray, ...]:
        """(categorical, dense) of every row of ``table`` and of the one-row ``missing``."""
        e, m = self.encoder.transform(table), self.encoder.transform(missing)
        return e.categorical, e.dense, m.categorical[0], m.dense[0]


def _valid(view) -> pa.Table:
    """A view snapshot's rows as :meth:`ViewSnapshot.lookup` gives them when fresh."""
    return view.values.append_column(pa.field(view.meta.missing_column, pa.bool_()),
                                     pa.array(np.zeros(view.num_rows, bool)))


class ServingEncoder:
    r"""Encodes (user, candidate pins, context) for the ranker (see the module docstring).

    Args:
        encoder (FeatureEncoder): the bundle's fitted encoder.
        snapshot (FeatureSnapshot): the bundle's feature snapshot (pin features always come from it).
        categories (pa.Array): (K + 1,) category names, the last null; ``cat`` (N,) int64 each
            pin's code in it; ``pin_ids`` (N,) int64.
        frame (callable): ``(request, rows, columns) -> frame`` of the generic path.
        users (UserTable, optional): the snapshot serves the user and user x category features
            (:class:`~pinrec.export.serving.serving_request.UserTable`): encode them once. ``None``: per request
            from ``frame`` (e.g. Redis in front). (default: ``None``)
    """

    def __init__(self, encoder: FeatureEncoder, snapshot, categories: pa.Array, cat: np.ndarray,
                 pin_ids: np.ndarray, frame: Callable, users: Any = None) -> None:
        self.encoder, self.users, self._frame, self._cat = encoder, users, frame, cat
        groups: dict[str, list] = {}
        for f in encoder.spec.features:
            sources = {source(c) for c in _inputs(f)}
            groups.setdefault(sources.pop() if len(sources) == 1 else "cross", []).append(f)
        self.parts = {name: Part(encoder, feats) for name, feats in groups.items()}
        self._cross_by_category = "cross" in self.parts and all(
            c == "category" or source(c) in ("context", "user", "request", "uc") for c in self.parts["cross"].columns)
        self._categories = categories
        self._fast: dict[str, Any] = {}
        self._uc_keys: tuple[np.ndarray, ...] | None = None
        if "meta" in self.parts:
            part = self.parts["meta"]
            if part.columns == ["category"]:  # encode each category once
                e = part.encoder.transform({"category": categories})
                self._meta = (e.categorical[cat], e.dense[cat])
            else:
                e = part.encoder.transform({"category": categories.take(pa.array(cat)), "pin_id": pa.array(pin_ids)})
                self._meta = (e.categorical, e.dense)
        if "pin" in self.parts:
            view = snapshot.view("pin")
            table = snapshot.lookup("pin", pa.array(pin_ids))  # valid at the cut-off
            self._pin = self.parts["pin"].encode_rows(table, snapshot.lookup("pin", pa.nulls(1, pa.int64())))
            self._pin_fts = to_us(table.column(view.meta.feature_ts_column))
            self._pin_ttl_us, self._pin_cutoff_us = view.meta.ttl_s * 1_000_000, view.cutoff_us
        if users is None:
            return
        part = self.parts.get("context")
        if part is not None and all(isinstance(f, Categorical) for f in part.features):
            self._fast["context"] = [(f.name, {v: i + 1 for i, v in enumerate(part.encoder.state[f.name]["vocab"])})
                                     for f in part.features]
        if "user" in self.parts:
            self._fast["user"] = self.parts["user"].encode_rows(_valid(users.view),
                                                                snapshot.lookup("user", pa.nulls(1, pa.int64())))
        if "uc" in self.parts:
            view = snapshot.view("user_category")
            none = snapshot.lookup("user_category", {"user_id": pa.nulls(1, pa.int64()),
                                                     "category": pa.nulls(1, pa.string())})
            self._fast["uc"] = (view, self.parts["uc"].encode_rows(_valid(view), none))
            if view.meta.entities == ("user_id", "category"):  # rows by (user id, pin category code)
                keys = view.key_tuples()
                uid = np.fromiter((k[0] for k in keys), np.int64, len(keys))
                code = pc.index_in(pa.array([k[1] for k in keys], pa.string()), value_set=categories[:-1])
                code = code.fill_null(-1).to_numpy().astype(np.int64)
                order = np.lexsort((code, uid))
                self._uc_keys = (uid[order], code[order], order)
        part = self.parts.get("embedding")
        if part is not None and all(isinstance(f, (Embedding, Dot)) for f in part.features):
            at = {n: i for i, n in enumerate(part.encoder.dense_names)}
            self._fast["embedding"] = [(f, part.dense_pos[at[f"{f.name}[0]" if isinstance(f, Embedding) else f.name]])
                                       for f in part.features]
        part = self.parts.get("cross")
        pair = {"category", "user__top_category"}
        if part is not None and users.has_top and all(isinstance(f, Equal) and {f.left, f.right} == pair
                                                      for f in part.features):
            self._fast["cross"] = True

    def encode(self, req, rows: np.ndarray, only: Collection[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(categorical (B, C) int64, dense (B, F) float32) of (``req``'s user and context, pins ``rows``).
        ``only``: encode just these parts (names of :attr:`parts`); the other parts' columns are left
        uninitialised (the pre-ranker reads a subset of the columns, :mod:`pinrec.export.serving.prerank`)."""
        parts = self.parts if only is None else {n: p for n, p in self.parts.items() if n in only}
        fast, b = self._fast, len(rows)
        cat = np.empty((b, len(self.encoder.categorical_names)), np.int64)
        dense = np.empty((b, len(self.encoder.dense_names)), np.float32)
        for name in ("context", "user", "request"):
            if name not in parts:
                continue
            part = parts[name]
            if name == "context" and "context" in fast:
                cat[:, part.cat_pos] = [0 if (v := req.context.get(c)) is None else vocab.get(str(v), 0)
                                        for c, vocab in fast["context"]]
            elif name == "user" and "user" in fast:
                c_, d_, mc, md = fast["user"]
                cat[:, part.cat_pos], dense[:, part.dense_pos] = (c_[req.user_pos], d_[req.user_pos]) \
                    if req.user_pos >= 0 else (mc, md)
            else:  # one row, repeated
                e = part.encoder.transform(self._frame(req, np.zeros(1, np.int64), part.columns))
                cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
        if "meta" in parts:
            part = parts["meta"]
            cat[:, part.cat_pos], dense[:, part.dense_pos] = self._meta[0][rows], self._meta[1][rows]
        if "pin" in parts:
            if req.now_us < self._pin_cutoff_us:
                raise ValueError("the pin features' snapshot cannot serve a time before its cut-off")
            part, (pc_, pd_, mc, md) = parts["pin"], self._pin
            fresh = (self._pin_fts[rows] >= req.now_us - self._pin_ttl_us)[:, None]
            cat[:, part.cat_pos] = np.where(fresh, pc_[rows], mc)
            dense[:, part.dense_pos] = np.where(fresh, pd_[rows], md)
        if "embedding" in parts:
            part = parts["embedding"]
            if "embedding" in fast:
                self._embed(req, rows, dense)
            else:
                e = part.encoder.transform(self._frame(req, rows, part.columns))
                cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
        codes, inverse = np.unique(self._cat[rows], return_inverse=True)
        inverse = inverse.ravel()
        for name in ("uc", "cross"):
            if name not in parts:
                continue
            part = parts[name]
            if name in fast:
                c_, d_ = self._uc(req, codes) if name == "uc" else self._eq(req, codes, part)
            elif name == "uc" or self._cross_by_category:  # one row per distinct category
                _, first = np.unique(self._cat[rows], return_index=True)
                e = part.encoder.transform(self._frame(req, rows[first], part.columns))
                c_, d_ = e.categorical, e.dense
            else:
                e = part.encoder.transform(self._frame(req, rows, part.columns))
                cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
                continue
            cat[:, part.cat_pos], dense[:, part.dense_pos] = c_[inverse], d_[inverse]
        return cat, dense

    def _uc(self, req, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Precomputed user x category rows of (user, each category code), missing where absent or expired."""
        view, (c_, d_, mc, md) = self._fast["uc"]
        if self._uc_keys is not None:  # the user's rows are contiguous, sorted by category code
            uid, code, row = self._uc_keys
            rows = np.full(len(codes), -1, np.int64)
            if req.user is not None:
                lo, hi = int(np.searchsorted(uid, req.user, "left")), int(np.searchsorted(uid, req.user, "right"))
                if hi > lo:
                    at = np.minimum(np.searchsorted(code[lo:hi], codes), hi - lo - 1)
                    rows = np.where(code[lo:hi][at] == codes, row[lo + at], -1)
        else:
            keys = {"user_id": pa.array(np.full(len(codes), -1 if req.user is None else req.user, np.int64),
                                        mask=np.full(len(codes), req.user is None)),
                    "category": self._categories.take(pa.array(codes))}
            rows = view.rows(view.key_columns(keys))
        found = rows >= 0
        take = np.maximum(rows, 0)
        fresh = view.fresh(view.fts_us[take] if view.num_rows else np.zeros(len(rows), np.int64), found, req.now)
        if not view.num_rows:  # an empty view (no user x category row in the snapshot): every value missing
            return (np.broadcast_to(mc, (len(codes), *np.shape(mc))).copy(),
                    np.broadcast_to(md, (len(codes), *np.shape(md))).copy())
        return np.where(fresh[:, None], c_[take], mc), np.where(fresh[:, None], d_[take], md)

    def _embed(self, req, rows: np.ndarray, dense: np.ndarray) -> None:
        """The embedding part into ``dense``, as :meth:`FeatureEncoder.transform` computes it."""
        values = {}
        for f, at in self._fast["embedding"]:
            if isinstance(f, Embedding):
                v = self._frame(req, rows, [f.name])[f.name]
                values[f.name] = np.nan_to_num(v.astype(np.float32))
                dense[:, at: at + f.dim] = values[f.name]
        for f, at in self._fast["embedding"]:
            if isinstance(f, Dot):
                dense[:, at] = (values[f.left] * values[f.right]).sum(1)

    def _eq(self, req, codes: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
        """``eq(category, user__top_category)`` of each category code: 1.0 when they are equal."""
        top = self.users.top_code(req.user_pos)
        null = len(self._categories) - 1
        eq = ((codes == top) & (codes != null) & (top >= 0)).astype(np.float32)
        return np.zeros((len(codes), 0), np.int64), np.repeat(eq[:, None], len(part.features), 1)


def to_us(ts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps -> int64 microseconds, int64 min where null."""
    return ts.cast(pa.timestamp("us", ts.type.tz)).cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
