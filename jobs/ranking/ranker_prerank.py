"""The ranker job's pre-rank step: a cheap pre-ranker trained on the same encoded splits as the ranker.

The product design's ranking cascade puts a fast model before the DCN ranker ("Pre-Ranker: filters
500 -> 200 candidates, fast ML (logistic regression or tiny GBDTs)"). With ``ranker_job.prerank =
logistic``, :func:`train_prerank` fits :class:`~pinrec.models.prerank.LogisticPrerank` (one weight per
categorical value and per dense column, per task) on ``train`` with the ranker's
``sample_weight``, calibrates it on ``validation`` as the ranker is (``calibration`` section: Platt or
isotonic, score = sum_t w_t p_t), and scores ``test`` (its AUC goes into the report as the model
``pre-ranker``). :func:`export_prerank` writes ``prerank.onnx`` (the ranker's ONNX export, same
interface: ``categorical``, ``dense`` -> ``p_<task>``, ``score``) with its encoder in the model's
``pinrec.encoder`` property, checked against torch on the test rows.

Inputs, chosen for speed at serving (:func:`prerank_spec`): every feature of the ranker's encoder but
the PinSage embeddings (the pin's and the user's D-dim vectors and their dot products) and the
hashed ids. What is left is what serving encodes once per bundle and only gathers per request
(:mod:`pinrec.export.serving.serving_encoding`): the pin's category and pin-view features (per pin), the
user x category features and ``eq(category, user__top_category)`` (per distinct category of the
candidates), and the context and user-view features (one row per request, the same for every
candidate: a logistic regression has no interactions, so they shift all candidates alike and only
sharpen the fit of the others). The embeddings are left out because they are the per-candidate
work serving cannot precompute: a (B, D) gather and the request's user vector.
Pure: encoded arrays in, a model and arrays out; only :func:`export_prerank` writes (a local file).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .ranker_configs import RankerConfigs
from .ranker_encode import EncodedData

if TYPE_CHECKING:
    from pinrec.export.encoding import EncodedBatch, EncoderSpec, FeatureEncoder
    from pinrec.models.calibration import Calibration
    from pinrec.models.prerank import LogisticPrerank

PRERANK_FILE = "prerank.onnx"
MODEL = "pre-ranker"  # its rows in the report's metrics


def prerank_spec(spec: EncoderSpec) -> EncoderSpec:
    """The features of ``spec`` the pre-ranker reads (module docstring): all but ``Embedding``,
    ``Dot`` and ``Hashed`` ones, in ``spec``'s order. Raises ValueError when none is left."""
    from pinrec.export.encoding import Dot, Embedding, EncoderSpec, Hashed

    kept = tuple(f for f in spec.features if not isinstance(f, (Embedding, Dot, Hashed)))
    if not kept:
        raise ValueError("the pre-ranker needs a feature besides embeddings and hashed ids; the encoder has "
                         f"only {[f.name for f in spec.features]}")
    return EncoderSpec(kept, spec.position, spec.max_position)


def sub_encoder(encoder: FeatureEncoder) -> tuple[FeatureEncoder, np.ndarray, np.ndarray]:
    """(the pre-ranker's encoder: :func:`prerank_spec` with ``encoder``'s fitted state, its categorical
    columns' positions (C',) in ``encoder``'s (B, C), its dense columns' (F',) in (B, F)): encoding
    with it equals selecting those columns, since every feature is encoded from its own inputs."""
    from pinrec.export.encoding import FeatureEncoder

    spec = prerank_spec(encoder.spec)
    sub = FeatureEncoder(spec, {f.name: encoder.state[f.name] for f in spec.features if f.name in encoder.state})
    cat_at = {n: i for i, n in enumerate(encoder.categorical_names)}
    dense_at = {n: i for i, n in enumerate(encoder.dense_names)}
    return (sub, np.array([cat_at[n] for n in sub.categorical_names], np.int64),
            np.array([dense_at[n] for n in sub.dense_names], np.int64))


@dataclass(frozen=True, eq=False)
class TrainedPrerank:
    """The fitted pre-ranker: ``encoder`` (its own, :func:`sub_encoder`), ``cat_cols`` (C',) and
    ``dense_cols`` (F',) into the ranker's encoded batches, the ``model``, its ``calibration``, the
    training objective after each L-BFGS evaluation and ``test`` (B_test, T) calibrated probabilities."""

    encoder: FeatureEncoder
    cat_cols: np.ndarray
    dense_cols: np.ndarray
    model: LogisticPrerank
    calibration: Calibration
    losses: tuple[float, ...]
    test: np.ndarray

    def inputs(self, batch: EncodedBatch) -> tuple[np.ndarray, np.ndarray]:
        """(categorical (B, C'), dense (B, F')) of a batch encoded by the ranker's encoder."""
        return (np.ascontiguousarray(batch.categorical[:, self.cat_cols]),
                np.ascontiguousarray(batch.dense[:, self.dense_cols]))

    def probabilities(self, batch: EncodedBatch) -> np.ndarray:
        """(B, T) float64 calibrated probabilities."""
        from pinrec.models.prerank import predict_logits

        return self.calibration.apply(predict_logits(self.model, *self.inputs(batch)))

    def summary(self) -> dict[str, Any]:
        """What the report records: the model, its inputs, the final training objective and the
        number of L-BFGS evaluations it took."""
        return {"model": "logistic", "categorical": list(self.encoder.categorical_names),
                "dense": list(self.encoder.dense_names), "train_objective": self.losses[-1],
                "evaluations": len(self.losses)}


def train_prerank(data: EncodedData, cfg: RankerConfigs) -> TrainedPrerank | None:
    """The pre-ranker of ``cfg.job.prerank`` (None for ``none``) trained on ``data``'s ``train``
    split (deterministic: full-batch L-BFGS from zeros), calibrated on ``validation`` and scored on ``test``."""
    if cfg.job.prerank == "none":
        return None
    from pinrec.models.calibration import fit_calibration
    from pinrec.models.prerank import LogisticPrerank, predict_logits, train_logistic
    from pinrec.models.ranker_trainer import RankerData

    encoder, cat_cols, dense_cols = sub_encoder(data.encoder)
    model = LogisticPrerank(encoder.cardinalities, len(encoder.dense_names), data.tasks)
    train = data.batches["train"]
    tensors = RankerData.from_batch(type(train)(train.categorical[:, cat_cols], train.dense[:, dense_cols],
                                                train.position), data.labels["train"], data.weights["train"])
    losses = train_logistic(model, tensors, cfg.job.prerank_iterations, cfg.job.prerank_l2)
    val = data.batches["validation"]
    calibration = fit_calibration(predict_logits(model, val.categorical[:, cat_cols], val.dense[:, dense_cols]),
                                  data.labels["validation"], data.tasks, cfg.calibration, data.weights["validation"])
    trained = TrainedPrerank(encoder, cat_cols, dense_cols, model, calibration, tuple(losses), np.zeros(0))
    return replace(trained, test=trained.probabilities(data.batches["test"]))


def export_prerank(prerank: TrainedPrerank, folder: str, test: EncodedBatch, model_version: str) -> tuple[str, float]:
    """Write ``<folder>/prerank.onnx`` (the encoder JSON in its ``pinrec.encoder`` property, the
    ranker's ``model_version`` in ``pinrec.model_version``); returns (path, max |onnxruntime - the
    training path| over every output on the ``test`` rows)."""
    from pinrec.export.build.onnx_ranker import export_ranker, run, session

    path = export_ranker(prerank.model, prerank.calibration, os.path.join(folder, PRERANK_FILE),
                         metadata={"pinrec.encoder": prerank.encoder.to_json(), "pinrec.model_version": model_version,
                                   "pinrec.role": "prerank"})
    out = run(session(path), *prerank.inputs(test))
    probs = prerank.test
    diff = max(float(np.abs(out[f"p_{t}"] - probs[:, i]).max()) for i, t in enumerate(prerank.calibration.tasks))
    return path, max(diff, float(np.abs(out["score"] - prerank.calibration.score(probs)).max()))
