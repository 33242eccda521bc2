"""``recommend(user, context, k)``: the serving funnel over an opened bundle (issue #7).

1. **Candidates** (:mod:`pinrec.export.serving.candidates`) from several channels, in priority order (a pin found
   by several keeps the first as its ``channel`` and all of them in ``channels``): ``ann``, the
   user's most recent saves (``user__last_saved_pins``, newest first; at most ``ann_queries``)
   or an explicit query embedding searched in the sharded index (:class:`pinrec.export.serving.shards.ShardedIndex`
   with the tuned search parameters), the per-query lists fused by recency-weighted reciprocal
   rank; ``cf``: the user's ALS factor searched in the bundle's pin factors
   (:mod:`pinrec.export.serving.cf_channel`; nothing for a user without one);
   ``category``: the most saved pins (``trending_by``) of the user's top category;
   ``trending``: the most saved pins overall; ``fresh``: the newest pins, none created after ``now``.
2. **Filter**: pins flagged ``blocked`` or ``nsfw`` (null counts as flagged), the user's own
   recent saves, the pins of the request's session actions, ``exclude``, and ANN hits without pin
   metadata are dropped.
3. **Pre-rank** (optional, ``prerank_keep`` > 0; :mod:`pinrec.export.serving.prerank`): when more
   candidates than ``prerank_keep`` remain, the bundle's cheap pre-ranker (``extra/prerank.onnx``)
   scores all of them and only the best ``prerank_keep`` (ties by pin id) go on.
4. **Rank** the candidates in one batch: the (user, candidates, context) inputs the training set
   has (:mod:`pinrec.export.serving.feature_snapshot`), encoded as the bundle's
   :class:`~pinrec.export.encoding.FeatureEncoder` does (no ``position``: position-free scores), scored by
   the ONNX ranker (``p_<task>`` and the blended ``score``).
5. **Re-rank** for diversity (:mod:`pinrec.export.serving.rerank`): at most ``category_cap`` pins per category
   and, when ``mmr_lambda < 1``, maximal marginal relevance. Fewer than k pins come back when the
   candidates cannot fill k under the cap.

What depends on the bundle only is computed once per bundle: the fresh and trending orders, and
(:mod:`pinrec.export.serving.serving_encoding`) the encoding of every pin and, when the bundle's snapshot serves
the features, of every user-view and user x category row and every user's embedding; per request
rows are gathered, a row expired at ``now`` (``feature_ts < now - ttl``) counting as missing
exactly as :meth:`FeatureSnapshot.lookup` says. With a :class:`~pinrec.export.serving.redis_store.RedisFeatureStore`
as ``features``, user and user x category features come through it per request (pin features
always from the snapshot). Deterministic: ties break by pin id. An unknown user (or ``None``) gets
the cold-start channels only, unless the request carries session actions.

**Session actions** (``recent=[(pin_id, action, ts), ...]``, :mod:`pinrec.export.serving.session`): saves and
closeups of the current session that no batch has seen are merged into the request's recent lists
(:class:`~pinrec.export.serving.serving_request.Request` ``saves`` / ``closeups``, newest first, deduplicated, capped)
before any channel reads them, so the ANN channel queries the session's saves first; their pins
are never returned; and a user without a top category (unknown, cold start) gets the category
channel of the newest session pin's category. The ranker's inputs stay the snapshot's: it was
trained on features as the daily batch knew them at the impression (the lists lag the impression by
up to a day and never hold the same session's actions), so feeding it fresher lists would serve it
inputs it never saw in training; the session moves the feed through the candidates it retrieves.

>>> rec = Recommender.from_loader(Loader("s3://bucket/serving", "homefeed"))                # doctest: +SKIP
>>> rec.recommend(42, {"surface": "home_feed", "device": "ios", "country": "US"}, k=50)      # doctest: +SKIP

faiss threads are the process's (``faiss.omp_set_num_threads``); the ranker gets its own
onnxruntime session with ``ranker_threads`` intra-op threads. Base install only: numpy, pyarrow,
faiss, onnxruntime.
"""
from __future__ import annotations

import numbers
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import faiss
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc

from pinrec.export.encoding import FeatureEncoder
from pinrec.schemas.bounds import bounded, check_bounds

from .candidates import (
    CHANNELS,
    MASKS,
    Candidates,
    ColdStart,
    PinCatalog,
    ann_search,
    merge,
)
from .cf_channel import FILES as CF_FILES
from .cf_channel import CfChannel
from .embedding_features import LAST_CLOSEUPS, LAST_SAVED
from .feature_snapshot import FeatureSnapshot
from .prerank import PRERANK_FILE, Prerank
from .rerank import rerank
from .serving_encoding import (
    CONTEXT,
    EMBEDDING_COLUMNS,
    ServingEncoder,
    needed_columns,
)
from .serving_request import (
    Frames,
    Request,
    RequestError,
    UserTable,
    check_ids,
    check_k,
    check_query,
)
from .session import check_recent, list_caps, merged
from .shards import ShardedIndex
from .snapshot_meta import to_micros
from .two_tower import FILES as TWO_TOWER_FILES
from .two_tower import TwoTowerChannel

__all__ = ["CHANNELS", "CONTEXT", "EMBEDDING_COLUMNS", "STAGES", "Candidates", "LoaderRecommender",
           "RecommendConfig", "Recommendation", "Recommender", "RequestError"]
EMBEDDINGS_FILE = "pin_embeddings.npy"
STAGES = ("features", "ann", "candidates", "prerank", "encode", "ranker", "rerank")


@dataclass(frozen=True)
class RecommendConfig:
    """How :class:`Recommender` serves.

    ``channels``: candidate channels in priority order (subset of :data:`CHANNELS`); ``None``: every
    channel the bundle can serve, in the order of :data:`CHANNELS` (a channel named explicitly that the
    bundle cannot serve is an error).
    ``ann_candidates``: pins kept from the ANN channel; ``ann_queries``: most recent saves used
    as queries; ``recency_half_life``: saves after which a query's weight halves; ``rrf_k``: the
    reciprocal-rank constant. ``two_tower_candidates``: pins kept from the two-tower channel (the
    bundle's user tower on the request, its index of pin-tower outputs searched). ``fresh_candidates`` / ``trending_candidates``: pins from the
    fresh and from each trending channel; ``trending_by``: the pin feature ranking trending pins.
    ``category_cap``: most pins of one category in the result (0: no cap); ``mmr_lambda``:
    relevance weight of MMR (1: plain score order). ``ranker_threads``: intra-op threads of the
    ranker's own onnxruntime session (0: use the bundle's session as opened). ``cf_candidates``: pins
    kept from the ``cf`` channel. ``quotas``: channel
    -> most pins it adds to the merged candidates beyond those an earlier channel added (source
    quotas such as ``{ann: 300, trending: 50}``; a channel not named has none). ``prerank_keep``:
    when more merged candidates remain, only the pre-ranker's best this many go to the ranker (the
    bundle must carry ``extra/prerank.onnx``); 0: no pre-ranker, the ranker scores every candidate.
    """

    #: pydantic (not imported here) validates this section strictly when it is a field of the pipeline's config
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid", "allow_inf_nan": False, "coerce_numbers_to_str": True}

    channels: tuple[str, ...] | None = None
    ann_candidates: int = bounded(500, ge=1)
    ann_queries: int = bounded(5, ge=1)
    recency_half_life: float = bounded(2.0, gt=0.0)
    rrf_k: float = bounded(60.0, ge=0.0)
    two_tower_candidates: int = bounded(500, ge=1)
    fresh_candidates: int = bounded(50, ge=0)
    trending_candidates: int = bounded(50, ge=0)
    trending_by: str = "pin__saves_30d"
    category_cap: int = bounded(10, ge=0)
    mmr_lambda: float = bounded(1.0, ge=0.0, le=1.0)
    ranker_threads: int = bounded(1, ge=0)
    quotas: dict[str, int] = field(default_factory=dict)
    prerank_keep: int = bounded(0, ge=0)
    cf_candidates: int = bounded(200, ge=1)

    def __post_init__(self) -> None:
        if self.channels is not None and (not self.channels or isinstance(self.channels, str) or len(set(self.channels)) != len(self.channels)
                or not set(self.channels) <= set(CHANNELS)):
            raise ValueError(f"recommend.channels must be distinct names from {CHANNELS}, got {self.channels!r}")
        check_bounds(self, "recommend")
        if not isinstance(self.quotas, Mapping):  # ValueError, as every config error (pydantic wraps only those)
            raise ValueError(  # noqa: TRY004
                f"recommend.quotas must map channels of {CHANNELS} to counts >= 0, got {self.quotas!r}")
        unknown = sorted(set(self.quotas) - set(CHANNELS), key=repr)
        bad = {c: n for c, n in self.quotas.items()
               if not isinstance(n, numbers.Integral) or isinstance(n, bool | np.bool_) or n < 0}
        if unknown or bad:
            raise ValueError(f"recommend.quotas maps channels of {CHANNELS} to counts >= 0; "
                             f"unknown channels {unknown}, bad counts {bad}")
        if not isinstance(self.trending_by, str) or not self.trending_by.startswith("pin__"):
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


def _extra(bundle, name: str) -> str | None:
    for entry in bundle.manifest.of_role("extra"):
        if os.path.basename(entry.path) == name:
            return os.path.join(bundle.root, entry.path)
    return None


class Recommender:
    r"""The funnel of the module docstring over one opened :class:`pinrec.export.serving.loader.Bundle`.

    Args:
        bundle (Bundle): an opened bundle carrying ``extra/features_<view>.parquet`` and
            ``extra/pin_embeddings.npy`` (needed by the ``ann`` channel from saves and by MMR).
        config (RecommendConfig, optional): channels, sizes and diversity. (default: defaults)
        features (optional): what serves the features: a :class:`FeatureSnapshot` or a
            :class:`~pinrec.export.serving.redis_store.RedisFeatureStore` (anything with ``lookup(view, keys,
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
        self._columns = needed_columns(self.encoder)
        views = {c.split("__", 1)[0] for c in self._columns if "__" in c}
        unknown = [c for c in self._columns if c not in (*CONTEXT, *EMBEDDING_COLUMNS, "category", "user_id", "pin_id")
                   and c.split("__", 1)[0] not in snapshot.views]
        if unknown or not views <= set(snapshot.views):
            raise ValueError(f"the ranker reads columns serving cannot build: {unknown or sorted(views)} "
                             f"(snapshot views: {list(snapshot.views)})")
        if "user" not in snapshot.views:
            raise ValueError("the feature snapshot has no 'user' view: no saves, no user features")
        self._ranker = self._session(bundle)
        pins = self.pins = PinCatalog(bundle.pins, f"bundle {bundle.name}/{bundle.version}")
        if not pins.eligible.any():  # every feed would be empty
            raise ValueError(f"bundle {bundle.name}/{bundle.version} has no pin it may serve ({len(pins)} pins, "
                             "none without the nsfw or blocked flag)")
        self._pin_ids, self._cat, self._categories, self._eligible = pins.ids, pins.cat, pins.categories, pins.eligible
        self._category_names, self._category_code, self._rows = pins.category_names, pins.category_code, pins.rows
        path = _extra(bundle, EMBEDDINGS_FILE)
        self.embeddings = np.load(path, mmap_mode="r", allow_pickle=False) if path else None
        if self.embeddings is not None and self.embeddings.shape != (len(self._pin_ids), self.index.d):
            raise ValueError(f"{EMBEDDINGS_FILE} is {self.embeddings.shape}, expected "
                             f"({len(self._pin_ids)}, {self.index.d}): one row per pin, the index's dimension")
        if self.embeddings is not None and not np.isfinite(self.embeddings).all():  # ANN and MMR would go quiet
            bad = int((~np.isfinite(self.embeddings)).any(axis=1).sum())
            raise ValueError(f"bundle {bundle.name}/{bundle.version}: {EMBEDDINGS_FILE} holds {bad} row(s) with "
                             "NaN or inf")
        self._two_tower = self._open_two_tower(bundle)
        cf_paths = [_extra(bundle, name) for name in CF_FILES]
        self._cf = CfChannel(*cf_paths) if all(cf_paths) else None
        self.channels = self._resolve_channels(snapshot)
        if self.embeddings is None and cfg.mmr_lambda < 1:
            raise ValueError(f"bundle {bundle.name}/{bundle.version} carries no extra/{EMBEDDINGS_FILE}: "
                             "set recommend.mmr_lambda=1")
        self._embedding_table = None
        if set(EMBEDDING_COLUMNS) & set(self._columns):
            if self.embeddings is None:
                raise ValueError(f"the ranker reads PinSage embeddings but bundle {bundle.name}/{bundle.version} "
                                 f"carries no extra/{EMBEDDINGS_FILE}")
            from .embedding_features import EmbeddingTable

            self._embedding_table = EmbeddingTable(self._pin_ids, self.embeddings)
        self._cold_start(snapshot)
        self._users = UserTable(snapshot.view("user"), self._category_code, self.embeddings, self._rows) \
            if isinstance(self.features, FeatureSnapshot) else None  # else: a store in front serves per request
        self._frames = Frames(self.features, self.pins, self._columns, self._cutoff, self._users, self.embeddings,
                              self._embedding_table)
        self._frame = self._frames.frame
        self._caps = list_caps(snapshot.view("user"), cfg.ann_queries)  # how long a merged recent list may be
        self._serving = ServingEncoder(self.encoder, snapshot, self._categories, self._cat, self._pin_ids,
                                       self._frame, self._users)
        self.prerank = self._prerank() if cfg.prerank_keep else None

    @classmethod
    def from_loader(cls, loader, config: RecommendConfig | None = None) -> LoaderRecommender:
        """A recommender that follows ``loader.bundle`` across ``Loader.refresh()``, which then
        switches only to versions it can serve (:class:`LoaderRecommender`)."""
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

    def _prerank(self) -> Prerank:
        path = _extra(self.bundle, PRERANK_FILE)
        if path is None:
            raise ValueError(f"recommend.prerank_keep={self.config.prerank_keep} but bundle {self.bundle.name}/"
                             f"{self.bundle.version} carries no extra/{PRERANK_FILE} (train one with "
                             "ranker_job.prerank=logistic, or set recommend.prerank_keep=0)")
        return Prerank(path, self._serving, self.config.ranker_threads)

    def _missing(self, snapshot) -> dict[str, str]:
        """Channel -> what the bundle lacks to serve it (channels it can serve are absent)."""
        missing = {}
        if self.embeddings is None:
            missing["ann"] = (f"bundle {self.bundle.name}/{self.bundle.version} carries no extra/{EMBEDDINGS_FILE} "
                              "(pass query= to recommend instead)")
        if self._two_tower is None:
            lacking = [f for f in TWO_TOWER_FILES if _extra(self.bundle, f) is None] or [EMBEDDINGS_FILE]
            missing["two_tower"] = f"bundle {self.bundle.name}/{self.bundle.version} carries no extra/{lacking[0]}"
        if self._cf is None:
            missing["cf"] = (f"bundle {self.bundle.name}/{self.bundle.version} carries no "
                             + ", ".join(f"extra/{n}" for n in CF_FILES if _extra(self.bundle, n) is None))
        view = snapshot.view("pin") if "pin" in snapshot.views else None
        if view is None or view.meta.entities != ("pin_id",) or self.config.trending_by not in view.values.column_names:
            missing["category"] = missing["trending"] = \
                f"the feature snapshot's pin view has no {self.config.trending_by!r} (recommend.trending_by)"
        elif not pa.types.is_integer(t := view.values.schema.field(self.config.trending_by).type) \
                and not pa.types.is_floating(t):
            missing["category"] = missing["trending"] = \
                f"recommend.trending_by {self.config.trending_by!r} is {t}, not a number to rank pins by"
        return missing

    def _open_two_tower(self, bundle) -> TwoTowerChannel | None:
        """The two-tower channel when the bundle carries its files and PinSage embeddings (None otherwise)."""
        extras = {os.path.basename(e.path): os.path.join(bundle.root, e.path) for e in bundle.manifest.of_role("extra")}
        if self.embeddings is None or not all(f in extras for f in TWO_TOWER_FILES):
            return None
        return TwoTowerChannel(extras, self.pins, self.embeddings, lambda p: faiss.read_index(p, faiss.IO_FLAG_MMAP_IFC),
                               ShardedIndex, max(self.config.ranker_threads, 1))

    def _two_tower_rows(self, req: Request) -> np.ndarray:
        """Rows of the two-tower channel: the user tower on the request's context, the user view's row
        and the Request's recent saves and closeups (the session's actions merged in). A user the
        snapshot does not know and who has no recent pins (not even the session's) gets nothing from
        it: the tower would see inputs it never trained on, and the cold-start channels serve them."""
        if not len(req.saves) and not len(req.closeups) and not self._known(req):
            return np.zeros(0, np.int64)
        row = self._frames.user_row(req)
        frame = {c: row.column(c) if c in row.column_names else pa.array([req.context.get(c)])
                 for c in self._two_tower.user.columns}
        return self._two_tower.search(frame, req.saves, req.closeups, self.config.two_tower_candidates)

    def _known(self, req: Request) -> bool:
        """Whether the features serve a row for the request's user (unexpired)."""
        if req.user is None:
            return False
        if self._users is not None:  # the bundle's snapshot serves: its row index says
            return req.user_pos >= 0
        row = self._frames.user_row(req)
        return any(row.column(c).null_count < row.num_rows for c in row.column_names if c.startswith("user__"))

    def _resolve_channels(self, snapshot) -> tuple[str, ...]:
        """``recommend.channels``, or every channel the bundle can serve when it is None."""
        missing = self.missing = self._missing(snapshot)
        if self.config.channels is None:
            return tuple(c for c in CHANNELS if c not in missing)
        bad = [c for c in self.config.channels if c in missing]
        if bad:
            raise ValueError(f"recommend.channels names {bad}, which this bundle cannot serve: "
                             + "; ".join(f"{c}: {missing[c]}" for c in bad)
                             + " (drop them, or leave recommend.channels unset to serve what the bundle can)")
        return tuple(self.config.channels)

    def _cold_start(self, snapshot) -> None:
        cfg = self.config
        cutoff_us = min(int(to_micros(snapshot.meta(v).cutoff)[0]) for v in snapshot.views)
        rows = score = None
        if {"trending", "category"} & set(self.channels):
            view = snapshot.view("pin")
            score = pc.cast(view.values.column(cfg.trending_by), pa.float64()).to_numpy(zero_copy_only=False)
            rows, found = self._rows(view.keys)
            rows, score = rows[found], score[found]
        self._cold = ColdStart(self._eligible, self.pins.created_us, cutoff_us, cfg.fresh_candidates,
                                   cfg.trending_candidates, self._cat, rows, score)

    # ---------------------------------------------------------------- per request
    def _request(self, user: int | None, context: Mapping[str, Any] | None, recent: Any = None) -> Request:
        """The request, its recent lists merged with the session actions ``recent`` (validated here)."""
        req = self._frames.request(user, context)
        if recent is None:
            return req
        session = check_recent(recent, req.now_us if req.now is not None else None)
        if len(session):
            req.own_saves = req.saves
            req.saves = merged(session.by_action["save"], req.saves, self._caps[LAST_SAVED])
            req.closeups = merged(session.by_action["closeup"], req.closeups, self._caps[LAST_CLOSEUPS])
            req.session = session.pins
        return req

    def _ann(self, req: Request, query: np.ndarray | None) -> np.ndarray:
        """Rows (into the pins) of the ANN channel, best first; hits without pin metadata dropped.
        ``query``: None or (Q, D) float32, validated (:func:`~pinrec.export.serving.serving_request.check_query`)."""
        cfg = self.config
        if query is not None:
            q = query
        else:
            rows, found = self._rows(req.saves[: cfg.ann_queries])
            if self.embeddings is None or not found.any():
                return np.zeros(0, np.int64)
            q = np.asarray(self.embeddings[rows[found]], np.float32)
            q = q[np.abs(q).sum(1) > 0]  # a pin PinSage did not embed has zeros
        return ann_search(self.index, q, self.pins, cfg.ann_candidates, cfg.recency_half_life, cfg.rrf_k)

    def _cf_rows(self, req: Request) -> np.ndarray:
        """Rows of the ``cf`` channel, best first (pins without metadata dropped)."""
        rows, found = self._rows(self._cf.search(req.user, self.config.cf_candidates))
        return rows[found]

    def _candidates(self, req: Request, query: np.ndarray | None, exclude: np.ndarray,
                    timings: dict | None) -> Candidates:
        t0 = time.perf_counter()
        cfg = self.config
        channels = self.channels
        ann = self._ann(req, query) if "ann" in channels or query is not None else np.zeros(0, np.int64)
        t1 = time.perf_counter()
        code = self._category_code.get(req.top_category) if req.top_category is not None else None
        if req.top_category is None and len(req.session):  # a session pin is all we know of this user's taste
            rows, found = self._rows(req.session)
            code = int(self._cat[rows[found][0]]) if found.any() else None
        two_tower = self._two_tower_rows(req) if "two_tower" in channels else np.zeros(0, np.int64)
        parts = {"ann": ann, "two_tower": two_tower, "category": self._cold.category(code, cfg.trending_candidates),
                 "trending": self._cold.trending, "fresh": self._cold.fresh(req.now_us)}
        parts["cf"] = self._cf_rows(req) if "cf" in channels else np.zeros(0, np.int64)
        order = list(channels) if query is None or "ann" in channels else ["ann", *channels]
        own = req.saves if req.own_saves is None else req.own_saves  # the merged list is capped: all the user's saves
        drop = np.concatenate([own, req.session, exclude]) if len(exclude) or len(req.session) else own
        cand = merge(parts, order, self._eligible, self._pin_ids, drop, cfg.quotas)
        if timings is not None:
            timings["ann"] = timings.get("ann", 0.0) + t1 - t0
            timings["candidates"] = timings.get("candidates", 0.0) + time.perf_counter() - t1
        return cand

    def candidates(self, user: int | None, context: Mapping[str, Any] | None = None, *,
                   query: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                   recent: Sequence[tuple[int, str, Any]] | None = None) -> Candidates:
        """The merged, filtered candidates :meth:`recommend` ranks (before ranking)."""
        query, exclude = check_query(query, self.index.d), check_ids(exclude)
        return self._candidates(self._request(user, context, recent), query, exclude, None)

    def frame(self, user: int | None, pin_ids: np.ndarray, context: Mapping[str, Any] | None = None) -> dict:
        """The ranker's input frame for (user, pins, context): the training set's columns."""
        ids = check_ids(pin_ids, "pin_ids")
        req = self._request(user, context)
        rows, found = self._rows(ids)
        if not found.all():
            raise ValueError(f"pins without metadata in the bundle: {ids[~found][:5].tolist()}")
        return self._frame(req, rows)

    def score(self, frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The ranker's outputs (``p_<task>``..., ``score``; (B,) each) on a frame."""
        batch = self.encoder.transform(frame)
        return dict(zip(self._outputs, self._ranker.run(self._outputs, {"categorical": batch.categorical,
                                                                        "dense": batch.dense})))

    def prerank_scores(self, user: int | None, pin_ids: np.ndarray,
                       context: Mapping[str, Any] | None = None) -> np.ndarray:
        """The pre-ranker's (B,) scores of (user, pins, context), encoded as :meth:`recommend` encodes
        them; needs ``recommend.prerank_keep`` > 0 (the pre-ranker is opened only then)."""
        if self.prerank is None:
            raise ValueError("no pre-ranker: recommend.prerank_keep is 0")
        ids = check_ids(pin_ids, "pin_ids")
        rows, found = self._rows(ids)
        if not found.all():
            raise ValueError(f"pins without metadata in the bundle: {ids[~found][:5].tolist()}")
        return self.prerank.scores(self._request(user, context), rows)

    def recommend(self, user: int | None, context: Mapping[str, Any] | None = None, k: int = 50, *,
                  query: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                  recent: Sequence[tuple[int, str, Any]] | None = None,
                  timings: dict[str, float] | None = None) -> list[Recommendation]:
        """The top ``k`` pins for ``user`` in ``context`` (keys :data:`CONTEXT` and ``now``, a
        datetime: feature freshness, fresh pins, and ``hour``/``day_of_week`` when not given;
        default the snapshot's cut-off). ``query``: (D,) or (Q, D) embeddings searched instead of
        the user's saves; ``exclude``: pin ids never to return (e.g. already shown); ``recent``:
        the session's ``(pin_id, action, ts)`` actions no batch has seen (module docstring).
        ``timings``: filled with the seconds of each of :data:`STAGES`. A malformed argument
        raises :class:`~pinrec.export.serving.serving_request.RequestError` (a ValueError) naming it."""
        k, query, exclude = check_k(k), check_query(query, self.index.d), check_ids(exclude)
        if timings is not None and not isinstance(timings, dict):
            raise RequestError(f"timings must be a dict (filled with seconds per stage) or None, got "
                               f"{type(timings).__name__}")
        t0 = time.perf_counter()
        req = self._request(user, context, recent)
        t1 = time.perf_counter()
        cand = self._candidates(req, query, exclude, timings)
        if not len(cand):
            return []
        t2 = time.perf_counter()
        if self.prerank is not None:
            cand = self.prerank.keep(req, cand, self.config.prerank_keep)
        t3 = time.perf_counter()
        categorical, dense = self._serving.encode(req, cand.rows)
        t4 = time.perf_counter()
        out = dict(zip(self._outputs, self._ranker.run(self._outputs, {"categorical": categorical, "dense": dense})))
        t5 = time.perf_counter()
        chosen = rerank(out["score"], cand.pin_ids, self._cat[cand.rows], k, self.config.category_cap,
                        self.config.mmr_lambda, lambda pos: np.asarray(self.embeddings[cand.rows[pos]], np.float32))
        probs = [dict(zip(self.tasks, p)) for p in zip(*(out[f"p_{t}"][chosen].tolist() for t in self.tasks))]
        names = self._category_names
        result = [Recommendation(pid, s, CHANNELS[c], names[cat], p, MASKS[m])
                  for pid, s, c, cat, m, p in zip(cand.pin_ids[chosen].tolist(), out["score"][chosen].tolist(),
                                                  cand.channel[chosen].tolist(), self._cat[cand.rows[chosen]].tolist(),
                                                  cand.mask[chosen].tolist(), probs)]
        if timings is not None:
            timings["features"] = timings.get("features", 0.0) + t1 - t0
            timings["prerank"] = timings.get("prerank", 0.0) + t3 - t2
            timings["encode"] = timings.get("encode", 0.0) + t4 - t3
            timings["ranker"] = timings.get("ranker", 0.0) + t5 - t4
            timings["rerank"] = timings.get("rerank", 0.0) + time.perf_counter() - t5
        return result

    def probe(self) -> None:
        """Answer requests as serving would (a cold start and the first user of the snapshot with
        saves among its first 100 rows, else its first user); raise unless each answers
        Recommendations with finite scores, and at least one of them some. :class:`LoaderRecommender`
        runs it before a refresh."""
        users: list[int | None] = [None]
        view = self._users.view if self._users is not None else None
        if view is not None and view.num_rows and view.key_kinds == ("int",):  # the key is the user id
            pos = next((p for p in range(min(100, view.num_rows)) if len(self._users.saves(p))), 0)
            users.append(int(view.keys[pos]))
        answered = 0
        for user in users:
            out = self.recommend(user, k=10)
            bad = [r for r in out if not np.isfinite(r.score)]
            if bad:
                raise ValueError(f"bundle {self.bundle.name}/{self.bundle.version}: the probe request for user "
                                 f"{user} got {bad[:3]} (scores must be finite)")
            answered += bool(out)
        if not answered:
            raise ValueError(f"bundle {self.bundle.name}/{self.bundle.version}: no probe request (users {users}) got "
                             f"a recommendation from channels {list(self.channels)}")

    def __repr__(self) -> str:
        cfg = self.config
        return (f"{self.__class__.__name__}({self.bundle.name}/{self.bundle.version}, pins={len(self._pin_ids)}, "
                f"channels={list(self.channels)}, ann_candidates={cfg.ann_candidates}, "
                f"category_cap={cfg.category_cap}, mmr_lambda={cfg.mmr_lambda})")


class LoaderRecommender:
    """A :class:`Recommender` over ``loader.bundle`` that follows ``Loader.refresh()``.

    It registers a check with the loader (:meth:`Loader.add_check`, run on the bundle serving now
    too): a refresh switches only to a version whose Recommender builds and answers
    :meth:`Recommender.probe`, and the Recommender built there serves the first request after the
    switch. A version that cannot serve, or (``recommend.channels`` unset) serves fewer channels than
    the version serving now, is refused by ``refresh()`` (:class:`BundleError`) and the previous one
    keeps serving. The loader holds the check weakly: dropping this object drops it.
    """

    def __init__(self, loader, config: RecommendConfig | None = None) -> None:
        self.loader, self.config = loader, config or RecommendConfig()
        self._lock = threading.Lock()
        self._current: Recommender | None = None
        self._ready: Recommender | None = None  # built and probed by the check, not serving yet
        method = weakref.WeakMethod(self._check)

        def check(bundle) -> None:  # the loader holds this, not the object: dropping the object drops the work
            live = method()
            if live is not None:
                live(bundle)

        loader.add_check(check)

    def _check(self, bundle) -> None:
        rec = Recommender(bundle, self.config)
        serving = self._current
        ready = self._ready  # before the first request, the one the check built for the bundle serving now
        if (serving is None or serving.bundle is not self.loader.bundle) and ready is not None \
                and ready.bundle is self.loader.bundle:
            serving = ready
        lost = [c for c in serving.channels if c not in rec.channels] if serving is not None else []
        if lost:  # channels unset: a new version must not silently serve less than the one serving now
            raise ValueError(f"bundle {bundle.name}/{bundle.version} cannot serve channels {lost} that "
                             f"{serving.bundle.version} serves: " + "; ".join(f"{c}: {rec.missing[c]}" for c in lost))
        rec.probe()
        with self._lock:
            self._ready = rec

    def current(self) -> Recommender:
        bundle = self.loader.bundle
        rec = self._current
        if rec is None or rec.bundle is not bundle:
            with self._lock:
                rec = self._current
                if rec is None or rec.bundle is not bundle:
                    if self._ready is not None and self._ready.bundle is bundle:
                        rec, self._ready = self._ready, None
                    else:  # a bundle no check of this object saw (the loader swapped without it)
                        rec = Recommender(bundle, self.config)
                    self._current = rec
        return rec

    def recommend(self, user: int | None, context: Mapping[str, Any] | None = None, k: int = 50,
                  **kwargs: Any) -> list[Recommendation]:
        return self.current().recommend(user, context, k, **kwargs)

    def candidates(self, user: int | None, context: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> Candidates:
        return self.current().candidates(user, context, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.loader!r})"
