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

The code lives in modules of one idea each; the names the jobs, benchmarks and notebooks use are
importable from here as before the split (``__all__``; the channel modules' are internal):

- :mod:`pinrec.export.serving.recommend_config`: :class:`RecommendConfig`;
- :mod:`pinrec.export.serving.recommender`: :class:`Recommender`, :class:`LoaderRecommender`,
  :data:`STAGES`;
- :mod:`pinrec.export.serving.channel_setup` / :mod:`pinrec.export.serving.channel_retrieval`: the
  channels a bundle can serve, and the candidates of one request;
- :mod:`pinrec.export.serving.ranking_stage`: the ranker, the pre-ranker and :class:`Recommendation`;
- :mod:`pinrec.export.serving.bundle_extras`: a bundle's extra files (:data:`EMBEDDINGS_FILE`).
"""
from __future__ import annotations

from .bundle_extras import EMBEDDINGS_FILE  # noqa: F401 -- importable from here, as before the split
from .candidates import CHANNELS, Candidates
from .ranking_stage import Recommendation
from .recommend_config import RecommendConfig
from .recommender import STAGES, LoaderRecommender, Recommender
from .serving_encoding import CONTEXT, EMBEDDING_COLUMNS
from .serving_request import RequestError

__all__ = ["CHANNELS", "CONTEXT", "EMBEDDING_COLUMNS", "STAGES", "Candidates", "LoaderRecommender",
           "RecommendConfig", "Recommendation", "Recommender", "RequestError"]
