"""Feature encoding shared by ranker training and serving: a declarative spec, fitted on train only.

The serving loader imports this module with the base install (numpy + pyarrow), so the bytes a
model sees at serving are computed by the same code as in training. A frame is a
``pyarrow.Table``, a pandas ``DataFrame`` or a ``dict`` of numpy arrays (an embedding column may
be a (B, D) array there).

Features (each a frozen dataclass; order in the spec = order of the output columns):

* :class:`Categorical` — vocabulary of the training split (most frequent first, at most
  ``max_vocab`` values seen ``min_count`` times); index 0 is the OOV bucket (unseen or null).
* :class:`Hashed` — high-cardinality ids: ``1 + fnv1a64(utf8(str(value))) % buckets``, null -> 0.
  FNV-1a is stable across processes and machines (Python's ``hash()`` is salted per process).
* :class:`Numeric` — optional ``log1p`` (of ``max(x, 0)``), z-score with the training mean and
  std, clipped to ``[-clip, clip]``; null/NaN -> 0 plus a ``<name>:missing`` indicator column.
* :class:`Boolean` — 1.0 / 0.0, null -> 0.
* :class:`Embedding` — a fixed-length float array column (e.g. PinSage embeddings) -> ``dim``
  dense columns, null -> zeros; :class:`Dot` — the dot product of two embedding columns.
* :class:`Equal` — 1.0 when two columns hold the same non-null value (e.g. the pin's category
  and the user's top category).

``transform`` returns an :class:`EncodedBatch`: categorical (B, C) int64, dense (B, F) float32,
position (B,) int64 (``min(position, max_position)``; 0 = unknown, also when the frame has no
position column, as at serving). ``to_json``/``from_json`` (or ``to_dict``/``from_dict``) ship
the fitted encoder (no pickle).

The code lives in :mod:`pinrec.export.encoding_spec` (the feature kinds, :class:`EncoderSpec`,
:class:`EncodedBatch`, :func:`training_set_spec`), :mod:`pinrec.export.encoding_columns` (reading a
frame's columns, :func:`stable_hash`) and :mod:`pinrec.export.feature_encoder` (:class:`FeatureEncoder`);
this module re-exports every public name.
"""
from __future__ import annotations

from .encoding_columns import stable_hash
from .encoding_spec import (
    Boolean,
    Categorical,
    Dot,
    Embedding,
    EncodedBatch,
    EncoderSpec,
    Equal,
    FeatureSpec,
    Hashed,
    Numeric,
    training_set_spec,
)
from .feature_encoder import FeatureEncoder

__all__ = ["Boolean", "Categorical", "Dot", "Embedding", "EncodedBatch", "EncoderSpec", "Equal", "FeatureEncoder",
           "FeatureSpec", "Hashed", "Numeric", "stable_hash", "training_set_spec"]
