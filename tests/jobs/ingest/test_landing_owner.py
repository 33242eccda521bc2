"""A whole-dataset load replaces the landing zone it fills, and never deletes data no loader wrote."""
from __future__ import annotations

import dataclasses

import pytest

from pinrec.jobs.ingest.dataset_info import read_dataset_info
from pinrec.jobs.ingest.datasets import to_landing
from pinrec.jobs.ingest.landing import list_partitions, write_partition
from pinrec.jobs.ingest.landing_owner import LandingInUseError
from pinrec.jobs.ingest.log_reader import LogSpec, load_log
from pinrec.jobs.ingest.synthetic import generate
from pinrec.schemas.catalog import PINS, RAW_TABLES
from tests.jobs.ingest.test_synthetic import TINY
from tests.support.logs import tiny_log


def partitions(landing) -> dict[str, list[str]]:
    return {t.name: [d.isoformat() for d in list_partitions(landing, t.name)] for t in RAW_TABLES}


def test_a_smaller_world_or_a_dataset_replaces_the_previous_world(tmp_path):
    landing = tmp_path / "landing"
    generate(TINY, landing, seed=1)
    assert partitions(landing)["impressions"] == ["2026-01-05", "2026-01-06", "2026-01-07"]
    generate(dataclasses.replace(TINY, days=2), landing, seed=1)
    assert all(days == ["2026-01-05", "2026-01-06"] for days in partitions(landing).values())

    summary = to_landing(tiny_log(), landing, empty_partitions=False)
    assert partitions(landing) == {t: sorted(d.isoformat() for d in days) for t, days in summary.rows.items()}
    assert not (landing / "_truth").exists()  # the world's truth would be read as this dataset's


def test_a_log_replaces_another_log_and_its_id_mapping(tmp_path):
    landing = tmp_path / "landing"
    (tmp_path / "a.csv").write_text("user,item,ts\nu1,i1,2021-01-01\nu2,i1,2021-01-02\nu1,i2,2021-01-03\n")
    (tmp_path / "b.csv").write_text("user,item,ts\n1,5,2022-03-01\n2,5,2022-03-02\n")
    spec = LogSpec(user="user", item="item", timestamp="ts")
    load_log(tmp_path / "a.csv", landing, spec)
    assert (landing / "_dataset" / "user_ids.parquet").exists()
    load_log(tmp_path / "b.csv", landing, spec)
    assert partitions(landing)["impressions"] == ["2022-03-01", "2022-03-02"]
    assert partitions(landing)["users"] == ["2022-03-01", "2022-03-02"]
    assert not (landing / "_dataset" / "user_ids.parquet").exists()  # b's ids are its own integers
    assert read_dataset_info(landing)["path"] == str(tmp_path / "b.csv")


def test_data_no_loader_wrote_is_never_deleted(tmp_path):
    landing = tmp_path / "landing"
    write_partition(landing, PINS, TINY.start_date, to_frame_of_one_pin())
    before = sorted(p.relative_to(landing) for p in landing.rglob("*"))
    with pytest.raises(LandingInUseError, match=r"already holds raw partitions that no pinrec loader wrote \(pins: 1 "
                                                r"day\(s\), 2026-01-05\.\.2026-01-05.*Point storage.landing at an "
                                                r"empty folder"):
        generate(TINY, landing, seed=1)
    with pytest.raises(LandingInUseError):
        to_landing(tiny_log(), landing)
    assert sorted(p.relative_to(landing) for p in landing.rglob("*")) == before


def to_frame_of_one_pin():
    import pandas as pd

    return pd.DataFrame({"pin_id": [1], "created_at": ["2026-01-05T10:00:00.000Z"], "category": ["c"], "title": ["t"],
                         "nsfw": [False], "content_embedding": [None]})
