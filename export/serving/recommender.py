"""The :class:`Recommender` over one opened bundle, and :class:`LoaderRecommender`, which follows a
loader's refreshes. The funnel they serve is described in :mod:`pinrec.export.serving.recommend`; its
stages live beside: :mod:`~pinrec.export.serving.channel_setup` and
:mod:`~pinrec.export.serving.channel_retrieval` (candidates), :mod:`~pinrec.export.serving.ranking_stage`
(pre-rank, rank, re-rank), :mod:`~pinrec.export.serving.session` (session actions). Base install only.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pinrec.export.encoding import FeatureEncoder

from .bundle_extras import EMBEDDINGS_FILE, embedding_table, open_embeddings
from .candidates import Candidates, PinCatalog
from .channel_retrieval import Retrieval
from .channel_setup import (
    cold_start,
    missing_channels,
    open_cf,
    open_two_tower,
    resolve_channels,
)
from .feature_snapshot import FeatureSnapshot
from .ranking_stage import Ranker, Recommendation, check_inputs, open_prerank, ranked
from .recommend_config import RecommendConfig
from .serving_encoding import ServingEncoder, needed_columns
from .serving_request import (
    Frames,
    Request,
    RequestError,
    UserTable,
    check_ids,
    check_k,
    check_query,
)
from .session import list_caps, with_session
from .shards import ShardedIndex

__all__ = ["STAGES", "LoaderRecommender", "Recommender"]
STAGES = ("features", "ann", "candidates", "prerank", "encode", "ranker", "rerank")


class Recommender:
    r"""The funnel of :mod:`pinrec.export.serving.recommend` over one opened :class:`pinrec.export.serving.loader.Bundle`.

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
        check_inputs(self._columns, snapshot)
        self._ranker = Ranker.open(bundle, self.encoder, cfg.ranker_threads)
        self.tasks = self._ranker.tasks
        pins = self.pins = PinCatalog(bundle.pins, f"bundle {bundle.name}/{bundle.version}")
        if not pins.eligible.any():  # every feed would be empty
            raise ValueError(f"bundle {bundle.name}/{bundle.version} has no pin it may serve ({len(pins)} pins, "
                             "none without the nsfw or blocked flag)")
        self._pin_ids, self._cat, self._categories, self._eligible = pins.ids, pins.cat, pins.categories, pins.eligible
        self._category_names, self._category_code, self._rows = pins.category_names, pins.category_code, pins.rows
        self.embeddings = open_embeddings(bundle, len(self._pin_ids), self.index.d)
        self._two_tower = open_two_tower(bundle, pins, self.embeddings, cfg.ranker_threads)
        self._cf = open_cf(bundle)
        self.missing = missing_channels(bundle, cfg, snapshot, self.embeddings, self._two_tower, self._cf)
        self.channels = resolve_channels(cfg.channels, self.missing)
        if self.embeddings is None and cfg.mmr_lambda < 1:
            raise ValueError(f"bundle {bundle.name}/{bundle.version} carries no extra/{EMBEDDINGS_FILE}: "
                             "set recommend.mmr_lambda=1")
        self._embedding_table = embedding_table(bundle, self._columns, self._pin_ids, self.embeddings)
        self._cold = cold_start(snapshot, self.channels, pins, cfg)
        self._users = UserTable(snapshot.view("user"), self._category_code, self.embeddings, self._rows) \
            if isinstance(self.features, FeatureSnapshot) else None  # else: a store in front serves per request
        self._frames = Frames(self.features, self.pins, self._columns, self._cutoff, self._users, self.embeddings,
                              self._embedding_table)
        self._frame = self._frames.frame
        self._caps = list_caps(snapshot.view("user"), cfg.ann_queries)  # how long a merged recent list may be
        self._serving = ServingEncoder(self.encoder, snapshot, self._categories, self._cat, self._pin_ids,
                                       self._frame, self._users)
        self.prerank = open_prerank(bundle, self._serving, cfg) if cfg.prerank_keep else None
        self._retrieval = Retrieval(cfg, self.channels, self.index, pins, self.embeddings, self._cold,
                                    self._two_tower, self._cf, self._frames, self._users)

    @classmethod
    def from_loader(cls, loader, config: RecommendConfig | None = None) -> LoaderRecommender:
        """A recommender that follows ``loader.bundle`` across ``Loader.refresh()``, which then
        switches only to versions it can serve (:class:`LoaderRecommender`)."""
        return LoaderRecommender(loader, config)

    def _request(self, user: int | None, context: Mapping[str, Any] | None, recent: Any = None) -> Request:
        """The request, its recent lists merged with the session actions ``recent`` (validated here)."""
        return with_session(self._frames.request(user, context), recent, self._caps)

    def candidates(self, user: int | None, context: Mapping[str, Any] | None = None, *,
                   query: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                   recent: Sequence[tuple[int, str, Any]] | None = None) -> Candidates:
        """The merged, filtered candidates :meth:`recommend` ranks (before ranking)."""
        query, exclude = check_query(query, self.index.d), check_ids(exclude)
        return self._retrieval.candidates(self._request(user, context, recent), query, exclude, None)

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
        return self._ranker.run(batch.categorical, batch.dense)

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
        """The top ``k`` pins for ``user`` in ``context`` (keys
        :data:`~pinrec.export.serving.serving_encoding.CONTEXT` and ``now``, a datetime: feature
        freshness, fresh pins, and ``hour``/``day_of_week`` when not given; default the snapshot's
        cut-off). ``query``: (D,) or (Q, D) embeddings searched instead of the user's saves;
        ``exclude``: pin ids never to return (e.g. already shown); ``recent``: the session's
        ``(pin_id, action, ts)`` actions no batch has seen (:mod:`pinrec.export.serving.recommend`).
        ``timings``: filled with the seconds of each of :data:`STAGES`. A malformed argument
        raises :class:`~pinrec.export.serving.serving_request.RequestError` (a ValueError) naming it."""
        k, query, exclude = check_k(k), check_query(query, self.index.d), check_ids(exclude)
        if timings is not None and not isinstance(timings, dict):
            raise RequestError(f"timings must be a dict (filled with seconds per stage) or None, got "
                               f"{type(timings).__name__}")
        t0 = time.perf_counter()
        req = self._request(user, context, recent)
        t1 = time.perf_counter()
        cand = self._retrieval.candidates(req, query, exclude, timings)
        if not len(cand):
            return []
        t2 = time.perf_counter()
        if self.prerank is not None:
            cand = self.prerank.keep(req, cand, self.config.prerank_keep)
        t3 = time.perf_counter()
        categorical, dense = self._serving.encode(req, cand.rows)
        t4 = time.perf_counter()
        out = self._ranker.run(categorical, dense)
        t5 = time.perf_counter()
        result = ranked(out, cand, k, self.tasks, self.pins, self.embeddings, self.config)
        if timings is not None:
            for stage, seconds in (("features", t1 - t0), ("prerank", t3 - t2), ("encode", t4 - t3),
                                   ("ranker", t5 - t4), ("rerank", time.perf_counter() - t5)):
                timings[stage] = timings.get(stage, 0.0) + seconds
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
