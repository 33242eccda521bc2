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
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Categorical:
    name: str
    max_vocab: int = 10_000
    min_count: int = 1
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if self.max_vocab < 1 or self.min_count < 1:
            raise ValueError(f"{self.name}: max_vocab and min_count must be >= 1")


@dataclass(frozen=True)
class Hashed:
    name: str
    buckets: int = 2 ** 16
    kind: ClassVar[str] = "hashed"

    def __post_init__(self) -> None:
        if self.buckets < 1:
            raise ValueError(f"{self.name}: buckets must be >= 1, got {self.buckets}")


@dataclass(frozen=True)
class Numeric:
    name: str
    log1p: bool = False
    clip: float = 5.0
    missing_indicator: bool = True
    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        if not self.clip > 0:
            raise ValueError(f"{self.name}: clip must be > 0, got {self.clip}")


@dataclass(frozen=True)
class Boolean:
    name: str
    kind: ClassVar[str] = "boolean"


@dataclass(frozen=True)
class Embedding:
    name: str
    dim: int
    kind: ClassVar[str] = "embedding"

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"{self.name}: dim must be >= 1, got {self.dim}")


@dataclass(frozen=True)
class Dot:
    left: str
    right: str
    kind: ClassVar[str] = "dot"

    @property
    def name(self) -> str:
        return f"dot({self.left},{self.right})"


@dataclass(frozen=True)
class Equal:
    left: str
    right: str
    kind: ClassVar[str] = "equal"

    @property
    def name(self) -> str:
        return f"eq({self.left},{self.right})"


FeatureSpec = Categorical | Hashed | Numeric | Boolean | Embedding | Dot | Equal
_KINDS: dict[str, type] = {c.kind: c for c in (Categorical, Hashed, Numeric, Boolean, Embedding, Dot, Equal)}


@dataclass(frozen=True)
class EncoderSpec:
    """The features of a model, in output order, and the position column (``None``: none)."""

    features: tuple[FeatureSpec, ...]
    position: str | None = "position"
    max_position: int = 50

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"features must be non-empty with unique names, got {names}")
        if self.max_position < 1:
            raise ValueError(f"max_position must be >= 1, got {self.max_position}")
        dims = {f.name: f.dim for f in self.features if isinstance(f, Embedding)}
        for f in self.features:
            if isinstance(f, Dot) and (f.left not in dims or f.right not in dims or dims[f.left] != dims[f.right]):
                raise ValueError(f"{f.name}: both sides must be Embedding features of one dim, have {dims}")

    def to_dict(self) -> dict[str, Any]:
        return {"features": [{"kind": f.kind, **asdict(f)} for f in self.features],
                "position": self.position, "max_position": self.max_position}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderSpec:
        feats = []
        for f in d["features"]:
            f = dict(f)
            kind = f.pop("kind")
            if kind not in _KINDS:
                raise ValueError(f"unknown feature kind {kind!r}; known: {sorted(_KINDS)}")
            feats.append(_KINDS[kind](**f))
        return cls(tuple(feats), d["position"], d["max_position"])


@dataclass(frozen=True, eq=False)
class EncodedBatch:
    """categorical (B, C) int64, dense (B, F) float32, position (B,) int64 (0 = unknown)."""

    categorical: np.ndarray
    dense: np.ndarray
    position: np.ndarray

    def __post_init__(self) -> None:
        b = self.position.shape[0] if self.position.ndim == 1 else -1
        if (self.categorical.ndim != 2 or self.dense.ndim != 2 or self.categorical.dtype != np.int64
                or self.dense.dtype != np.float32 or self.position.dtype != np.int64
                or self.categorical.shape[0] != b or self.dense.shape[0] != b):
            raise ValueError(f"EncodedBatch needs categorical (B, C) int64, dense (B, F) float32, position (B,) "
                             f"int64; got {self.categorical.shape} {self.categorical.dtype}, {self.dense.shape} "
                             f"{self.dense.dtype}, {self.position.shape} {self.position.dtype}")

    def __len__(self) -> int:
        return self.position.shape[0]

    def __getitem__(self, idx) -> EncodedBatch:
        return EncodedBatch(self.categorical[idx], self.dense[idx], self.position[idx])


def stable_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit FNV-1a of the UTF-8 text of each value (ints hash as their decimal text), (B,) uint64.
    Nulls hash as the empty string; callers mask them. Integral floats (ids that pandas turned
    into floats because of a null) hash as the integer."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_floating(values.type):
        try:
            values = pc.cast(values, pa.int64())
        except pa.ArrowInvalid:
            pass
    arr = _strings(values)
    arr = pa.concat_arrays([arr]) if arr.offset else arr  # realign a sliced array
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[: len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(1, np.uint8)
    lengths = np.diff(offsets)
    h = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for j in range(int(lengths.max(initial=0))):
        live = lengths > j
        byte = data[np.minimum(offsets[:-1] + j, max(len(data) - 1, 0))].astype(np.uint64)
        h = np.where(live, (h ^ byte) * _FNV_PRIME, h)
    return h


def _num_rows(frame) -> int:
    if isinstance(frame, pa.Table):
        return frame.num_rows
    if isinstance(frame, Mapping):
        return len(next(iter(frame.values()))) if frame else 0
    return len(frame)


def _column(frame, name: str):
    """The column as a pyarrow (Chunked)Array (NaN -> null for numpy/pandas input), or a (B, D) ndarray."""
    try:
        col = frame.column(name) if isinstance(frame, pa.Table) else frame[name]
    except KeyError:
        raise ValueError(f"the frame has no column {name!r}") from None
    if isinstance(col, (pa.Array, pa.ChunkedArray)) or (isinstance(col, np.ndarray) and col.ndim == 2):
        return col
    return pa.array(col, from_pandas=True)  # numpy, pandas Series or list; NaN -> null


def _floats(arr, name: str = "") -> np.ndarray:
    """float64 values of a numeric or boolean (Chunked)Array, NaN where null."""
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise ValueError(f"column {name!r} must be numeric or boolean, got {t}")
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        arr = pc.cast(arr, pa.float64())
    values = arr.to_numpy() if isinstance(arr, pa.ChunkedArray) else arr.to_numpy(zero_copy_only=False)
    return values.astype(np.float64, copy=False)


def _indices(arr) -> np.ndarray:
    """int64 of an int32 (Chunked)Array of indices, -1 where null."""
    values = arr.to_numpy() if isinstance(arr, pa.ChunkedArray) else arr.to_numpy(zero_copy_only=False)
    return np.nan_to_num(values, nan=-1).astype(np.int64)


def _strings(arr):
    """As ``string`` (int32 offsets): numbers as their text, large/view strings re-typed."""
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _embedding(col, dim: int, name: str) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, np.ndarray):
        out = np.nan_to_num(col.astype(np.float32))
    elif not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise ValueError(f"{name}: an embedding column must hold float arrays, got {col.type}")
    else:
        valid = ~col.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if np.any(lengths[valid] != dim):
            raise ValueError(f"{name}: every non-null embedding must have length {dim}")
        out = np.zeros((len(col), dim), dtype=np.float32)
        flat = pc.cast(col.flatten(), pa.float32()).to_numpy(zero_copy_only=False)
        out[valid] = np.nan_to_num(flat.reshape(-1, dim))
    if out.shape[1:] != (dim,):
        raise ValueError(f"{name}: expected (B, {dim}) embeddings, got {out.shape}")
    return out


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


def training_set_spec(id_buckets: int = 2 ** 16, ids: bool = False,
                      embeddings: Mapping[str, int] | None = None, max_position: int = 50) -> EncoderSpec:
    """The spec of the point-in-time training set (:mod:`pinrec.jobs.features.training_set`): hashed user/pin ids,
    context and category vocabularies, every numeric feature of the views (counts, ages and
    recencies through ``log1p``), the views' ``__missing`` flags, category == user's top category,
    and optional embedding columns ``{column: dim}`` with the dot product of the first (the pin's)
    with each of the others (the user's).

    ``ids`` (hashed ``user_id``/``pin_id`` embeddings) is off by default: on the demo's training
    set (40k training rows) they memorised the training split within two epochs and lowered
    test AUC (save 0.626 with ids vs 0.664 without, measured once); turn them on with more data."""
    from pinrec.schemas.features import FEATURE_VIEWS

    feats: list[FeatureSpec] = [Hashed("user_id", id_buckets), Hashed("pin_id", id_buckets)] if ids else []
    feats += [Categorical(c) for c in ("surface", "device", "country", "hour", "day_of_week", "category",
                                       "user__top_category")]
    logged = ("impressions", "closeups", "saves", "age_days", "board_count", "days_since")
    for view in FEATURE_VIEWS:
        for feat in view.features:
            if feat.dtype in ("int64", "float64"):
                # nulls come from a missing view row (flagged below) except a recency never observed
                feats.append(Numeric(view.column(feat.name), log1p=any(k in feat.name for k in logged),
                                     missing_indicator=feat.name == "days_since_last_save"))
        feats.append(Boolean(view.missing_column))
    feats.append(Equal("category", "user__top_category"))
    embeddings = dict(embeddings or {})
    feats += [Embedding(name, dim) for name, dim in embeddings.items()]
    names = list(embeddings)
    feats += [Dot(names[0], other) for other in names[1:]]
    return EncoderSpec(tuple(feats), "position", max_position)
