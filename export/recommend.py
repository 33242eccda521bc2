"""``recommend(user, context, k)``: the serving funnel over an opened bundle (issue #7).

1. **Candidates** from several channels, in priority order (a pin found by several keeps the
   first as its ``channel`` and all of them in ``channels``):

   * ``ann``: the user's most recent saves (``user__last_saved_pins``, newest first; at most
     ``ann_queries``) or an explicit query embedding, searched in the sharded index
     (:class:`export.shards.ShardedIndex` with the tuned ``index.json`` search parameters); the
     per-query lists are fused by weighted reciprocal rank (Cormack et al., SIGIR 2009),
     ``sum_q w_q / (rrf_k + rank_q)`` with recency weights ``w_q = 0.5 ** (q / recency_half_life)``,
     and the best ``ann_candidates`` kept;
   * ``category``: the most saved pins (``trending_by``, from the pin feature snapshot) of the
     user's top category; ``trending``: the most saved pins overall;
   * ``fresh``: the most recently created pins (cold start), none created after ``now``.

2. **Filter**: pins flagged ``blocked`` or ``nsfw`` (null counts as flagged), the user's own
   recent saves, ``exclude``, and ANN hits without pin metadata are dropped.
3. **Rank** all candidates in one batch: the feature frame of (user, candidates, context) is built
   from the bundle's feature snapshot (the training set's columns, :mod:`export.feature_store`),
   encoded with the bundle's :class:`~export.encoding.FeatureEncoder` (no ``position`` column:
   position-free scores) and scored by the ONNX ranker (``p_<task>`` and the blended ``score``).
4. **Re-rank** for diversity: greedy selection by score with at most ``category_cap`` pins per
   category and, when ``mmr_lambda < 1``, maximal marginal relevance (Carbonell & Goldstein,
   SIGIR 1998): ``argmax_i lambda * rel_i - (1 - lambda) * max_{j in S} cos(e_i, e_j)``, ``rel``
   the score min-max scaled to [0, 1] over the candidates. Fewer than k pins come back when the
   candidates cannot fill k under the cap.

Everything per request is vectorised (numpy / Arrow); what depends on the bundle only is computed
once per bundle: the fresh and trending orders, pin flags and category codes, and the encoding
of every pin's metadata and pin-view features (the encoder is split by input source, each
feature being encoded from its own columns; a pin whose features expired at ``now`` gets the
encoding of a missing row, as :meth:`FeatureSnapshot.lookup` would give). Per request only the
user/context part (one row) and the user x category part (one row per distinct category) are
encoded. Deterministic: ties break by pin id. An unknown user (or ``None``) gets the cold-start
channels only. With a :class:`~export.feature_store.RedisFeatureStore` as ``features``, user and
user x category features come through it; pin features always come from the bundle's snapshot.

>>> loader = Loader("s3://bucket/serving", "homefeed", s3=S3Options(endpoint_url=...))  # doctest: +SKIP
>>> rec = Recommender.from_loader(loader)                                              # doctest: +SKIP
>>> rec.recommend(42, {"surface": "home_feed", "device": "ios", "country": "US"}, k=50)  # doctest: +SKIP

faiss threads are the process's (``faiss.omp_set_num_threads``); the ranker gets its own
onnxruntime session with ``ranker_threads`` intra-op threads. Base install only: numpy, pyarrow,
faiss, onnxruntime.
"""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc

from .encoding import Dot, Embedding, EncoderSpec, Equal, FeatureEncoder
from .feature_store import FeatureSnapshot, to_micros
from .shards import ShardedIndex

CHANNELS = ("ann", "category", "trending", "fresh")
CONTEXT = ("surface", "device", "country", "hour", "day_of_week")
EMBEDDINGS_FILE = "pin_embeddings.npy"
#: (B, D) embedding inputs of the ranker (:mod:`export.embedding_features`)
EMBEDDING_COLUMNS = ("pin_embedding", "user_embedding")
STAGES = ("features", "ann", "candidates", "encode", "ranker", "rerank")
_MASKS = tuple(tuple(c for b, c in enumerate(CHANNELS) if m >> b & 1) for m in range(1 << len(CHANNELS)))


@dataclass(frozen=True)
class RecommendConfig:
    """How :class:`Recommender` serves.

    ``channels``: candidate channels in priority order (subset of :data:`CHANNELS`).
    ``ann_candidates``: pins kept from the ANN channel; ``ann_queries``: most recent saves used
    as queries; ``recency_half_life``: saves after which a query's weight halves; ``rrf_k``: the
    reciprocal-rank constant. ``fresh_candidates`` / ``trending_candidates``: pins from the
    fresh and from each trending channel; ``trending_by``: the pin feature ranking trending pins.
    ``category_cap``: most pins of one category in the result (0: no cap); ``mmr_lambda``:
    relevance weight of MMR (1: plain score order). ``ranker_threads``: intra-op threads of the
    ranker's own onnxruntime session (0: use the bundle's session as opened).
    """

    channels: tuple[str, ...] = CHANNELS
    ann_candidates: int = 500
    ann_queries: int = 5
    recency_half_life: float = 2.0
    rrf_k: float = 60.0
    fresh_candidates: int = 50
    trending_candidates: int = 50
    trending_by: str = "pin__saves_30d"
    category_cap: int = 10
    mmr_lambda: float = 1.0
    ranker_threads: int = 1

    def __post_init__(self) -> None:
        if (not self.channels or isinstance(self.channels, str) or len(set(self.channels)) != len(self.channels)
                or not set(self.channels) <= set(CHANNELS)):
            raise ValueError(f"recommend.channels must be distinct names from {CHANNELS}, got {self.channels!r}")
        for name in ("ann_candidates", "ann_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"recommend.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("fresh_candidates", "trending_candidates", "category_cap", "ranker_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"recommend.{name} must be >= 0, got {getattr(self, name)}")
        if not self.recency_half_life > 0 or not self.rrf_k >= 0:
            raise ValueError(f"recommend.recency_half_life must be > 0 and rrf_k >= 0, got "
                             f"{self.recency_half_life}, {self.rrf_k}")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"recommend.mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if not self.trending_by.startswith("pin__"):
            raise ValueError(f"recommend.trending_by must be a pin feature column (pin__...), got {self.trending_by!r}")


@dataclass(frozen=True)
class Recommendation:
    """One recommended pin: the ranker's blended ``score``, per-task probabilities ``p``, the
    first ``channel`` that proposed it and every channel that did."""

    pin_id: int
    score: float
    channel: str
    category: str | None
    p: dict[str, float] = field(default_factory=dict)
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Candidates:
    """Merged, filtered candidates of one request, in channel order: ``pin_ids`` (B,) int64,
    ``rows`` (B,) int64 into the bundle's pins, ``channel`` (B,) int64 index into
    :data:`CHANNELS` of the first channel, ``mask`` (B,) int64 bit ``1 << c`` per channel."""

    pin_ids: np.ndarray
    rows: np.ndarray
    channel: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.pin_ids)

    def of(self, channel: str) -> np.ndarray:
        """Pin ids that ``channel`` proposed (in candidate order)."""
        return self.pin_ids[(self.mask >> CHANNELS.index(channel)) & 1 == 1]

    def channel_names(self) -> list[str]:
        return [CHANNELS[c] for c in self.channel]


@dataclass(frozen=True, eq=False)
class _Request:
    user: int | None
    now: Any
    now_us: int
    context: dict[str, Any]
    user_row: pa.Table
    saves: np.ndarray
    top_category: str | None


def _extra(bundle, name: str) -> str | None:
    for entry in bundle.manifest.of_role("extra"):
        if os.path.basename(entry.path) == name:
            return os.path.join(bundle.root, entry.path)
    return None


def _needed_columns(encoder: FeatureEncoder) -> list[str]:
    out: list[str] = []
    embedded = [f.name for f in encoder.spec.features if isinstance(f, Embedding) and f.name not in EMBEDDING_COLUMNS]
    if embedded:
        raise ValueError(f"the ranker reads embedding columns {embedded}; serving provides {EMBEDDING_COLUMNS}")
    for f in encoder.spec.features:
        for name in (f.left, f.right) if isinstance(f, (Dot, Equal)) else (f.name,):
            if name not in out:
                out.append(name)
    return out


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest ``values``, largest first, ties by position: the first ``n``
    of a stable descending sort, in O(len) + O(n log n)."""
    if n <= 0 or not len(values):
        return np.zeros(0, np.int64)
    if n < len(values):
        cut = np.partition(values, len(values) - n)[len(values) - n]  # the n-th largest
        pos = np.flatnonzero(values >= cut)
    else:
        pos = np.arange(len(values))
    return pos[np.argsort(-values[pos], kind="stable")][:n]


def _source(column: str) -> str:
    """Where a ranker input comes from: ``request`` (context, user), ``meta`` (pin metadata),
    ``pin`` (the pin feature view), ``embedding`` (PinSage pin and user embeddings) or ``cross``
    (the user x category view)."""
    if column in EMBEDDING_COLUMNS:
        return "embedding"
    if column in CONTEXT or column == "user_id" or column.startswith("user__"):
        return "request"
    if column in ("category", "pin_id"):
        return "meta"
    return "pin" if column.startswith("pin__") else "cross"


class _Part:
    """The features of one source as an encoder of their own, and where its (B, C') and (B, F')
    outputs go in the full encoder's (B, C) and (B, F). Every feature is encoded from its own
    input columns only, so encoding the parts separately gives the full encoder's output."""

    def __init__(self, full: FeatureEncoder, features: list) -> None:
        self.encoder = FeatureEncoder(EncoderSpec(tuple(features), None, full.spec.max_position),
                                      {f.name: full.state[f.name] for f in features if f.name in full.state})
        cat_at = {n: i for i, n in enumerate(full.categorical_names)}
        dense_at = {n: i for i, n in enumerate(full.dense_names)}
        self.cat_pos = np.array([cat_at[n] for n in self.encoder.categorical_names], np.int64)
        self.dense_pos = np.array([dense_at[n] for n in self.encoder.dense_names], np.int64)
        self.columns = _needed_columns(self.encoder)


class Recommender:
    r"""The funnel of the module docstring over one opened :class:`export.loader.Bundle`.

    Args:
        bundle (Bundle): an opened bundle carrying ``extra/features_<view>.parquet`` and
            ``extra/pin_embeddings.npy`` (needed by the ``ann`` channel from saves and by MMR).
        config (RecommendConfig, optional): channels, sizes and diversity. (default: defaults)
        features (optional): what serves the features: a :class:`FeatureSnapshot` or a
            :class:`~export.feature_store.RedisFeatureStore` (anything with ``lookup(view, keys,
            now)``). (default: the bundle's snapshot)

    Shapes: ``recommend(user, context, k) -> list[Recommendation]`` of length <= k, best first.
    """

    def __init__(self, bundle, config: RecommendConfig | None = None, features: Any = None) -> None:
        self.bundle, self.config = bundle, config or RecommendConfig()
        cfg = self.config
        meta = bundle.index_meta
        if "metric" not in meta:
            raise ValueError(f"bundle {bundle.name}/{bundle.version}: index.json has no 'metric'")
        self.index = ShardedIndex(list(bundle.shards), meta["metric"], meta.get("search_params") or None)
        self.encoder = FeatureEncoder.from_dict(bundle.encoder)
        self.features = features if features is not None else FeatureSnapshot.from_bundle(bundle)
        snapshot = getattr(self.features, "snapshot", self.features)  # a RedisFeatureStore wraps one
        self._cutoff = max(snapshot.meta(v).cutoff for v in snapshot.views)
        self._columns = _needed_columns(self.encoder)
        views = {c.split("__", 1)[0] for c in self._columns if "__" in c}
        unknown = [c for c in self._columns if c not in (*CONTEXT, *EMBEDDING_COLUMNS, "category", "user_id", "pin_id")
                   and c.split("__", 1)[0] not in snapshot.views]
        if unknown or not views <= set(snapshot.views):
            raise ValueError(f"the ranker reads columns serving cannot build: {unknown or sorted(views)} "
                             f"(snapshot views: {list(snapshot.views)})")
        if "user" not in snapshot.views:
            raise ValueError("the feature snapshot has no 'user' view: no saves, no user features")
        self._ranker = self._session(bundle)
        self._pins(bundle)
        path = _extra(bundle, EMBEDDINGS_FILE)
        self.embeddings = np.load(path, mmap_mode="r", allow_pickle=False) if path else None
        if self.embeddings is not None and self.embeddings.shape != (len(self._pin_ids), self.index.d):
            raise ValueError(f"{EMBEDDINGS_FILE} is {self.embeddings.shape}, expected "
                             f"({len(self._pin_ids)}, {self.index.d}): one row per pin, the index's dimension")
        if self.embeddings is None and ("ann" in cfg.channels or cfg.mmr_lambda < 1):
            raise ValueError(f"bundle {bundle.name}/{bundle.version} carries no extra/{EMBEDDINGS_FILE}: drop 'ann' "
                             "from recommend.channels and set mmr_lambda=1 (or pass query= to recommend)")
        self._embedding_table = None
        if set(EMBEDDING_COLUMNS) & set(self._columns):
            if self.embeddings is None:
                raise ValueError(f"the ranker reads PinSage embeddings but bundle {bundle.name}/{bundle.version} "
                                 f"carries no extra/{EMBEDDINGS_FILE}")
            from .embedding_features import EmbeddingTable

            self._embedding_table = EmbeddingTable(self._pin_ids, self.embeddings)
        self._cold_start(snapshot)
        self._encoding(snapshot)

    @classmethod
    def from_loader(cls, loader, config: RecommendConfig | None = None) -> LoaderRecommender:
        """A recommender that follows ``loader.bundle`` across ``Loader.refresh()``."""
        return LoaderRecommender(loader, config)

    # ---------------------------------------------------------------- per bundle
    def _session(self, bundle) -> ort.InferenceSession:
        sess = bundle.ranker
        if self.config.ranker_threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = self.config.ranker_threads, 1
            sess = ort.InferenceSession(os.path.join(bundle.root, bundle.manifest.of_role("ranker")[0].path), opts,
                                        providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in sess.get_inputs()}
        self._outputs = [o.name for o in sess.get_outputs()]
        want = {"categorical": len(self.encoder.categorical_names), "dense": len(self.encoder.dense_names)}
        if set(inputs) != set(want) or "score" not in self._outputs:
            raise ValueError(f"the ranker must take inputs {sorted(want)} and output 'score' and p_<task>; it takes "
                             f"{sorted(inputs)} and outputs {self._outputs}")
        for name, width in want.items():
            if isinstance(inputs[name][1], int) and inputs[name][1] != width:
                raise ValueError(f"the ranker's {name} input has {inputs[name][1]} columns, the encoder makes {width}")
        self.tasks = tuple(o[2:] for o in self._outputs if o.startswith("p_"))
        return sess

    def _pins(self, bundle) -> None:
        pins = bundle.pins
        self._pin_ids = pins.column("pin_id").to_numpy()
        if np.any(np.diff(self._pin_ids) <= 0):
            raise ValueError(f"bundle {bundle.name}/{bundle.version}: pins must be sorted by unique pin_id")
        enc = pc.dictionary_encode(pins.column("category").combine_chunks())
        self._categories = pa.concat_arrays([enc.dictionary.cast(pa.string()), pa.nulls(1, pa.string())])
        self._category_names = self._categories.to_pylist()
        self._category_code = {c: i for i, c in enumerate(self._category_names[:-1])}
        self._cat = enc.indices.fill_null(len(enc.dictionary)).to_numpy().astype(np.int64)
        created = pins.column("created_at")
        self._created = created.cast(pa.timestamp("us", created.type.tz)).cast(pa.int64()) \
            .fill_null(np.iinfo(np.int64).min).to_numpy()
        flagged = pc.or_(pins.column("nsfw").fill_null(True), pins.column("blocked").fill_null(True))
        self._eligible = ~flagged.to_numpy()

    def _cold_start(self, snapshot) -> None:
        cfg = self.config
        ok = np.flatnonzero(self._eligible)  # increasing rows = increasing pin ids: stable sorts break ties by id
        # a request's ``now`` is never before the cut-off: the pins created after it and the
        # ``fresh_candidates`` newest before it are all the fresh channel can return
        after = int((self._created[ok] > min(int(to_micros(snapshot.meta(v).cutoff)[0]) for v in snapshot.views)).sum())
        newest = ok[_top(self._created[ok], cfg.fresh_candidates + after)][::-1]
        self._fresh, self._fresh_us = newest, self._created[newest]  # oldest first
        self._trending = np.zeros(0, np.int64)
        self._by_category: dict[int, np.ndarray] = {}
        if not {"trending", "category"} & set(cfg.channels):
            return
        view = snapshot.view("pin") if "pin" in snapshot.views else None
        if view is None or view.meta.entities != ("pin_id",) or cfg.trending_by not in view.values.column_names:
            raise ValueError(f"the trending channels need the pin view's {cfg.trending_by!r} in the feature snapshot; "
                             "drop 'trending' and 'category' from recommend.channels otherwise")
        score = pc.cast(view.values.column(cfg.trending_by), pa.float64()).to_numpy(zero_copy_only=False)
        rows, found = self._rows(view.keys)
        live = np.flatnonzero(found & ~np.isnan(score))
        rows, score = rows[live], score[live]
        keep = self._eligible[rows]
        rows, score = rows[keep], score[keep]
        self._trending = rows[_top(score, cfg.trending_candidates)]
        cats = self._cat[rows]
        by_cat = np.argsort(cats.astype(np.int16) if len(self._categories) < 2 ** 15 else cats, kind="stable")
        bounds = np.flatnonzero(np.diff(cats[by_cat])) + 1
        for group in np.split(by_cat, bounds) if len(by_cat) else ():
            self._by_category[int(cats[group[0]])] = rows[group[_top(score[group], cfg.trending_candidates)]]

    def _encoding(self, snapshot) -> None:
        """Split the encoder by source; encode every pin's metadata and pin-view features once.
        Per request only the request part (one row) and the cross part are encoded; a pin whose
        features expired at ``now`` (``feature_ts < now - ttl``) gets the encoding of a missing row."""
        groups: dict[str, list] = {}
        for f in self.encoder.spec.features:
            sources = {_source(c) for c in ((f.left, f.right) if isinstance(f, (Dot, Equal)) else (f.name,))}
            groups.setdefault(sources.pop() if len(sources) == 1 else "cross", []).append(f)
        self._parts = {name: _Part(self.encoder, feats) for name, feats in groups.items()}
        self._cross_by_category = "cross" in self._parts and all(
            c == "category" or _source(c) in ("request", "cross") for c in self._parts["cross"].columns)
        if "meta" in self._parts:
            part = self._parts["meta"]
            if part.columns == ["category"]:  # encode each category once
                e = part.encoder.transform({"category": self._categories})
                self._meta_encoded = (e.categorical[self._cat], e.dense[self._cat])
            else:
                e = part.encoder.transform({"category": self._categories.take(pa.array(self._cat)),
                                            "pin_id": pa.array(self._pin_ids)})
                self._meta_encoded = (e.categorical, e.dense)
        if "pin" in self._parts:
            enc, meta = self._parts["pin"].encoder, snapshot.meta("pin")
            table = snapshot.lookup("pin", pa.array(self._pin_ids))  # valid at the cut-off
            e, missing = enc.transform(table), enc.transform(snapshot.lookup("pin", pa.nulls(1, pa.int64())))
            fts = table.column(meta.feature_ts_column)
            fts = fts.cast(pa.timestamp("us", fts.type.tz)).cast(pa.int64()).fill_null(np.iinfo(np.int64).min)
            self._pin_encoded = (e.categorical, e.dense, missing.categorical, missing.dense)
            self._pin_fts, self._pin_ttl_us = fts.to_numpy(), meta.ttl_s * 1_000_000
            self._pin_cutoff_us = int(to_micros(meta.cutoff)[0])

    def _encode(self, req: _Request, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(categorical (B, C) int64, dense (B, F) float32) of (user, pins ``rows``, context)."""
        parts, b = self._parts, len(rows)
        cat = np.empty((b, len(self.encoder.categorical_names)), np.int64)
        dense = np.empty((b, len(self.encoder.dense_names)), np.float32)
        if "request" in parts:
            part = parts["request"]
            e = part.encoder.transform(self._frame(req, np.zeros(1, np.int64), part.columns))
            cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
        if "meta" in parts:
            part = parts["meta"]
            cat[:, part.cat_pos], dense[:, part.dense_pos] = self._meta_encoded[0][rows], self._meta_encoded[1][rows]
        if "pin" in parts:
            if req.now_us < self._pin_cutoff_us:
                raise ValueError("the pin features' snapshot cannot serve a time before its cut-off")
            part, (pc_, pd_, mc, md) = parts["pin"], self._pin_encoded
            fresh = (self._pin_fts[rows] >= req.now_us - self._pin_ttl_us)[:, None]
            cat[:, part.cat_pos] = np.where(fresh, pc_[rows], mc)
            dense[:, part.dense_pos] = np.where(fresh, pd_[rows], md)
        if "embedding" in parts:
            part = parts["embedding"]
            e = part.encoder.transform(self._frame(req, rows, part.columns))
            cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
        if "cross" in parts:
            part = parts["cross"]
            if self._cross_by_category:  # (user, category) features: encode one row per distinct category
                _, first, inverse = np.unique(self._cat[rows], return_index=True, return_inverse=True)
                e = part.encoder.transform(self._frame(req, rows[first], part.columns))
                cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical[inverse], e.dense[inverse]
            else:
                e = part.encoder.transform(self._frame(req, rows, part.columns))
                cat[:, part.cat_pos], dense[:, part.dense_pos] = e.categorical, e.dense
        return cat, dense

    def _rows(self, pin_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows into the pins, found) of (n,) pin ids."""
        pin_ids = np.asarray(pin_ids, np.int64)
        if not len(self._pin_ids):
            return np.zeros(len(pin_ids), np.int64), np.zeros(len(pin_ids), bool)
        pos = np.minimum(np.searchsorted(self._pin_ids, pin_ids), len(self._pin_ids) - 1)
        return pos, self._pin_ids[pos] == pin_ids

    # ---------------------------------------------------------------- per request
    def _request(self, user: int | None, context: Mapping[str, Any] | None) -> _Request:
        context = dict(context or {})
        unknown = sorted(set(context) - {*CONTEXT, "now"})
        if unknown:
            raise ValueError(f"unknown context keys {unknown}; allowed: {[*CONTEXT, 'now']}")
        now = context.pop("now", None)
        if now is not None:
            if not isinstance(now, dt.datetime):
                raise ValueError(f"context['now'] must be a datetime, got {type(now).__name__}")
            utc = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)
            context.setdefault("hour", utc.hour)
            context.setdefault("day_of_week", utc.isoweekday() % 7 + 1)  # Spark's dayofweek: 1 = Sunday
        for key in ("surface", "device", "country"):
            if not isinstance(context.get(key, ""), str | None):
                raise TypeError(f"context[{key!r}] must be a string, got {context[key]!r}")
        for key, low, high in (("hour", 0, 23), ("day_of_week", 1, 7)):
            value = context.get(key)
            if value is not None and (not isinstance(value, int | np.integer) or not low <= value <= high):
                raise ValueError(f"context[{key!r}] must be an int in [{low}, {high}], got {value!r}")
        if user is not None and not isinstance(user, int | np.integer):
            raise ValueError(f"user must be an int user_id or None, got {user!r}")
        row = self.features.lookup("user", pa.array([user], pa.int64()), now)
        saves = row.column("user__last_saved_pins")[0].values if "user__last_saved_pins" in row.column_names \
            else None
        saves = np.zeros(0, np.int64) if saves is None else saves.to_numpy(zero_copy_only=False).astype(np.int64)
        top = row.column("user__top_category")[0].as_py() if "user__top_category" in row.column_names else None
        now_us = int(to_micros(now)[0]) if now is not None else int(to_micros(self._cutoff)[0])
        return _Request(None if user is None else int(user), now, now_us, context, row, saves, top)

    def _ann(self, req: _Request, query: np.ndarray | None) -> np.ndarray:
        """Rows (into the pins) of the ANN channel, best first; hits without pin metadata dropped."""
        cfg = self.config
        if query is not None:
            q = np.atleast_2d(np.asarray(query, np.float32))
        else:
            rows, found = self._rows(req.saves[: cfg.ann_queries])
            if self.embeddings is None or not found.any():
                return np.zeros(0, np.int64)
            q = np.asarray(self.embeddings[rows[found]], np.float32)
            q = q[np.abs(q).sum(1) > 0]  # a pin PinSage did not embed has zeros
            if not len(q):
                return np.zeros(0, np.int64)
        k = min(cfg.ann_candidates, self.index.ntotal)
        if k < 1:
            return np.zeros(0, np.int64)
        _, ids = self.index.search(q, k)
        weights = 0.5 ** (np.arange(len(q)) / cfg.recency_half_life)
        fused = weights[:, None] / (cfg.rrf_k + 1.0 + np.arange(k))[None, :]
        valid = ids >= 0
        uniq, inverse = np.unique(ids[valid], return_inverse=True)  # sorted: the row lookup stays local
        total = np.bincount(inverse, weights=fused[valid], minlength=len(uniq))
        rows, found = self._rows(uniq)
        rows, total = rows[found], total[found]
        return rows[np.argsort(-total, kind="stable")][: cfg.ann_candidates]  # ties: smaller pin id first

    def _candidates(self, req: _Request, query, exclude, timings: dict | None) -> Candidates:
        t0 = time.perf_counter()
        cfg = self.config
        ann = self._ann(req, query) if "ann" in cfg.channels or query is not None else np.zeros(0, np.int64)
        t1 = time.perf_counter()
        parts = {"ann": ann}
        code = self._category_code.get(req.top_category) if req.top_category is not None else None
        parts["category"] = self._by_category.get(code, np.zeros(0, np.int64))[: cfg.trending_candidates]
        parts["trending"] = self._trending
        hi = int(np.searchsorted(self._fresh_us, req.now_us, side="right"))
        parts["fresh"] = self._fresh[max(0, hi - cfg.fresh_candidates): hi][::-1]
        order = list(cfg.channels) if query is None or "ann" in cfg.channels else ["ann", *cfg.channels]
        rows = np.concatenate([parts[c] for c in order]).astype(np.int64)
        chan = np.concatenate([np.full(len(parts[c]), CHANNELS.index(c), np.int64) for c in order])
        uniq, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        mask = np.zeros(len(uniq), np.int64)
        np.bitwise_or.at(mask, inverse, np.left_shift(1, chan))
        by_first = np.argsort(first, kind="stable")
        rows, first, mask = uniq[by_first], first[by_first], mask[by_first]
        keep = self._eligible[rows]
        drop = req.saves if exclude is None else np.concatenate([req.saves, np.asarray(exclude, np.int64)])
        if len(drop):
            keep &= ~np.isin(self._pin_ids[rows], drop)
        rows, first, mask = rows[keep], first[keep], mask[keep]
        if timings is not None:
            timings["ann"] = timings.get("ann", 0.0) + t1 - t0
            timings["candidates"] = timings.get("candidates", 0.0) + time.perf_counter() - t1
        return Candidates(self._pin_ids[rows], rows, chan[first], mask)

    def candidates(self, user: int | None, context: Mapping[str, Any] | None = None, *,
                   query: np.ndarray | None = None, exclude: Sequence[int] | None = None) -> Candidates:
        """The merged, filtered candidates :meth:`recommend` ranks (before ranking)."""
        return self._candidates(self._request(user, context), query, exclude, None)

    def frame(self, user: int | None, pin_ids: np.ndarray, context: Mapping[str, Any] | None = None) -> dict:
        """The ranker's input frame for (user, pins, context): the training set's columns."""
        req = self._request(user, context)
        rows, found = self._rows(pin_ids)
        if not found.all():
            raise ValueError(f"pins without metadata in the bundle: {np.asarray(pin_ids)[~found][:5].tolist()}")
        return self._frame(req, rows)

    def _frame(self, req: _Request, rows: np.ndarray, columns: list[str] | None = None) -> dict:
        """The frame of ``columns`` (default: every column the ranker reads) for pins ``rows``."""
        b, columns = len(rows), self._columns if columns is None else columns
        frame: dict[str, Any] = {}
        by_view: dict[str, list[str]] = {}
        for c in columns:
            if "__" in c:
                by_view.setdefault(c.split("__", 1)[0], []).append(c)
        for c in by_view.get("user", ()):  # one row, repeated
            frame[c] = pa.repeat(req.user_row.column(c)[0], b)
        if "pin" in by_view:
            pin = self.features.lookup("pin", pa.array(self._pin_ids[rows]), req.now)
            frame.update((c, pin.column(c)) for c in by_view["pin"])
        if "user_category" in by_view:  # looked up once per distinct category of the candidates
            codes, inverse = np.unique(self._cat[rows], return_inverse=True)
            uc = self.features.lookup("user_category", {"user_id": pa.repeat(pa.scalar(req.user, pa.int64()),
                                                                             len(codes)),
                                                        "category": self._categories.take(pa.array(codes))}, req.now)
            frame.update(zip(by_view["user_category"], uc.select(by_view["user_category"])
                             .take(pa.array(inverse.ravel())).columns))
        for c in columns:
            if c in frame:
                continue
            if c == "pin_embedding":  # row i of the bundle's embeddings is pin row i (zeros: no embedding)
                frame[c] = np.asarray(self.embeddings[rows], np.float32)
            elif c == "user_embedding":  # the mean of the saves' embeddings, as in training
                user = self._embedding_table.user_vectors(req.user_row.column("user__last_saved_pins"))
                frame[c] = np.broadcast_to(user, (b, user.shape[1]))
            elif c == "category":
                frame[c] = self._categories.take(pa.array(self._cat[rows]))
            elif c == "pin_id":
                frame[c] = pa.array(self._pin_ids[rows])
            elif c == "user_id":
                frame[c] = pa.repeat(pa.scalar(req.user, pa.int64()), b)
            elif c in ("hour", "day_of_week"):
                frame[c] = pa.repeat(pa.scalar(req.context.get(c), pa.int64()), b)
            else:
                frame[c] = pa.repeat(pa.scalar(req.context.get(c), pa.string()), b)
        return frame

    def score(self, frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The ranker's outputs (``p_<task>``..., ``score``; (B,) each) on a frame."""
        batch = self.encoder.transform(frame)
        return dict(zip(self._outputs, self._ranker.run(self._outputs, {"categorical": batch.categorical,
                                                                        "dense": batch.dense})))

    def _rerank(self, cand: Candidates, score: np.ndarray, k: int) -> np.ndarray:
        """Positions of the chosen candidates, in result order."""
        cfg = self.config
        order = np.lexsort((cand.pin_ids, -score))
        cats = self._cat[cand.rows[order]]
        if cfg.category_cap:
            by_cat = np.argsort(cats, kind="stable")
            sorted_cats = cats[by_cat]
            start = np.searchsorted(sorted_cats, sorted_cats, side="left")
            rank = np.empty(len(cats), np.int64)
            rank[by_cat] = np.arange(len(cats)) - start
            order, cats = order[rank < cfg.category_cap], cats[rank < cfg.category_cap]
        if cfg.mmr_lambda >= 1.0 or len(order) <= 1:
            return order[:k]
        emb = np.asarray(self.embeddings[cand.rows[order]], np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        s = score[order]
        rel = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.ones_like(s)
        lam, cap = cfg.mmr_lambda, cfg.category_cap or len(order)
        max_sim = np.full(len(order), -np.inf)
        open_ = np.ones(len(order), bool)
        taken = np.zeros(int(cats.max()) + 1, np.int64)
        chosen: list[int] = []
        while len(chosen) < k and open_.any():
            gain = np.where(open_, lam * rel - (1 - lam) * (max_sim if chosen else 0.0), -np.inf)
            i = int(np.argmax(gain))  # first max: the better-scored of equal gains
            chosen.append(i)
            open_[i] = False
            taken[cats[i]] += 1
            if taken[cats[i]] >= cap:
                open_ &= cats != cats[i]
            max_sim = np.maximum(max_sim, emb @ emb[i])
        return order[np.array(chosen, np.int64)]

    def recommend(self, user: int | None, context: Mapping[str, Any] | None = None, k: int = 50, *,
                  query: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                  timings: dict[str, float] | None = None) -> list[Recommendation]:
        """The top ``k`` pins for ``user`` in ``context`` (keys :data:`CONTEXT` and ``now``, a
        datetime: feature freshness, fresh pins, and ``hour``/``day_of_week`` when not given;
        default the snapshot's cut-off). ``query``: (D,) or (Q, D) embeddings searched instead of
        the user's saves; ``exclude``: pin ids never to return (e.g. already shown).
        ``timings``: filled with the seconds of each of :data:`STAGES`."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        t0 = time.perf_counter()
        req = self._request(user, context)
        t1 = time.perf_counter()
        cand = self._candidates(req, query, exclude, timings)
        if not len(cand):
            return []
        t3 = time.perf_counter()
        categorical, dense = self._encode(req, cand.rows)
        t4 = time.perf_counter()
        out = dict(zip(self._outputs, self._ranker.run(self._outputs, {"categorical": categorical, "dense": dense})))
        t5 = time.perf_counter()
        chosen = self._rerank(cand, out["score"], int(k))
        probs = [dict(zip(self.tasks, p)) for p in zip(*(out[f"p_{t}"][chosen].tolist() for t in self.tasks))]
        names = self._category_names
        result = [Recommendation(pid, s, CHANNELS[c], names[cat], p, _MASKS[m])
                  for pid, s, c, cat, m, p in zip(cand.pin_ids[chosen].tolist(), out["score"][chosen].tolist(),
                                                  cand.channel[chosen].tolist(), self._cat[cand.rows[chosen]].tolist(),
                                                  cand.mask[chosen].tolist(), probs)]
        if timings is not None:
            timings["features"] = timings.get("features", 0.0) + t1 - t0
            timings["encode"] = timings.get("encode", 0.0) + t4 - t3
            timings["ranker"] = timings.get("ranker", 0.0) + t5 - t4
            timings["rerank"] = timings.get("rerank", 0.0) + time.perf_counter() - t5
        return result

    def __repr__(self) -> str:
        cfg = self.config
        return (f"{self.__class__.__name__}({self.bundle.name}/{self.bundle.version}, pins={len(self._pin_ids)}, "
                f"channels={list(cfg.channels)}, ann_candidates={cfg.ann_candidates}, "
                f"category_cap={cfg.category_cap}, mmr_lambda={cfg.mmr_lambda})")


class LoaderRecommender:
    """A :class:`Recommender` over ``loader.bundle``, rebuilt when a refresh swapped the bundle
    (the first request after a refresh pays the rebuild; call :meth:`current` to do it eagerly)."""

    def __init__(self, loader, config: RecommendConfig | None = None) -> None:
        self.loader, self.config = loader, config or RecommendConfig()
        self._lock = threading.Lock()
        self._current: Recommender | None = None

    def current(self) -> Recommender:
        bundle = self.loader.bundle
        rec = self._current
        if rec is None or rec.bundle is not bundle:
            with self._lock:
                rec = self._current
                if rec is None or rec.bundle is not bundle:
                    rec = self._current = Recommender(bundle, self.config)
        return rec

    def recommend(self, user: int | None, context: Mapping[str, Any] | None = None, k: int = 50,
                  **kwargs: Any) -> list[Recommendation]:
        return self.current().recommend(user, context, k, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.loader!r})"
