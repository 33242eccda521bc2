"""Embedding features: the same pin/user vectors in training and serving."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pinrec.export.serving.embedding_features import (
    PIN_EMBEDDING,
    USER_CLOSEUP_EMBEDDING,
    USER_EMBEDDING,
    EmbeddingTable,
    user_embeddings_of,
)

IDS = np.array([5, 3, 9], np.int64)
VECTORS = np.array([[1, 0], [0, 1], [3, 4]], np.float32)


def test_pin_vectors_look_up_by_id_with_zeros_for_unknown_and_null():
    table = EmbeddingTable(IDS, VECTORS, "v1")
    np.testing.assert_array_equal(table.pin_vectors([3, 4, None, 9]), [[0, 1], [0, 0], [0, 0], [3, 4]])
    assert table.dim == 2 and "v1" in repr(table)


def test_user_vector_is_the_normalised_mean_of_known_saves():
    table = EmbeddingTable(IDS, VECTORS)
    saves = pd.Series([np.array([5, 3]), None, np.array([], np.int64), np.array([7, 9])], dtype=object)
    got = table.user_vectors(saves)
    np.testing.assert_allclose(got, [[2 ** -0.5, 2 ** -0.5], [0, 0], [0, 0], [0.6, 0.8]], rtol=1e-6)
    arrow = pa.array([[5, 3], None, [], [7, 9]], pa.list_(pa.int64()))
    np.testing.assert_array_equal(table.user_vectors(arrow), got)  # serving passes Arrow, training pandas


def test_columns_feed_the_encoder_and_its_dot_products():
    from pinrec.export.encoding import EncoderSpec, FeatureEncoder, training_set_spec

    table = EmbeddingTable(IDS, VECTORS)
    lists = {"user__last_saved_pins": pa.array([[9], [3]], pa.list_(pa.int64())),
             "user__last_closeup_pins": pa.array([[5, 3], []], pa.list_(pa.int64()))}
    cols = table.columns(pa.array([9, 5]), lists, (USER_EMBEDDING, USER_CLOSEUP_EMBEDDING))
    assert sorted(cols) == [PIN_EMBEDDING, USER_CLOSEUP_EMBEDDING, USER_EMBEDDING]
    np.testing.assert_allclose(cols[USER_CLOSEUP_EMBEDDING], [[2 ** -0.5, 2 ** -0.5], [0, 0]], rtol=1e-6)
    spec = training_set_spec(embeddings={PIN_EMBEDDING: 2, USER_EMBEDDING: 2, USER_CLOSEUP_EMBEDDING: 2})
    assert user_embeddings_of(spec) == (USER_EMBEDDING, USER_CLOSEUP_EMBEDDING)
    embedded = EncoderSpec(spec.features[-5:])  # the three embeddings and the pin's two dot products
    assert [f.name for f in embedded.features[-2:]] == ["dot(pin_embedding,user_embedding)",
                                                         "dot(pin_embedding,user_closeup_embedding)"]
    dots = FeatureEncoder(embedded).fit(cols).transform(cols).dense[:, -2:]
    # pin 9 = (3,4): with the saves' (0.6,0.8) 5.0, with the closeups' (0.707,0.707) 4.95; pin 5 = (1,0): 0, 0
    np.testing.assert_allclose(dots, [[5.0, 7 * 2 ** -0.5], [0.0, 0.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown user embeddings"):
        table.columns(pa.array([9]), lists, ("user_board_embedding",))


def test_bad_tables_raise():
    with pytest.raises(ValueError, match="disagree"):
        EmbeddingTable(IDS, VECTORS[:2])
    with pytest.raises(ValueError, match="unique"):
        EmbeddingTable(np.array([1, 1, 2]), VECTORS)
