"""The :class:`FeatureEncoder`: fits an :class:`~pinrec.export.encoding_spec.EncoderSpec` on the training
split and turns frames into :class:`~pinrec.export.encoding_spec.EncodedBatch` arrays, the same code in
training and serving (numpy + pyarrow only); :mod:`pinrec.export.encoding` re-exports it."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .encoding_columns import (
    _column,
    _embedding,
    _floats,
    _indices,
    _num_rows,
    _strings,
    stable_hash,
)
from .encoding_spec import (
    Boolean,
    Categorical,
    Dot,
    Embedding,
    EncodedBatch,
    EncoderSpec,
    Equal,
    Hashed,
    Numeric,
)

__all__ = ["FeatureEncoder"]


@dataclass(eq=False)
class FeatureEncoder:
    """Fits an :class:`EncoderSpec` on a training frame and turns frames into :class:`EncodedBatch`.

    ``state`` holds what ``fit`` learned per feature (``vocab`` of a categorical; ``mean``/``std``
    of a numeric), JSON-serialisable. Shapes: C = len(cardinalities), F = len(dense_names).
    """

    spec: EncoderSpec
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    _layout: dict[str, Any] | None = field(default=None, init=False, repr=False)

    # ---------------------------------------------------------------- fit
    def fit(self, frame) -> FeatureEncoder:
        """Learn vocabularies and moments from ``frame`` (the training split only); returns self."""
        if _num_rows(frame) == 0:
            raise ValueError("cannot fit the encoder on an empty frame")
        state = {}
        for f in self.spec.features:
            if isinstance(f, Categorical):
                counts = pc.value_counts(pc.drop_null(_strings(_column(frame, f.name))))
                pairs = sorted(((int(c), str(v)) for v, c in zip(counts.field(0).to_pylist(),
                                                                  counts.field(1).to_pylist())
                                if c >= f.min_count), key=lambda p: (-p[0], p[1]))
                state[f.name] = {"vocab": [v for _, v in pairs[: f.max_vocab]]}
            elif isinstance(f, Numeric):
                values = _floats(_column(frame, f.name), f.name)
                x = self._log(f, values[~np.isnan(values)])
                mean = float(x.mean()) if x.size else 0.0
                std = float(x.std()) if x.size else 1.0
                state[f.name] = {"mean": mean, "std": std if std > 1e-12 else 1.0}
        self.state = state
        self._layout = None
        return self

    @property
    def fitted(self) -> bool:
        needs = {f.name for f in self.spec.features if isinstance(f, (Categorical, Numeric))}
        return needs <= set(self.state)

    @staticmethod
    def _log(f: Numeric, x: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(x, 0.0)) if f.log1p else x

    # ---------------------------------------------------------------- output layout
    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.spec.features if isinstance(f, (Categorical, Hashed)))

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Number of distinct indices of each categorical column (OOV / null bucket included)."""
        self._check_fitted()
        return tuple(1 + (len(self.state[f.name]["vocab"]) if isinstance(f, Categorical) else f.buckets)
                     for f in self.spec.features if isinstance(f, (Categorical, Hashed)))

    @property
    def dense_names(self) -> tuple[str, ...]:
        out: list[str] = []
        for f in self.spec.features:
            if isinstance(f, Numeric):
                out += [f.name] + ([f"{f.name}:missing"] if f.missing_indicator else [])
            elif isinstance(f, Embedding):
                out += [f"{f.name}[{i}]" for i in range(f.dim)]
            elif not isinstance(f, (Categorical, Hashed)):
                out.append(f.name)
        return tuple(out)

    @property
    def num_positions(self) -> int:
        """Size of the position vocabulary: 0 (unknown) .. max_position."""
        return self.spec.max_position + 1

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError("the encoder is not fitted: call fit(train_frame) or load a fitted one")

    # ---------------------------------------------------------------- transform
    def _plan(self) -> dict[str, Any]:
        """Where each feature's values go in the dense matrix, and the numeric moments as vectors."""
        if getattr(self, "_layout", None) is None:
            self._check_fitted()
            names = self.dense_names
            col = {n: i for i, n in enumerate(names)}
            num = [f for f in self.spec.features if isinstance(f, Numeric)]
            self._layout = {
                "numeric": num,
                "num_pos": np.array([col[f.name] for f in num], np.int64),
                "ind": np.array([f.missing_indicator for f in num], bool),
                "ind_pos": np.array([col[f"{f.name}:missing"] for f in num if f.missing_indicator], np.int64),
                "log": np.array([f.log1p for f in num], bool),
                "mean": np.array([self.state[f.name]["mean"] for f in num]),
                "std": np.array([self.state[f.name]["std"] for f in num]),
                "clip": np.array([f.clip for f in num]),
                "pos": col, "width": len(names),
                "vocab": {f.name: pa.array(self.state[f.name]["vocab"], pa.string())
                          for f in self.spec.features if isinstance(f, Categorical)},
            }
        return self._layout

    def transform(self, frame) -> EncodedBatch:
        """Encode a frame of B rows: (B, C) int64, (B, F) float32, (B,) int64."""
        plan = self._plan()
        n = _num_rows(frame)
        cats: list[np.ndarray] = []
        dense = np.zeros((n, plan["width"]), np.float32)
        pos = plan["pos"]
        embeddings: dict[str, np.ndarray] = {}
        num = np.empty((n, len(plan["numeric"])))
        for j, f in enumerate(plan["numeric"]):
            values = _floats(_column(frame, f.name), f.name)
            if values.shape != (n,):
                raise ValueError(f"column {f.name!r} has shape {values.shape}, expected ({n},)")
            num[:, j] = values
        missing = np.isnan(num)
        num[:, plan["log"]] = np.log1p(np.maximum(num[:, plan["log"]], 0.0))
        z = np.clip((num - plan["mean"]) / plan["std"], -plan["clip"], plan["clip"])
        z[missing] = 0.0
        dense[:, plan["num_pos"]] = z
        dense[:, plan["ind_pos"]] = missing[:, plan["ind"]]
        for f in self.spec.features:
            if isinstance(f, Categorical):
                idx = pc.index_in(_strings(_column(frame, f.name)), value_set=plan["vocab"][f.name])
                cats.append(_indices(idx) + 1)
            elif isinstance(f, Hashed):
                col = _column(frame, f.name)
                h = (stable_hash(col) % np.uint64(f.buckets)).astype(np.int64) + 1
                cats.append(np.where(_floats(col.is_null()) > 0, 0, h))
            elif isinstance(f, Boolean):
                dense[:, pos[f.name]] = np.nan_to_num(_floats(_column(frame, f.name), f.name))
            elif isinstance(f, Embedding):
                embeddings[f.name] = _embedding(_column(frame, f.name), f.dim, f.name)
                dense[:, pos[f"{f.name}[0]"]: pos[f"{f.name}[0]"] + f.dim] = embeddings[f.name]
            elif isinstance(f, Equal):
                eq = pc.equal(_strings(_column(frame, f.left)), _strings(_column(frame, f.right)))
                dense[:, pos[f.name]] = np.nan_to_num(_floats(eq))
        for f in self.spec.features:
            if isinstance(f, Dot):
                dense[:, pos[f.name]] = (embeddings[f.left] * embeddings[f.right]).sum(1)
        for a in cats:
            if a.shape[0] != n:
                raise ValueError(f"columns of the frame differ in length ({a.shape[0]} != {n})")
        position = np.zeros(n, dtype=np.int64)
        if self.spec.position is not None and self._has(frame, self.spec.position):
            values = np.nan_to_num(_floats(_column(frame, self.spec.position)))
            position = np.clip(values, 0, self.spec.max_position).astype(np.int64)
        return EncodedBatch(categorical=np.stack(cats, 1) if cats else np.zeros((n, 0), np.int64),
                            dense=dense, position=position)

    @staticmethod
    def _has(frame, name: str) -> bool:
        return frame.schema.get_field_index(name) >= 0 if isinstance(frame, pa.Table) else name in frame

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"format": "pinrec.encoder/1", "spec": self.spec.to_dict(), "state": self.state}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureEncoder:
        if not isinstance(d, Mapping) or d.get("format") != "pinrec.encoder/1":
            raise ValueError(f"not a pinrec encoder (format {d.get('format') if isinstance(d, Mapping) else d!r})")
        return cls(EncoderSpec.from_dict(d["spec"]), d["state"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureEncoder) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        state = f"C={len(self.categorical_names)}, F={len(self.dense_names)}" if self.fitted else "unfitted"
        return f"{self.__class__.__name__}({len(self.spec.features)} features, {state})"
