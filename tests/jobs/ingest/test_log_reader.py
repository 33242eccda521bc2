"""The generic interaction-log reader: column mapping, ids, time modes, metadata, bounded partitions."""
from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest import (
    log_columns,
    log_files,
    log_items,
    log_load,
    log_reader,
    log_spec,
    log_times,
)
from pinrec.jobs.ingest.dataset_info import (
    partition_granularity,
    read_dataset_info,
    read_id_map,
)
from pinrec.jobs.ingest.landing import (
    GRANULARITIES,
    list_partitions,
    partition_end,
    partition_start,
)
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
    strict = json.loads((tmp_path / "landing" / "_dataset" / "dataset.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert strict["save_threshold"] is None  # every interaction a save: null, not -Infinity


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


def test_years_of_data_land_in_bounded_calendar_partitions(tmp_path):
    days = pd.date_range("2001-01-01", periods=400, freq="3D", tz="UTC")  # 3.3 years, 400 days, 40 months
    frame = pd.DataFrame({"user_id": np.arange(400) % 7, "item_id": np.arange(400), "ts": days.astype("int64") // 10**9})
    frame.to_parquet(tmp_path / "log.parquet")
    spec = LogSpec(timestamp="ts")  # no ratings: sampled negative impressions would double the rows counted below
    by_month = load_log(tmp_path / "log.parquet", tmp_path / "months", spec, max_partitions=40, negatives=0)
    parts = list_partitions(tmp_path / "months", "impressions")
    assert by_month.partition == "month" and len(parts) == 40 and by_month.total("impressions") == 400
    assert parts[:2] == [dt.date(2001, 1, 1), dt.date(2001, 2, 1)] and parts[-1] == dt.date(2004, 4, 1)
    assert by_month.rows["impressions"][dt.date(2001, 1, 1)] == 11  # Jan 1, 4, ..., 31
    assert len(list_partitions(tmp_path / "months", "users")) == 1  # no empty files for the dimensions
    assert read_dataset_info(tmp_path / "months")["partition"] == "month"
    assert partition_granularity(tmp_path / "months") == "month"
    by_year = load_log(tmp_path / "log.parquet", tmp_path / "years", spec, max_partitions=39)
    assert by_year.partition == "year"
    assert list_partitions(tmp_path / "years", "impressions") == [dt.date(y, 1, 1) for y in range(2001, 2005)]
    daily = load_log(tmp_path / "log.parquet", tmp_path / "daily", spec)
    assert daily.partition == "day" and len(daily.rows["impressions"]) == 400
    assert partition_granularity(tmp_path / "daily") == "day"
    assert partition_granularity(tmp_path / "nothing") == "day"  # no record (the synthetic world): days
    with pytest.raises(ValueError, match="spans 4 calendar years, more than max_partitions=3"):
        load_log(tmp_path / "log.parquet", tmp_path / "few", spec, max_partitions=3)


def test_partition_spans():
    assert [partition_start(dt.date(2024, 2, 29), g) for g in GRANULARITIES] == [
        dt.date(2024, 2, 29), dt.date(2024, 2, 1), dt.date(2024, 1, 1)]
    assert partition_end(dt.date(2024, 2, 1), "month") == dt.date(2024, 3, 1)
    assert partition_end(dt.date(2024, 12, 1), "month") == dt.date(2025, 1, 1)
    assert partition_end(dt.date(2024, 1, 1), "year") == dt.date(2025, 1, 1)
    assert partition_end(dt.date(2024, 2, 29), "day") == dt.date(2024, 3, 1)
    with pytest.raises(ValueError, match="granularity must be one of"):
        partition_start(dt.date(2024, 1, 1), "week")


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
    assert main(["load-dataset", "--kind", "log", "--path", str(path), "--user", "uid", "--item", "song",
                 "--timestamps", "none", "--negative-impressions", "2", *sets]) == 0
    assert "include 2 sampled negative(s) per interaction" in capsys.readouterr().out
    assert read_dataset_info(tmp_path / "landing")["negative_impressions"] == 2


def test_a_parquet_folder_or_pq_file_is_read(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 11, 10]})
    (folder := tmp_path / "events.parquet").mkdir()
    frame.to_parquet(folder / "part-0.parquet")
    frame.to_parquet(tmp_path / "events.pq")
    assert read_log(folder).rows == 3 and read_log(tmp_path / "events.pq").rows == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_log(tmp_path / "absent.csv")


def test_an_empty_separator_is_refused():
    with pytest.raises(ValueError, match="label_sep must be a non-empty separator"):
        LogSpec(user="uid", item="song", label_sep="")


def test_zero_padded_and_huge_ids_are_renumbered_not_merged_or_overflowed(tmp_path):
    read = read_log(write(tmp_path, "user_id,item_id\n007,10\n7,11\n7,12\n"))
    assert read.user_ids["value"].tolist() == ["007", "7"]  # two users, as written
    assert sorted(read.log.interactions["user_id"].unique()) == [1, 2]
    assert read.item_ids is None  # plain integers are kept
    big = 4611686018427387905  # 2**62 + 1: its board id (user x 100 + category) would overflow int64
    read = read_log(write(tmp_path, f"user_id,item_id\n1,10\n{big},11\n9223372036854775808,12\n"))
    assert read.user_ids["value"].tolist() == ["1", str(big), "9223372036854775808"]
    assert (read.log.users["user_id"] > 0).all() and read.log.users["user_id"].max() == 3
    frame = pd.DataFrame({"user_id": np.array([1, 2 ** 63 + 5], np.uint64), "item_id": [10, 11]})
    frame.to_parquet(tmp_path / "big.parquet")
    assert read_log(tmp_path / "big.parquet").user_ids["value"].tolist() == ["1", str(2 ** 63 + 5)]
    # negative ids (text or integer column) are renumbered: faiss marks a missing neighbour with -1
    read = read_log(write(tmp_path, "user_id,item_id\n1,-1\n2,5\n"))
    assert read.item_ids["value"].tolist() == ["-1", "5"] and (read.log.items["item_id"] > 0).all()
    pd.DataFrame({"user_id": [-3, 4], "item_id": [10, 11]}).to_parquet(tmp_path / "neg.parquet")
    assert read_log(tmp_path / "neg.parquet").user_ids["value"].tolist() == ["-3", "4"]


def test_huge_user_ids_land_on_distinct_boards(tmp_path):
    load_log(write(tmp_path, "user_id,item_id\n1,10\n4611686018427387905,11\n"), tmp_path / "landing")
    rows = [json.loads(x) for p in (tmp_path / "landing" / "boards").rglob("*.jsonl") for x in p.read_text().splitlines()]
    assert len({r["board_id"] for r in rows}) == 2 and len({r["owner_user_id"] for r in rows}) == 2


def test_the_items_key_matches_plain_and_renumbered_log_ids(tmp_path):
    items = write(tmp_path, "item_id,category\n10,a\n011,b\n", "items.csv")
    read = read_log(write(tmp_path, "user_id,item_id\n1,10\n2,011\n"), LogSpec(items=str(items), category="category"))
    cats = read.log.items.set_index("item_id")["category"]
    assert read.item_ids["value"].tolist() == ["011", "10"] and cats[1] == "b" and cats[2] == "a"
    with pytest.raises(ValueError, match="not a plain integer like the log's item ids"):
        read_log(write(tmp_path, "user_id,item_id\n1,10\n2,11\n"), LogSpec(items=str(items), category="category"))


def test_a_repeated_pair_keeps_the_rating_of_its_latest_row_not_of_the_files_last(tmp_path):
    # an unsorted dump: the later row of the file is the earlier rating
    got = read_log(write(tmp_path, "u,i,ts,r\n1,7,200,5\n1,7,100,1\n"), LogSpec(user="u", item="i", timestamp="ts",
                                                                             rating="r"))
    inter = got.log.interactions
    assert inter["rating"].tolist() == [5.0] and inter["ts"].tolist() == [pd.Timestamp(100, unit="s", tz="UTC")]


@pytest.mark.parametrize("unit, value, expected", [
    ("auto", 1_609_459_200, "2021-01-01"), ("auto", 1_609_459_200_123, "2021-01-01 00:00:00.123"),
    ("ms", 1_609_459_200_123, "2021-01-01 00:00:00.123"), ("s", 1_609_459_200, "2021-01-01")])
def test_numeric_times_in_seconds_or_milliseconds(tmp_path, unit, value, expected):
    got = read_log(write(tmp_path, f"u,i,ts\n1,7,{value}\n"), LogSpec(user="u", item="i", timestamp="ts",
                                                                      timestamp_unit=unit))
    assert got.log.interactions["ts"].tolist() == [pd.Timestamp(expected, tz="UTC")]


def test_milliseconds_read_as_seconds_or_times_past_2262_name_the_setting(tmp_path):
    path = write(tmp_path, "u,i,ts\n1,7,1609459200123\n")
    with pytest.raises(ValueError, match=r"'ts' holds 1609459200123, the year 52971 in seconds: set "
                                         r"dataset.timestamp_unit: ms"):
        read_log(path, LogSpec(user="u", item="i", timestamp="ts", timestamp_unit="s"))
    with pytest.raises(ValueError, match=r"'ts' holds 9\d{18}, not a time in milliseconds since 1970"):
        read_log(write(tmp_path, "u,i,ts\n1,7,9000000000000000000\n"), LogSpec(user="u", item="i", timestamp="ts"))


def test_latin1_ids_stay_distinct_and_the_separator_is_guessed_the_same_way(tmp_path):
    path = tmp_path / "enc.csv"
    path.write_bytes("user,item\n1,a\xe9\n1,a\xe8\n2,a\xe9\n".encode("latin-1"))  # not UTF-8
    for sep in (None, ","):
        got = read_log(path, LogSpec(user="user", item="item", sep=sep))
        assert len(got.log.items) == 2 and len(got.log.interactions) == 3
        assert sorted(got.item_ids["value"]) == ["a\xe8", "a\xe9"]


@pytest.mark.parametrize("text, sep", [("1::10::5\n2::11::3\n", "::"), ("1;10;5\n2;11;3\n", ";"),
                                       ("1|10|5\n2|11|3\n", "|"), ("1\t10\t5\n2\t11\t3\n", "\t"),
                                       ("1,10,5\n2,11,3\n", ",")])
def test_the_separator_is_guessed_from_the_first_line(tmp_path, text, sep):
    got = read_log(write(tmp_path, text, "r.dat"), LogSpec(user="u", item="i", rating="r", names=("u", "i", "r")))
    assert sorted(got.log.interactions["item_id"]) == [10, 11] and got.log.interactions["rating"].max() == 5.0


def test_json_lines_are_read(tmp_path):
    path = write(tmp_path, '{"reviewerID": "A1", "asin": "B7", "overall": 5.0, "unixReviewTime": 1609459200}\n'
                           '{"reviewerID": "A2", "asin": "B7", "overall": 2.0, "unixReviewTime": 1609545600}\n',
                 "reviews.jsonl")
    got = read_log(path, LogSpec(user="reviewerID", item="asin", rating="overall", timestamp="unixReviewTime"))
    assert len(got.log.interactions) == 2 and got.user_ids["value"].tolist() == ["A1", "A2"]


@pytest.mark.parametrize("text, hint", [
    ("1 10 5\n2 11 3\n", r"read as one column: .*\(set dataset.sep\)"),
    ("1\t10\t5\n2\t11\t3\n", r"the first row looks like data, not a header \(name the columns with dataset.names\)"),
    # Amazon ratings without a header: string ids beside a rating and unix seconds
    ("AEC4EA,B0030673,4.0,1400317293\nA2,B7,5.0,1400317294\n", r"first row looks like data.*dataset.names"),
    # Last.fm-1K / Gowalla without a header: no number in the first row but an ISO time
    ("user_000001\t2009-05-04T23:08:57Z\tDeep Dish\nuser_000002\t2009-05-04T13:54:10Z\tBjörk\n",
     r"first row looks like data.*dataset.names"),
])
def test_a_wrong_separator_or_a_missing_header_is_named(tmp_path, text, hint):
    with pytest.raises(ValueError, match=hint):
        read_log(write(tmp_path, text), LogSpec())


def test_a_missing_metadata_column_lists_the_files_own_columns(tmp_path):
    (tmp_path / "meta.csv").write_text("asin,title,genres\nB7,A film,Action|Comedy\n")
    log = write(tmp_path, "user,asin\nA1,B7\nA2,B7\n")
    with pytest.raises(ValueError) as err:
        read_log(log, LogSpec(user="user", item="asin", items=str(tmp_path / "meta.csv"), labels="genre"))
    assert "the labels column 'genre' is missing; columns: ['asin', 'title', 'genres'] (" in str(err.value)


def test_the_content_vector_covers_the_most_frequent_labels_only(tmp_path):
    from pinrec.jobs.ingest.log_reader import MAX_LABELS

    # 300 items, each with its own label t<i> and a shared one: 301 labels, more than MAX_LABELS
    items = "item_id\ttags\n" + "".join(f"{i}\tshared|t{i:03d}\n" for i in range(1, 301))
    (tmp_path / "items.tsv").write_text(items)
    log = write(tmp_path, "user_id,item_id\n" + "".join(f"1,{i}\n" for i in range(1, 301)))
    got = read_log(log, LogSpec(items=str(tmp_path / "items.tsv"), labels="tags")).log.items
    vectors = [v for v in got["content_embedding"]]
    assert {len(v) for v in vectors} == {MAX_LABELS}
    assert all(sum(v) >= 1 for v in vectors)  # everyone keeps "shared", the most frequent
    assert sum(sum(v) == 2 for v in vectors) == MAX_LABELS - 1  # and 255 items their own label too


def test_one_sentinel_time_does_not_turn_seconds_into_milliseconds(tmp_path):
    path = write(tmp_path, "u,i,ts\n1,7,1700000000\n1,8,1700000060\n2,7,253402300799\n")  # 9999-12-31 as "never"
    with pytest.raises(ValueError, match=r"'ts' holds 253402300799, the year 9999 in seconds: 1 of 3 values are that "
                                         r"large while the median, 1700000060, is in seconds: a sentinel date"):
        read_log(path, LogSpec(user="u", item="i", timestamp="ts"))
    ms = read_log(write(tmp_path, "u,i,ts\n1,7,1700000000000\n1,8,1700000060000\n2,7,1700000120000\n"),
                  LogSpec(user="u", item="i", timestamp="ts"))
    assert ms.log.interactions["ts"].max() == pd.Timestamp(1_700_000_120, unit="s", tz="UTC")


@pytest.mark.parametrize("dates, expected", [
    (["2024-02-12 10:00", "2024-02-13T10:00:00+01:00"], ["2024-02-12 10:00", "2024-02-13 09:00"]),  # ISO 8601
    (["02/12/2024 10:00", "02/13/2024 10:00"], ["2024-02-12 10:00", "2024-02-13 10:00"]),  # one format throughout
    (["13 Feb 2024", "2024-02-14"], ["2024-02-13", "2024-02-14"]),  # mixed, but no order to guess
])
def test_date_strings_are_read_with_one_format(tmp_path, dates, expected):
    got = read_log(write(tmp_path, "u,i,ts\n" + "".join(f"1,{n},{d}\n" for n, d in enumerate(dates))),
                   LogSpec(user="u", item="i", timestamp="ts"))
    assert sorted(got.log.interactions["ts"].tolist()) == [pd.Timestamp(e, tz="UTC") for e in expected]


def test_a_day_month_order_that_decides_the_date_is_refused(tmp_path):
    path = write(tmp_path, "u,i,ts\n1,7,12/02/2024 10:00\n1,8,13/02/2024 10:00\n")  # day first, but 12/02 reads both ways
    with pytest.raises(ValueError, match=r"'ts' mixes date formats and 1 value\(s\), e.g. '12/02/2024 10:00', read "
                                         r"as 2024-12-02 month first or 2024-02-12 day first: write the times as ISO"):
        read_log(path, LogSpec(user="u", item="i", timestamp="ts"))


@pytest.mark.parametrize("name, data, message", [
    ("log.jsonl", b'{"u": 1, "i": 7}\n{"u": 2, "i": \n', r"log\.jsonl cannot be read as JSON lines \(one object"),
    ("log.csv", b"", r"log\.csv is empty: no header and no rows"),
    ("log.csv", b"u,i,r\n1,7,5\n2,8,x\n", r"log\.csv: the rating column 'r' has 1 value\(s\) that are not finite numbers, e\.g\. 'x' \(row 2\)"),
    ("log.csv", b"u,i,r\n1,7,5\n2,8,inf\n", r"the rating column 'r' has 1 value\(s\) that are not finite numbers"),
])
def test_unreadable_logs_name_the_file_and_column(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_log(tmp_path / name, LogSpec(user="u", item="i", rating="r" if b",r" in data else None))


@pytest.mark.parametrize("name, data", [("log.jsonl", '\ufeff{"u": 1, "i": 7}\n{"u": 2, "i": 8}\n'),
                                        ("log.csv", "\ufeffu,i\n1,7\n2,8\n")])
def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path, name, data):
    (tmp_path / name).write_text(data, encoding="utf-8")
    got = read_log(tmp_path / name, LogSpec(user="u", item="i"))
    assert sorted(got.log.interactions["item_id"]) == [7, 8]


def test_quotes_in_a_tab_separated_log_are_text_and_a_quote_run_on_in_a_csv_is_refused(tmp_path):
    tsv = tmp_path / "plays.tsv"  # Last.fm-1K style: names with an opening quote and no closing one
    tsv.write_text('user\titem\tts\nu1\t"Heroes\t2009-05-04T23:08:57Z\nu1\tA\t2009-05-04T13:54:10Z\n'
                   'u2\tX" Y\t2009-05-04T13:52:04Z\nu2\tB\t2009-05-04T13:42:52Z\n')
    got = read_log(tsv, LogSpec(user="user", item="item", timestamp="ts"))
    assert len(got.log.interactions) == 4 and sorted(got.item_ids["value"]) == ['"Heroes', "A", "B", 'X" Y']
    csv_file = tmp_path / "plays.csv"
    csv_file.write_text('user,item\nu1,"Heroes\nu1,A\nu2,B"\n')  # the quote closes two lines on
    with pytest.raises(ValueError, match=r"plays\.csv: 3 data lines read as 1 rows: a field opening a quote"):
        read_log(csv_file, LogSpec(user="user", item="item"))
    quoted = tmp_path / "quoted.csv"  # proper CSV quoting still works
    quoted.write_text('user,item\nu1,"a, b"\nu2,"say ""hi"""\n')
    assert sorted(read_log(quoted, LogSpec(user="user", item="item")).item_ids["value"]) == ["a, b", 'say "hi"']


def test_ids_spelled_like_missing_values_are_ids(tmp_path):
    path = write(tmp_path, "user,artist\n1,NA\n2,None\n3,nan\n4,NULL\n")
    got = read_log(path, LogSpec(user="user", item="artist"))
    assert sorted(got.item_ids["value"]) == ["NA", "NULL", "None", "nan"]
    with pytest.raises(ValueError, match="the item column 'artist' has 1 empty value"):
        read_log(write(tmp_path, "user,artist\n1,a\n2,\n"), LogSpec(user="user", item="artist"))


def test_json_ids_beyond_64_bits_keep_their_digits(tmp_path):
    path = tmp_path / "log.jsonl"  # pandas reads 123456789012345678901 as 12776324570088369205 (mod 2**64)
    path.write_text('{"u": 123456789012345678901, "i": 7}\n{"u": 123456789012345678902, "i": 8}\n{"u": 5, "i": 7}\n')
    got = read_log(path, LogSpec(user="u", item="i"))
    assert sorted(got.user_ids["value"]) == ["123456789012345678901", "123456789012345678902", "5"]
    assert len(got.log.interactions) == 3


HOME = {
    "LogSpec": log_spec, "ReadLog": log_spec, "TIMESTAMP_MODES": log_spec, "TIMESTAMP_UNITS": log_spec,
    "read_table": log_files, "MAX_KEPT_ID": log_columns, "ORIGIN": log_times, "MS_FROM": log_times,
    "MAX_LABELS": log_items, "read_log": log_load, "load_log": log_load, "land_configured": log_load,
}


def top_level_assignments(module) -> set[str]:
    """Names a module assigns at its top level (where a constant, which has no ``__module__``, is defined)."""
    tree = ast.parse(Path(module.__file__).read_text())
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(log_reader.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(log_reader, name) is getattr(module, name), name
        value = module.__dict__[name]
        if isinstance(value, type) or callable(value):
            assert value.__module__ == module.__name__, name
        else:
            assert name in top_level_assignments(module), name
