"""The ranker job's read step: which columns it reads, with and without the embedding features."""
from __future__ import annotations

import numpy as np

from pinrec.export.encoding import Dot, Embedding, training_set_spec
from pinrec.export.serving.embedding_features import (
    LAST_CLOSEUPS,
    LAST_SAVED,
    EmbeddingTable,
)
from pinrec.jobs.ranking.ranker_inputs import needed_columns
from pinrec.jobs.ranking.ranker_read import (
    TrainingSet,
    feature_spec,
    read,
    training_columns,
)
from tests.jobs.ranking.training_frames import TASKS, small_configs


def test_read_takes_the_columns_the_encoder_needs_from_a_frame(tiny_training_set):
    frame, _ = tiny_training_set
    cfg = small_configs()
    assert training_columns(cfg) == needed_columns(training_set_spec(), TASKS)
    training = read(frame.assign(unused=1), None, cfg)
    assert isinstance(training, TrainingSet) and training.meta == {}
    assert list(training.frame.columns) == training_columns(cfg) and len(training.frame) == 360


def test_embeddings_add_the_pin_id_and_the_users_lists_to_the_read_and_their_features_to_the_spec():
    table = EmbeddingTable(np.arange(3), np.eye(3, 4, dtype=np.float32), "pinsage-1")
    cfg = small_configs(user_embeddings=("closeups", "saves"))
    columns = training_columns(cfg, table)
    assert columns[:len(training_columns(cfg))] == training_columns(cfg)
    assert columns[len(training_columns(cfg)):] == ["pin_id", LAST_CLOSEUPS, LAST_SAVED]
    extra = [f for f in feature_spec(cfg, table).features if isinstance(f, (Embedding, Dot))]
    assert extra == [Embedding("pin_embedding", 4), Embedding("user_closeup_embedding", 4),
                     Embedding("user_embedding", 4), Dot("pin_embedding", "user_closeup_embedding"),
                     Dot("pin_embedding", "user_embedding")]
    assert not any(isinstance(f, Embedding) for f in feature_spec(cfg).features)
