"""The generic interaction-log reader: column mapping, ids, time modes, metadata, bounded partitions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.dataset_info import read_dataset_info, read_id_map
from pinrec.jobs.ingest.landing import list_partitions
from pinrec.jobs.ingest.log_reader import ORIGIN, LogSpec, load_log, read_log

LOG = """uid,song,when,stars
alice,s2,2021-03-01T10:00:00Z,5
bob,s1,2021-03-01T11:00:00Z,2
alice,s1,2021-03-02T09:00:00Z,4
alice,s2,2021-03-05T09:00:00Z,3
carol,s3,2021-03-04T08:00:00Z,4
"""
ITEMS = "song\tname\ttags\ns1\tOne\trock|pop\ns2\tTwo\tjazz\ns3\tThree\t\ns9\tNine\tpop\n"


def write(tmp_path, text, name="log.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_columns_ids_duplicates_and_metadata(tmp_path):
    spec = LogSpec(user="uid", item="song", timestamp="when", rating="stars", items=str(write(tmp_path, ITEMS,
                   "items.tsv")), labels="tags", title="name")
    read = read_log(write(tmp_path, LOG), spec)
    assert read.timestamps == "column" and read.save_threshold == 4.0 and read.rows == 5
    assert read.user_ids["value"].tolist() == ["alice", "bob", "carol"]
    assert read.item_ids["value"].tolist() == ["s1", "s2", "s3"]
    inter = read.log.interactions.sort_values(["user_id", "item_id"], ignore_index=True)
    # alice rated s2 twice: one interaction at the first time, the last rating
    assert inter[["user_id", "item_id", "rating"]].values.tolist() == [[1, 1, 4], [1, 2, 3], [2, 1, 2], [3, 3, 4]]
    assert inter["ts"][1] == pd.Timestamp("2021-03-01T10:00:00Z")
    items = read.log.items.set_index("item_id")
    assert items.index.tolist() == [1, 2, 3, 4]  # s9 (no interaction) kept, numbered after the log's ids
    assert items["category"].tolist() == ["rock", "jazz", "unknown", "pop"]
    assert items["title"].tolist() == ["One", "Two", "Three", "Nine"]
    # vocabulary jazz, pop, rock
    assert items["content_embedding"][1] == [0.0, 1.0, 1.0] and items["content_embedding"][3] is None


def test_weights_sum_and_every_implicit_row_is_a_save(tmp_path):
    text = "user\titem\tcnt\n1\t10\t2\n1\t10\t5\n1\t11\t1\n2\t10\t1\n"
    read = read_log(write(tmp_path, text, "f.tsv"), LogSpec(user="user", item="item", weight="cnt"))
    assert read.user_ids is None and read.item_ids is None  # integer ids are kept
    assert read.timestamps == "none" and read.save_threshold == -np.inf
    inter = read.log.interactions.sort_values(["user_id", "item_id"])
    assert inter["rating"].tolist() == [7.0, 1.0, 1.0]
    assert (inter["ts"] == ORIGIN).all()
    summary = load_log(tmp_path / "f.tsv", tmp_path / "landing", LogSpec(user="user", item="item", weight="cnt"))
    assert summary.total("pin_board_edges") == 3  # every interaction saved
    assert read_dataset_info(tmp_path / "landing")["timestamps"] == "none"


def test_row_order_gives_increasing_times_and_is_recorded(tmp_path):
    text = "u,i\n1,5\n2,6\n1,7\n"
    summary = load_log(write(tmp_path, text), tmp_path / "landing", LogSpec(user="u", item="i", timestamps="row_order"))
    info = read_dataset_info(tmp_path / "landing")
    assert info["timestamps"] == "row_order" and info["interactions"] == 3 and info["rows"] == 3
    read = read_log(tmp_path / "log.csv", LogSpec(user="u", item="i", timestamps="row_order"))
    assert (read.log.interactions["ts"] - ORIGIN).dt.total_seconds().tolist() == [0, 1, 2]
    assert summary.days == [ORIGIN.date()]


def test_string_ids_are_mapped_and_stored(tmp_path):
    load_log(write(tmp_path, LOG), tmp_path / "landing", LogSpec(user="uid", item="song", timestamp="when"))
    assert read_id_map(tmp_path / "landing", "user")["value"].tolist() == ["alice", "bob", "carol"]
    assert json.loads((tmp_path / "landing" / "_dataset" / "dataset.json").read_text())["users"] == 3


def test_years_of_data_land_in_bounded_partitions(tmp_path):
    days = pd.date_range("2001-01-01", periods=400, freq="3D", tz="UTC")  # 3.3 years, 400 days
    frame = pd.DataFrame({"user_id": np.arange(400) % 7, "item_id": np.arange(400), "ts": days.astype("int64") // 10**9})
    frame.to_parquet(tmp_path / "log.parquet")
    spec = LogSpec(timestamp="ts")
    summary = load_log(tmp_path / "log.parquet", tmp_path / "landing", spec, max_partitions=16)
    parts = list_partitions(tmp_path / "landing", "impressions")
    assert len(parts) == 16 and summary.total("impressions") == 400
    assert parts[-1] == days[-1].date()  # a run of days lands on its last day: no event after its partition
    assert len(list_partitions(tmp_path / "landing", "users")) <= 7  # no empty files for the dimensions
    daily = load_log(tmp_path / "log.parquet", tmp_path / "daily", spec)
    assert len(daily.rows["impressions"]) == 400


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="the user column 'user_id' is missing"):
        read_log(write(tmp_path, LOG), LogSpec(item="song"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_log(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="timestamps must be one of"):
        LogSpec(timestamps="sometimes")
    with pytest.raises(ValueError, match="either a rating or a weight"):
        LogSpec(rating="r", weight="w")


def test_cli_loads_a_log_and_eval_before_load_says_what_to_run(tmp_path, capsys):
    from pinrec.jobs.orchestration.cli import main

    sets = ["--set", f"storage.landing={tmp_path / 'landing'}", "--set", f"storage.artifacts={tmp_path / 'art'}"]
    assert main(["eval-retrieval", *sets]) == 2
    assert "run `pinrec load-dataset`" in capsys.readouterr().err
    path = write(tmp_path, LOG)
    assert main(["load-dataset", "--kind", "log", "--path", str(path), "--user", "uid", "--item", "song",
                 "--rating", "stars", "--timestamps", "none", *sets]) == 0
    assert "impressions" in capsys.readouterr().out
    info = read_dataset_info(tmp_path / "landing")
    assert (info["kind"], info["timestamps"], info["interactions"]) == ("log", "none", 4)
    assert main(["load-dataset", "--kind", "log", "--path", str(path), "--user", "who", *sets]) == 2
    assert "the user column 'who' is missing" in capsys.readouterr().err
