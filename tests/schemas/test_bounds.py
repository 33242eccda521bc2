"""Bounds declared once in field metadata: checked by the standard library alone and by pydantic alike."""
from __future__ import annotations

import dataclasses

import pytest

from pinrec.schemas.bounds import bounded, check_bounds, describe


@dataclasses.dataclass(frozen=True)
class Section:
    k: int = bounded(10, ge=1)
    rate: float = bounded(0.5, gt=0.0, le=1.0)
    cap: int | None = bounded(None, ge=0)

    def __post_init__(self) -> None:
        check_bounds(self, "section")


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "section.k must be >= 1, got 0"),
    ({"rate": 0.0}, r"section.rate must be in \(0, 1\], got 0.0"),
    ({"rate": 1.5}, r"section.rate must be in \(0, 1\], got 1.5"),
    ({"cap": -1}, "section.cap must be >= 0, got -1"),
])
def test_the_constructor_checks_each_bound_and_names_the_key(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Section(**kwargs)


def test_values_on_the_bounds_and_none_pass():
    assert Section(k=1, rate=1.0, cap=0) == Section(1, 1.0, 0)
    assert Section(cap=None).cap is None


def test_describe():
    assert describe({"ge": 1}) == ">= 1" and describe({"lt": 3}) == "< 3"
    assert describe({"gt": 0, "le": 1}) == "in (0, 1]" and describe({"ge": 0, "lt": 1}) == "in [0, 1)"


def test_pydantic_reads_the_same_metadata():
    pydantic = pytest.importorskip("pydantic")
    adapter = pydantic.TypeAdapter(Section)
    props = adapter.json_schema()["properties"]
    assert props["k"]["minimum"] == 1 and props["rate"]["exclusiveMinimum"] == 0 and props["rate"]["maximum"] == 1
    with pytest.raises(pydantic.ValidationError) as raised:
        adapter.validate_python({"k": 0})
    assert raised.value.errors()[0]["type"] == "greater_than_equal"
