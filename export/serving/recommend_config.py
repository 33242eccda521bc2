"""How :class:`~pinrec.export.serving.recommender.Recommender` serves: :class:`RecommendConfig`, the
``recommend`` section of the pipeline's config (channels, candidate counts, quotas, diversity).

A stdlib frozen dataclass (the base install has no pydantic), validated in ``__post_init__`` with
the same rules pydantic applies when it is a field of the pipeline's config. Base install only.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from pinrec.schemas.bounds import bounded, check_bounds

from .candidates import CHANNELS

__all__ = ["RecommendConfig"]


@dataclass(frozen=True)
class RecommendConfig:
    """How :class:`Recommender` serves.

    ``channels``: candidate channels in priority order (subset of :data:`CHANNELS`); ``None``: every
    channel the bundle can serve, in the order of :data:`CHANNELS` (a channel named explicitly that the
    bundle cannot serve is an error).
    ``ann_candidates``: pins kept from the ANN channel; ``ann_queries``: most recent saves used
    as queries; ``recency_half_life``: saves after which a query's weight halves; ``rrf_k``: the
    reciprocal-rank constant. ``two_tower_candidates``: pins kept from the two-tower channel (the
    bundle's user tower on the request, its index of pin-tower outputs searched). ``fresh_candidates`` / ``trending_candidates``: pins from the
    fresh and from each trending channel; ``trending_by``: the pin feature ranking trending pins.
    ``category_cap``: most pins of one category in the result (0: no cap); ``mmr_lambda``:
    relevance weight of MMR (1: plain score order). ``ranker_threads``: intra-op threads of the
    ranker's own onnxruntime session (0: use the bundle's session as opened). ``cf_candidates``: pins
    kept from the ``cf`` channel. ``quotas``: channel
    -> most pins it adds to the merged candidates beyond those an earlier channel added (source
    quotas such as ``{ann: 300, trending: 50}``; a channel not named has none). ``prerank_keep``:
    when more merged candidates remain, only the pre-ranker's best this many go to the ranker (the
    bundle must carry ``extra/prerank.onnx``); 0: no pre-ranker, the ranker scores every candidate.
    """

    #: pydantic (not imported here) validates this section strictly when it is a field of the pipeline's config
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid", "allow_inf_nan": False, "coerce_numbers_to_str": True}

    channels: tuple[str, ...] | None = None
    ann_candidates: int = bounded(500, ge=1)
    ann_queries: int = bounded(5, ge=1)
    recency_half_life: float = bounded(2.0, gt=0.0)
    rrf_k: float = bounded(60.0, ge=0.0)
    two_tower_candidates: int = bounded(500, ge=1)
    fresh_candidates: int = bounded(50, ge=0)
    trending_candidates: int = bounded(50, ge=0)
    trending_by: str = "pin__saves_30d"
    category_cap: int = bounded(10, ge=0)
    mmr_lambda: float = bounded(1.0, ge=0.0, le=1.0)
    ranker_threads: int = bounded(1, ge=0)
    quotas: dict[str, int] = field(default_factory=dict)
    prerank_keep: int = bounded(0, ge=0)
    cf_candidates: int = bounded(200, ge=1)

    def __post_init__(self) -> None:
        if self.channels is not None and (not self.channels or isinstance(self.channels, str) or len(set(self.channels)) != len(self.channels)
                or not set(self.channels) <= set(CHANNELS)):
            raise ValueError(f"recommend.channels must be distinct names from {CHANNELS}, got {self.channels!r}")
        check_bounds(self, "recommend")
        if not isinstance(self.quotas, Mapping):  # ValueError, as every config error (pydantic wraps only those)
            raise ValueError(  # noqa: TRY004
                f"recommend.quotas must map channels of {CHANNELS} to counts >= 0, got {self.quotas!r}")
        unknown = sorted(set(self.quotas) - set(CHANNELS), key=repr)
        bad = {c: n for c, n in self.quotas.items()
               if not isinstance(n, numbers.Integral) or isinstance(n, bool | np.bool_) or n < 0}
        if unknown or bad:
            raise ValueError(f"recommend.quotas maps channels of {CHANNELS} to counts >= 0; "
                             f"unknown channels {unknown}, bad counts {bad}")
        if not isinstance(self.trending_by, str) or not self.trending_by.startswith("pin__"):
            raise ValueError(f"recommend.trending_by must be a pin feature column (pin__...), got {self.trending_by!r}")
