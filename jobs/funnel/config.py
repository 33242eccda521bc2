"""The ``funnel`` config section (see :mod:`pinrec.jobs.funnel.funnel`)."""
from __future__ import annotations

from dataclasses import field
from typing import Annotated

from pydantic import Field, field_validator

from pinrec.schemas.config_base import section

PosInt = Annotated[int, Field(ge=1)]


@section("funnel")
class FunnelConfig:
    """The serving-funnel replay of the test day (``pinrec eval-funnel``, and publish).

    ``at_publish``: publish replays the candidate bundle before publishing it and stores the numbers
    in its manifest (the blessing gate compares them with the champion's); ``k``: length of the
    served list measured (HR@k, NDCG@k, channel shares, diversity); ``cutoffs``: candidate-list
    lengths of the candidate recall (a list shorter than a cut-off counts whole); ``max_users``:
    replay only the first users (by id) with a save that day (0: all); ``prerank_keep``: when the
    bundle carries a pre-ranker and serving has it off (``recommend.prerank_keep`` 0), the replay still
    measures what it would cost, keeping this many candidates (the design's 500 -> 200; 0: only when
    serving turns it on), on against off.
    """

    at_publish: bool = True
    k: PosInt = 50
    cutoffs: tuple[PosInt, ...] = field(default_factory=lambda: (50, 500, 1000))
    max_users: Annotated[int, Field(ge=0)] = 0
    prerank_keep: Annotated[int, Field(ge=0)] = 200

    @field_validator("cutoffs")
    @classmethod
    def _some_distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"funnel.cutoffs must be distinct positive lengths, at least one; got {list(value)}")
        return tuple(sorted(value))
