"""What the feature encoder (:mod:`pinrec.export.feature_encoder`) is told and what it returns: the feature
kinds (frozen dataclasses), the :class:`EncoderSpec` that lists them in output order, the
:class:`EncodedBatch` of arrays it produces, and :func:`training_set_spec`, the spec of the training set.
Base install only (numpy); :mod:`pinrec.export.encoding` re-exports every name."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["Boolean", "Categorical", "Dot", "Embedding", "EncodedBatch", "EncoderSpec", "Equal", "FeatureSpec",
           "Hashed", "Numeric", "training_set_spec"]


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
