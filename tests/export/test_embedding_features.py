"""Embedding features: the same pin/user vectors in training and serving."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from export.embedding_features import PIN_EMBEDDING, USER_EMBEDDING, EmbeddingTable

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


def test_columns_feed_the_encoder_and_its_dot_product():
    from export.encoding import Dot, Embedding, EncoderSpec, FeatureEncoder

    table = EmbeddingTable(IDS, VECTORS)
    cols = table.columns(pa.array([9, 5]), pa.array([[9], [3]], pa.list_(pa.int64())))
    spec = EncoderSpec((Embedding(PIN_EMBEDDING, 2), Embedding(USER_EMBEDDING, 2), Dot(PIN_EMBEDDING, USER_EMBEDDING)))
    dense = FeatureEncoder(spec).fit(cols).transform(cols).dense
    np.testing.assert_allclose(dense[:, -1], [5.0, 0.0], rtol=1e-6)  # (3,4).(0.6,0.8)*5 ; (1,0).(0,1)


def test_bad_tables_raise():
    with pytest.raises(ValueError, match="disagree"):
        EmbeddingTable(IDS, VECTORS[:2])
    with pytest.raises(ValueError, match="unique"):
        EmbeddingTable(np.array([1, 1, 2]), VECTORS)
