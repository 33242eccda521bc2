"""Step 1 of the ranker job, read: the columns the encoder needs, from the training set
(:func:`~pinrec.jobs.ranking.ranker_inputs.read_training_set`, this step's only I/O).

The encoder's spec is :func:`~pinrec.export.encoding.training_set_spec` (ids and ``max_position`` from
``ranker_job``) plus, with PinSage embeddings, the pin's and each configured user embedding (dim D)
and their dot products; the embedding columns themselves are joined later
(:func:`~pinrec.jobs.ranking.ranker_inputs.with_embeddings`), so they are never read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ranker_configs import RankerConfigs
from .ranker_inputs import needed_columns, read_training_set

if TYPE_CHECKING:
    import pandas as pd

    from pinrec.export.encoding import EncoderSpec
    from pinrec.export.serving.embedding_features import EmbeddingTable


@dataclass(frozen=True)
class TrainingSet:
    """``frame``: (N, K) rows of all splits with the K columns :func:`training_columns` names;
    ``meta``: the training set's commit metadata (``negative_rate``, ``input_versions``,
    ``training_set_version``; empty for a ready frame)."""

    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def feature_spec(cfg: RankerConfigs, embeddings: EmbeddingTable | None = None) -> EncoderSpec:
    """The encoder's spec; with ``embeddings``, ``pin_embedding`` and the user embeddings (each of
    ``embeddings.dim``) and the pin's dot product with each user's."""
    from pinrec.export.encoding import training_set_spec
    from pinrec.export.serving.embedding_features import PIN_EMBEDDING

    job = cfg.job
    return training_set_spec(ids=job.id_features, max_position=job.max_position,
                             embeddings=None if embeddings is None else
                             {PIN_EMBEDDING: embeddings.dim, **{u: embeddings.dim for u in cfg.users}})


def training_columns(cfg: RankerConfigs, embeddings: EmbeddingTable | None = None) -> list[str]:
    """Features, position, labels and keys, each once; with ``embeddings`` also ``pin_id`` and the
    user-side columns the embedding features are looked up by."""
    from pinrec.export.encoding import training_set_spec
    from pinrec.export.serving.embedding_features import USER_EMBEDDINGS

    columns = needed_columns(training_set_spec(ids=cfg.job.id_features, max_position=cfg.job.max_position),
                             cfg.tasks)
    if embeddings is not None:
        columns = list(dict.fromkeys([*columns, "pin_id", *(USER_EMBEDDINGS[u] for u in cfg.users)]))
    return columns


def read(source, warehouse, cfg: RankerConfigs, embeddings: EmbeddingTable | None = None) -> TrainingSet:
    """The training set's :func:`training_columns`: ``source`` a SparkSession (``warehouse``'s
    ``training_set`` at its current Delta version, rows in ``event_id`` order; ``warehouse`` a path,
    Location or catalog, which then records the read) or a ready pandas/pyarrow frame (``warehouse`` unused)."""
    frame, meta = read_training_set(source, warehouse, training_columns(cfg, embeddings))
    return TrainingSet(frame, meta)
