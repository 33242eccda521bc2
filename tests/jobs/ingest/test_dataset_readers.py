"""Tests of :mod:`pinrec.jobs.ingest.dataset_readers`: the MovieLens 100K reader on a fake folder in the
real formats, ``load_dataset``'s errors, and the real ML-100K when it is present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.dataset_info import read_dataset_info
from pinrec.jobs.ingest.dataset_readers import load_dataset, read_movielens_100k
from tests.jobs.ingest.test_datasets import assert_fk_order, read_table
from tests.support.logs import ts

REPO = Path(__file__).resolve().parents[3]
ML100K = Path(os.environ.get("PINREC_ML100K", REPO.parent / "shared" / "datasets" / "ml-100k"))


def write_fake_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\nDrama|3\n\n", encoding="latin-1")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n", encoding="latin-1")
    (folder / "u.item").write_text(
        "1|Café Society (1995)|01-Jan-1995||http://x|0|0|1|1\n"    # Comedy before Drama
        "2|Late (1999)|01-Jan-1999||http://y|0|0|0|1\n"            # released after its first rating
        "3|unknown||||1|0|0|0\n"                                   # the unknown genre, no date
        "4|Nothing (1994)|15-Mar-1994||http://z|0|0|0|0\n",         # no genre flag at all
        encoding="latin-1")
    (folder / "u.data").write_text(
        "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t3\t4\t881300000\n2\t4\t1\t881400000\n")
    return folder


def test_read_movielens_100k_fake(tmp_path):
    log = read_movielens_100k(write_fake_ml100k(tmp_path / "ml"))
    assert log.categories == ("unknown", "Action", "Comedy", "Drama") and log.source == "ml"
    items = log.items.set_index("item_id")
    assert items["category"].to_dict() == {1: "Comedy", 2: "Drama", 3: "unknown", 4: "unknown"}
    assert items.loc[1, "title"] == "Café Society (1995)"
    assert items.loc[1, "content_embedding"] == [0.0, 0.0, 1.0, 1.0]
    assert items.loc[1, "created_at"] == ts("1995-01-01") and pd.isna(items.loc[3, "created_at"])
    users = log.users.set_index("user_id")
    assert users["country"].tolist() == ["US", "US"] and users["gender"].tolist() == ["M", "F"]
    assert users["age"].tolist() == [24, 53] and users["created_at"].isna().all()
    assert log.interactions["ts"].iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert log.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]

    summary = load_dataset("movielens-100k", tmp_path / "ml", tmp_path / "landing")
    assert summary.total("impressions") == 4 and summary.total("actions") == 6 and summary.total("boards") == 2
    pins = read_table(tmp_path / "landing", "pins").set_index("pin_id")
    assert pins.loc[2, "created_at"] == pd.Timestamp(881250950, unit="s", tz="UTC")  # release after rating
    assert pins.loc[3, "created_at"] == pd.Timestamp(881300000, unit="s", tz="UTC")  # no release date
    assert pins.loc[1, "title"] == "Café Society (1995)"
    assert_fk_order(tmp_path / "landing")
    info = read_dataset_info(tmp_path / "landing")
    assert (info["kind"], info["timestamps"], info["interactions"]) == ("movielens-100k", "column", 4)


def test_missing_files_and_unknown_kinds(tmp_path):
    folder = write_fake_ml100k(tmp_path / "ml")
    (folder / "u.user").unlink()
    with pytest.raises(FileNotFoundError, match=r"u\.user"):
        read_movielens_100k(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("movielens-100k", tmp_path / "nowhere", tmp_path / "landing")
    with pytest.raises(ValueError, match="unknown dataset kind 'netflix'.*movielens-100k"):
        load_dataset("netflix", folder, tmp_path / "landing")


# --- the real MovieLens 100K ------------------------------------------------------------------------

@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens 100K not found at {ML100K}")
def test_real_movielens_100k(tmp_path):
    ratings = np.loadtxt(ML100K / "u.data", dtype=np.int64, usecols=2)
    summary = load_dataset("movielens-100k", ML100K, tmp_path)
    assert summary.total("impressions") == 100_000
    assert summary.total("users") == 943 and summary.total("pins") == 1_682
    act = read_table(tmp_path, "actions")
    assert (act["type"] == "closeup").sum() == 100_000
    assert (act["type"] == "save").sum() == (ratings >= 4).sum() == summary.total("pin_board_edges")
    assert summary.total("actions") == 100_000 + (ratings >= 4).sum()
    assert summary.faults == {} and summary.duplicates == {}
    assert_fk_order(tmp_path)
