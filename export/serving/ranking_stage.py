"""The ranking stage of the recommender: the bundle's ONNX ranker, its optional pre-ranker, and the
re-ranked :class:`Recommendation` list.

:class:`Ranker` opens the ranker (its own onnxruntime session when ``recommend.ranker_threads`` > 0)
and checks its inputs (``categorical``, ``dense``) and outputs (``score``, ``p_<task>``...) against
the encoder; :func:`check_inputs` checks that serving can build every column it reads;
:func:`ranked` re-ranks the scored candidates for diversity (:func:`~pinrec.export.serving.rerank.rerank`)
into Recommendations. Base install only: numpy, onnxruntime.
"""
from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from pinrec.export.encoding import FeatureEncoder

from .bundle_extras import extra_path
from .candidates import CHANNELS, MASKS, Candidates, PinCatalog
from .prerank import PRERANK_FILE, Prerank
from .recommend_config import RecommendConfig
from .rerank import rerank
from .serving_encoding import CONTEXT, EMBEDDING_COLUMNS, ServingEncoder

__all__ = ["Ranker", "Recommendation", "check_inputs", "open_prerank", "ranked"]


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


def check_inputs(columns: Collection[str], snapshot) -> None:
    """Raise ValueError unless serving can build every column the ranker reads from the snapshot's
    views (and the context, the embeddings, ids), and the snapshot has a ``user`` view."""
    views = {c.split("__", 1)[0] for c in columns if "__" in c}
    unknown = [c for c in columns if c not in (*CONTEXT, *EMBEDDING_COLUMNS, "category", "user_id", "pin_id")
               and c.split("__", 1)[0] not in snapshot.views]
    if unknown or not views <= set(snapshot.views):
        raise ValueError(f"the ranker reads columns serving cannot build: {unknown or sorted(views)} "
                         f"(snapshot views: {list(snapshot.views)})")
    if "user" not in snapshot.views:
        raise ValueError("the feature snapshot has no 'user' view: no saves, no user features")


@dataclass(frozen=True, eq=False)
class Ranker:
    """The bundle's ONNX ranker: its session, output names and the tasks of its ``p_<task>`` outputs."""

    session: ort.InferenceSession
    outputs: list[str]
    tasks: tuple[str, ...]

    @classmethod
    def open(cls, bundle, encoder: FeatureEncoder, threads: int) -> Ranker:
        """The bundle's ranker (``threads`` > 0: a session of its own with that many intra-op threads),
        checked against ``encoder``'s columns."""
        sess = bundle.ranker
        if threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            sess = ort.InferenceSession(os.path.join(bundle.root, bundle.manifest.of_role("ranker")[0].path), opts,
                                        providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in sess.get_inputs()}
        outputs = [o.name for o in sess.get_outputs()]
        want = {"categorical": len(encoder.categorical_names), "dense": len(encoder.dense_names)}
        if set(inputs) != set(want) or "score" not in outputs:
            raise ValueError(f"the ranker must take inputs {sorted(want)} and output 'score' and p_<task>; it takes "
                             f"{sorted(inputs)} and outputs {outputs}")
        for name, width in want.items():
            if isinstance(inputs[name][1], int) and inputs[name][1] != width:
                raise ValueError(f"the ranker's {name} input has {inputs[name][1]} columns, the encoder makes {width}")
        return cls(sess, outputs, tuple(o[2:] for o in outputs if o.startswith("p_")))

    def run(self, categorical: np.ndarray, dense: np.ndarray) -> dict[str, np.ndarray]:
        """Output name -> (B,) scores of a (B, C) categorical and (B, F) dense batch."""
        return dict(zip(self.outputs, self.session.run(self.outputs, {"categorical": categorical, "dense": dense})))


def open_prerank(bundle, serving: ServingEncoder, config: RecommendConfig) -> Prerank:
    """The bundle's pre-ranker (``extra/prerank.onnx``), which ``recommend.prerank_keep`` > 0 needs."""
    path = extra_path(bundle, PRERANK_FILE)
    if path is None:
        raise ValueError(f"recommend.prerank_keep={config.prerank_keep} but bundle {bundle.name}/"
                         f"{bundle.version} carries no extra/{PRERANK_FILE} (train one with "
                         "ranker_job.prerank=logistic, or set recommend.prerank_keep=0)")
    return Prerank(path, serving, config.ranker_threads)


def ranked(out: dict[str, np.ndarray], cand: Candidates, k: int, tasks: tuple[str, ...], pins: PinCatalog,
           embeddings: np.ndarray | None, config: RecommendConfig) -> list[Recommendation]:
    """At most ``k`` of the B candidates scored ``out`` (:meth:`Ranker.run`), re-ranked under
    ``recommend.category_cap`` and ``recommend.mmr_lambda`` (MMR reads the (P, D) ``embeddings``), best first."""
    chosen = rerank(out["score"], cand.pin_ids, pins.cat[cand.rows], k, config.category_cap,
                    config.mmr_lambda, lambda pos: np.asarray(embeddings[cand.rows[pos]], np.float32))
    probs = [dict(zip(tasks, p)) for p in zip(*(out[f"p_{t}"][chosen].tolist() for t in tasks))]
    names = pins.category_names
    return [Recommendation(pid, s, CHANNELS[c], names[cat], p, MASKS[m])
            for pid, s, c, cat, m, p in zip(cand.pin_ids[chosen].tolist(), out["score"][chosen].tolist(),
                                            cand.channel[chosen].tolist(), pins.cat[cand.rows[chosen]].tolist(),
                                            cand.mask[chosen].tolist(), probs)]
