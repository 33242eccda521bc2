"""Step 2 of the ranker job, encode: split the training set, check it can train every task, fit the
:class:`~pinrec.export.encoding.FeatureEncoder` on ``train`` only and encode all three splits.

Pure: a :class:`~pinrec.jobs.ranking.ranker_read.TrainingSet` in, an :class:`EncodedData` out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .ranker_configs import RankerConfigs
from .ranker_inputs import infer_negative_rate, with_embeddings
from .ranker_read import TrainingSet, feature_spec

if TYPE_CHECKING:
    from pinrec.export.encoding import EncodedBatch, EncoderSpec, FeatureEncoder
    from pinrec.export.serving.embedding_features import EmbeddingTable

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class EncodedData:
    """The encoded splits, for B_s rows of split s, C categorical and F dense columns, T tasks:

    * ``batches[s]``: :class:`~pinrec.export.encoding.EncodedBatch`, categorical (B_s, C) int64,
      dense (B_s, F) float32, position (B_s,) int64 (0 = unknown);
    * ``labels[s]``: (B_s, T) float32 in ``tasks`` order; ``weights[s]``: (B_s,) float32
      ``sample_weight`` (1 / the negative sampling rate on sampled negatives);
    * ``negative_rate``: the rate negatives were kept at (the commit's, else from the weights);
    * ``sessions``, ``event_ids``, ``positions``: (B_test,) keys of the test rows (NDCG and bootstrap
      groups, the oracle's lookup, the rate-by-position plot).
    """

    spec: EncoderSpec
    encoder: FeatureEncoder
    tasks: tuple[str, ...]
    batches: dict[str, EncodedBatch]
    labels: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    negative_rate: float
    sessions: np.ndarray
    event_ids: np.ndarray
    positions: np.ndarray

    @property
    def rows_by_split(self) -> dict[str, int]:
        return {s: len(self.labels[s]) for s in SPLITS}


def encode(training: TrainingSet, cfg: RankerConfigs, embeddings: EmbeddingTable | None = None) -> EncodedData:
    """:class:`EncodedData` of ``training``; with ``embeddings`` (dim D) the pin's and the users'
    (B, D) embedding columns join each split before encoding. Raises ValueError naming the split(s)
    with no rows, or a task whose label is constant in ``train`` or ``validation`` (nothing to learn
    or calibrate)."""
    from pinrec.export.encoding import FeatureEncoder

    tasks, frame = cfg.tasks, training.frame
    frames = {s: frame[frame["split"] == s].reset_index(drop=True) for s in SPLITS}
    empty = [s for s in SPLITS if frames[s].empty]
    if empty:
        raise ValueError(f"the training set has no rows in split(s) {empty}")
    for s in ("train", "validation"):
        for task in tasks:
            if frames[s][task].nunique() < 2:
                raise ValueError(f"task {task!r} has one label value only in the {s} split (on MovieLens every "
                                 f"rating is a closeup): set ranker.tasks=[save]")
    negative_rate = float(training.meta.get("negative_rate") or infer_negative_rate(frame, tasks))
    inputs = {s: with_embeddings(frames[s], embeddings, cfg.users) for s in SPLITS}
    encoder = FeatureEncoder(feature_spec(cfg, embeddings)).fit(inputs["train"])
    test = frames["test"]
    return EncodedData(encoder.spec, encoder, tasks, {s: encoder.transform(inputs[s]) for s in SPLITS},
                       {s: frames[s][list(tasks)].to_numpy(np.float32) for s in SPLITS},
                       {s: frames[s]["sample_weight"].to_numpy(np.float32) for s in SPLITS}, negative_rate,
                       test["session_id"].to_numpy(), test["event_id"].to_numpy(), test["position"].to_numpy())
