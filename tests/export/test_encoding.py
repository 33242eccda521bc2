"""The feature encoder: exact values on a 5-row frame, OOV and nulls, input kinds, JSON round trip."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pinrec.export.encoding import (
    Boolean,
    Categorical,
    Dot,
    Embedding,
    EncodedBatch,
    EncoderSpec,
    Equal,
    FeatureEncoder,
    Hashed,
    Numeric,
    stable_hash,
    training_set_spec,
)
from tests.support.repo import REPO

SPEC = EncoderSpec((
    Hashed("user_id", buckets=100), Categorical("surface"), Numeric("x", log1p=True), Boolean("b"),
    Embedding("e", 2), Embedding("f", 2), Dot("e", "f"), Equal("surface", "s2"),
), position="position", max_position=50)


def five_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [1, 2, 3, None, 5],
        "surface": ["a", "b", "a", None, "c"],
        "x": [0.0, 1.0, np.nan, 3.0, 7.0],  # log1p: 0, ln 2, -, 2 ln 2, 3 ln 2
        "b": [True, False, None, True, False],
        "e": [np.array([1.0, 2.0]), None, np.array([0.0, 1.0]), np.array([1.0, 1.0]), np.array([2.0, 0.0])],
        "f": [np.array([1.0, 1.0])] * 4 + [np.array([0.5, 3.0])],
        "s2": ["a", "a", "b", "x", None],
        "position": [1, 2, 3, 60, None],
    })


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % 2 ** 64
    return h


def test_stable_hash_is_fnv1a_of_the_text():
    # published FNV-1a 64 test vectors
    assert stable_hash(pa.array(["", "a", "foobar"])).tolist() == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C,
                                                                   0x85944171F73967E8]
    ints = stable_hash(pa.array([1, 22, 123456789012345]))
    assert ints.tolist() == [fnv1a64("1"), fnv1a64("22"), fnv1a64("123456789012345")]
    # ids that pandas turned into floats (a null in the column) hash as the integer
    assert stable_hash(pa.array([22.0, None]))[0] == fnv1a64("22")
    sliced = pa.array(["zz", "a", "foobar"]).slice(1)
    assert stable_hash(sliced).tolist() == [0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_exact_values_on_five_rows():
    enc = FeatureEncoder(SPEC).fit(five_rows())
    assert enc.state["surface"] == {"vocab": ["a", "b", "c"]}  # by count, then by value
    assert enc.state["x"]["mean"] == pytest.approx(1.5 * math.log(2))
    assert enc.state["x"]["std"] == pytest.approx(math.sqrt(1.25) * math.log(2))
    assert enc.categorical_names == ("user_id", "surface")
    assert enc.cardinalities == (101, 4)
    assert enc.dense_names == ("x", "x:missing", "b", "e[0]", "e[1]", "f[0]", "f[1]", "dot(e,f)", "eq(surface,s2)")

    batch = enc.transform(five_rows())
    user = [1 + fnv1a64(str(i)) % 100 for i in (1, 2, 3)] + [0, 1 + fnv1a64("5") % 100]
    np.testing.assert_array_equal(batch.categorical, np.array([user, [1, 2, 1, 0, 3]]).T)
    z = [(k - 1.5) / math.sqrt(1.25) for k in range(4)]
    expected = np.array([
        # x     x:missing b   e[0] e[1] f[0] f[1] dot  eq
        [z[0], 0, 1, 1, 2, 1, 1, 3, 1],
        [z[1], 0, 0, 0, 0, 1, 1, 0, 0],  # null embedding -> zeros
        [0.0, 1, 0, 0, 1, 1, 1, 1, 0],  # null x -> 0 + indicator; null bool -> 0
        [z[2], 0, 1, 1, 1, 1, 1, 2, 0],  # null surface is not equal to "x"
        [z[3], 0, 0, 2, 0, 0.5, 3, 1, 0],  # null s2 -> not equal
    ], dtype=np.float32)
    np.testing.assert_allclose(batch.dense, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batch.position, [1, 2, 3, 50, 0])  # clipped; null -> unknown
    assert batch.categorical.dtype == np.int64 and batch.dense.dtype == np.float32 and len(batch) == 5


def test_table_dataframe_and_dict_inputs_agree():
    df = five_rows()
    enc = FeatureEncoder(SPEC).fit(pa.Table.from_pandas(df))
    as_dict = {c: df[c].to_numpy() for c in df.columns}
    as_dict["e"] = np.array([[1, 2], [0, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float64)  # (B, D) array
    as_dict["f"] = np.stack(df["f"].to_list())
    chunked = pa.concat_tables([pa.Table.from_pandas(df.iloc[:2]), pa.Table.from_pandas(df.iloc[2:])])
    ref = enc.transform(df)
    for frame in (pa.Table.from_pandas(df), as_dict, chunked):
        got = enc.transform(frame)
        np.testing.assert_array_equal(got.categorical, ref.categorical)
        np.testing.assert_array_equal(got.dense, ref.dense)
        np.testing.assert_array_equal(got.position, ref.position)


def test_unseen_values_go_to_the_oov_bucket_and_position_is_optional():
    enc = FeatureEncoder(SPEC).fit(five_rows())
    serving = five_rows().drop(columns=["position"]).assign(surface=["zzz", "c", None, "a", "b"],
                                                             x=[1e9, -5.0, 1.0, np.nan, 0.0])
    batch = enc.transform(serving)
    np.testing.assert_array_equal(batch.categorical[:, 1], [0, 3, 0, 1, 2])
    np.testing.assert_array_equal(batch.position, [0, 0, 0, 0, 0])  # serving: no position
    assert batch.dense[0, 0] == pytest.approx(5.0)  # clipped at +clip
    assert batch.dense[1, 0] == pytest.approx(-1.5 / math.sqrt(1.25))  # log1p(max(-5, 0)) = 0
    np.testing.assert_array_equal(batch.dense[:, 1], [0, 0, 0, 1, 0])


def test_min_count_and_max_vocab():
    frame = {"c": np.array(["x", "y", "y", "z", "z", "z", "w"], dtype=object)}
    enc = FeatureEncoder(EncoderSpec((Categorical("c", max_vocab=2, min_count=2),), position=None)).fit(frame)
    assert enc.state["c"]["vocab"] == ["z", "y"]
    np.testing.assert_array_equal(enc.transform(frame).categorical[:, 0], [0, 2, 2, 1, 1, 1, 0])
    ints = FeatureEncoder(EncoderSpec((Categorical("hour"),), position=None)).fit({"hour": np.array([3, 3, 12])})
    assert ints.state["hour"]["vocab"] == ["3", "12"]
    np.testing.assert_array_equal(ints.transform({"hour": np.array([12, 3, 7])}).categorical[:, 0], [2, 1, 0])


def test_json_round_trip():
    enc = FeatureEncoder(SPEC).fit(five_rows())
    text = enc.to_json()
    assert json.loads(text)["format"] == "pinrec.encoder/1"
    back = FeatureEncoder.from_json(text)
    assert back == enc and back.spec == enc.spec and back.to_json() == text
    assert FeatureEncoder.from_dict(json.loads(text)) == enc  # as the loader reads the bundle's JSON
    a, b = enc.transform(five_rows()), back.transform(five_rows())
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.categorical, b.categorical)
    assert FeatureEncoder(SPEC).fit(five_rows().iloc[:3]) != enc
    with pytest.raises(ValueError, match="not a pinrec encoder"):
        FeatureEncoder.from_json(json.dumps({"format": "other"}))


def test_bad_input_raises():
    enc = FeatureEncoder(SPEC)
    with pytest.raises(ValueError, match="not fitted"):
        enc.transform(five_rows())
    enc.fit(five_rows())
    with pytest.raises(ValueError, match="no column 'x'"):
        enc.transform(five_rows().drop(columns=["x"]))
    with pytest.raises(ValueError, match="length 2"):
        enc.transform(five_rows().assign(e=[np.array([1.0, 2.0, 3.0])] * 5))
    with pytest.raises(ValueError, match="float arrays"):
        enc.transform(five_rows().assign(e=1.0))
    large = pa.Table.from_pandas(five_rows()).cast(pa.Table.from_pandas(five_rows()).schema.set(
        1, pa.field("surface", pa.large_string())))
    np.testing.assert_array_equal(enc.transform(large).categorical, enc.transform(five_rows()).categorical)
    with pytest.raises(ValueError, match="must be numeric"):
        enc.transform(five_rows().assign(x=["a"] * 5))
    with pytest.raises(ValueError, match="unique"):
        EncoderSpec((Numeric("x"), Boolean("x")))
    with pytest.raises(ValueError, match="Embedding"):
        EncoderSpec((Embedding("e", 2), Numeric("f"), Dot("e", "f")))
    with pytest.raises(ValueError, match="buckets"):
        Hashed("id", buckets=0)
    with pytest.raises(ValueError, match="EncodedBatch"):
        EncodedBatch(np.zeros((2, 1), np.int32), np.zeros((2, 1), np.float32), np.zeros(2, np.int64))


def test_training_set_spec():
    spec = training_set_spec(id_buckets=1000, ids=True, embeddings={"user_emb": 4, "pin_emb": 4})
    by_name = {f.name: f for f in spec.features}
    assert by_name["user_id"] == Hashed("user_id", 1000)
    assert by_name["user__impressions_30d"].log1p and not by_name["user__save_rate_30d"].log1p
    assert by_name["user__days_since_last_save"].missing_indicator
    assert isinstance(by_name["pin__missing"], Boolean) and "user__last_saved_pins" not in by_name
    assert "dot(user_emb,pin_emb)" in by_name and "eq(category,user__top_category)" in by_name
    assert EncoderSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert "user_id" not in {f.name for f in training_set_spec().features}


def test_serving_import_needs_no_torch_or_pandas():
    code = ("import sys; import pinrec.export.encoding; "
            "bad = {'torch', 'pandas'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    """encoding.py was split into encoding_spec, encoding_columns and feature_encoder; every public name it
    had stays importable from it, the very object its new module defines (so isinstance checks agree)."""
    import importlib

    import pinrec.export.encoding as facade

    home = {
        "pinrec.export.encoding_spec": ("Boolean", "Categorical", "Dot", "Embedding", "EncodedBatch", "EncoderSpec",
                                        "Equal", "FeatureSpec", "Hashed", "Numeric", "training_set_spec"),
        "pinrec.export.encoding_columns": ("stable_hash",),
        "pinrec.export.feature_encoder": ("FeatureEncoder",),
    }
    assert sorted(facade.__all__) == sorted(n for names in home.values() for n in names)
    for module_name, names in home.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(facade, name) is module.__dict__[name], name
            if name != "FeatureSpec":  # a Union alias has no __module__ of its own
                assert module.__dict__[name].__module__ == module_name, name
    encoder = facade.FeatureEncoder(SPEC).fit(five_rows())
    assert isinstance(encoder.transform(five_rows()), facade.EncodedBatch)
