"""Tests of :mod:`pinrec.jobs.ingest.datasets`: the interaction-log mapping on tiny inline data (the
MovieLens reader: ``test_dataset_readers.py``)."""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.datasets import InteractionLog, to_landing
from pinrec.jobs.ingest.landing import LandingSummary, list_partitions, partition_dir
from pinrec.schemas.catalog import RAW_TABLES, TABLES
from tests.support.logs import tiny_log, ts

D1, D2, D4 = dt.date(2021, 1, 1), dt.date(2021, 1, 2), dt.date(2021, 1, 4)


def read_table(landing: Path, name: str) -> pd.DataFrame:
    """Every landed row of ``name`` with its partition date as ``dt`` (a date; timestamps parsed).
    All files are parsed in one go, which keeps the 1,278 partitions of ML-100K fast."""
    texts, days = [], []
    for day in list_partitions(landing, name):
        for f in sorted(Path(partition_dir(landing, name, day).path).glob("*.jsonl")):
            text = f.read_text(encoding="utf-8")
            texts.append(text)
            days += [day] * text.count("\n")
    out = pd.read_json(io.StringIO("".join(texts)), lines=True, dtype=False, convert_dates=False)
    out["dt"] = days
    for col in TABLES[name].columns:
        if col.dtype == "timestamp":
            out[col.name] = pd.to_datetime(out[col.name], utc=True, format="ISO8601")
    return out


def assert_fk_order(landing: Path) -> None:
    """Every foreign key points at a row landed in the same or an earlier partition, and every
    event lands in the partition of its timestamp's UTC date."""
    tables = {spec.name: read_table(landing, spec.name) for spec in RAW_TABLES}
    for frame in tables.values():
        frame["_dt"] = pd.to_datetime(frame["dt"])  # datetime64, for fast grouping
    for spec in RAW_TABLES:
        rows = tables[spec.name]
        if spec.kind == "event":
            assert (rows[spec.event_ts].dt.tz_localize(None).dt.floor("D") == rows["_dt"]).all(), spec.name
        for col in spec.foreign_keys:
            ref_table, ref_col = col.references.split(".")
            landed = tables[ref_table].groupby(ref_col)["_dt"].min()
            values = rows[rows[col.name].notna()]
            ref_dt = values[col.name].map(landed)
            assert ref_dt.notna().all(), f"{spec.name}.{col.name} -> {col.references}: dangling keys"
            assert (ref_dt <= values["_dt"]).all(), f"{spec.name}.{col.name} -> {col.references}: later partition"


# --- the generic mapping on inline data -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, LandingSummary]:
    landing = tmp_path_factory.mktemp("tiny")
    return landing, to_landing(tiny_log(), landing)


def test_impressions_sessions_and_positions(tiny):
    landing, summary = tiny
    imp = read_table(landing, "impressions").sort_values(["dt", "session_id", "position"], ignore_index=True)
    got = list(imp[["event_id", "session_id", "position", "dt", "country"]].itertuples(index=False, name=None))
    assert got == [
        ("t-1-12", "1-2021-01-01", 1, D1, "US"), ("t-1-10", "1-2021-01-01", 2, D1, "US"),
        ("t-1-11", "1-2021-01-01", 3, D1, "US"), ("t-2-10", "2-2021-01-01", 1, D1, "GB"),
        ("t-1-13", "1-2021-01-02", 1, D2, "US"), ("t-2-11", "2-2021-01-02", 1, D2, "GB"),
        ("t-3-13", "3-2021-01-02", 1, D2, "US"), ("t-3-12", "3-2021-01-04", 1, D4, "US")]
    assert set(imp["surface"]) == {"home_feed"} and set(imp["device"]) == {"unknown"}
    assert summary.days == [D1, D2, D4]
    assert summary.rows["impressions"] == {D1: 4, D2: 3, D4: 1}
    assert summary.faults == {} and summary.duplicates == {}


def test_actions_boards_and_edges(tiny):
    landing, summary = tiny
    act = read_table(landing, "actions")
    closeups = act[act["type"] == "closeup"]
    assert len(closeups) == 8 and closeups["board_id"].isna().all()
    assert (closeups["impression_id"] == "t-" + closeups["event_id"].str[4:]).all()
    saves = act[act["type"] == "save"].sort_values("ts", ignore_index=True)
    assert list(saves[["event_id", "impression_id", "board_id", "dt"]].itertuples(index=False, name=None)) == [
        ("t-s-1-12", "t-1-12", 100, D1), ("t-s-1-10", "t-1-10", 100, D1),
        ("t-s-1-13", "t-1-13", 102, D2), ("t-s-2-11", "t-2-11", 201, D2)]
    assert list(act.loc[act["event_id"] == "t-s-1-12", "ts"]) == [ts("2021-01-01 09:00")]
    assert summary.rows["actions"] == {D1: 6, D2: 5, D4: 1}

    boards = read_table(landing, "boards").sort_values("board_id", ignore_index=True)
    assert list(boards[["board_id", "owner_user_id", "topic", "created_at", "dt"]].itertuples(index=False, name=None)) == [
        (100, 1, "Action", ts("2021-01-01 09:00"), D1), (102, 1, "Drama", ts("2021-01-02 00:00:01"), D2),
        (201, 2, "Comedy", ts("2021-01-02 08:00"), D2)]
    edges = read_table(landing, "pin_board_edges").sort_values("saved_at", ignore_index=True)
    assert list(edges[["pin_id", "board_id", "dt"]].itertuples(index=False, name=None)) == [
        (12, 100, D1), (10, 100, D1), (13, 102, D2), (11, 201, D2)]


def test_dimensions_land_when_first_needed(tiny):
    landing, summary = tiny
    users = read_table(landing, "users").set_index("user_id")
    assert users["dt"].to_dict() == {1: D1, 2: D1, 3: D2, 4: D1}
    assert users["created_at"].to_dict() == {
        1: ts("2021-01-01 09:00"), 2: ts("2020-12-01"), 3: ts("2021-01-02 09:00"), 4: ts("2021-01-01 09:00")}
    assert pd.isna(users.loc[2, "occupation"]) and pd.isna(users.loc[3, "age"])
    pins = read_table(landing, "pins").set_index("pin_id")
    assert pins["dt"].to_dict() == {10: D1, 11: D1, 12: D1, 13: D2, 14: D4}
    assert pins["created_at"].to_dict() == {
        10: ts("1999-01-01"), 11: ts("2021-01-01 10:00"), 12: ts("2000-06-01"),
        13: ts("2021-01-02 00:00:01"), 14: ts("2021-01-03")}
    assert not pins["nsfw"].any() and pins["content_embedding"].isna().all()
    assert summary.rows["users"] == {D1: 3, D2: 1, D4: 0} and summary.rows["boards"] == {D1: 1, D2: 2, D4: 0}


def test_foreign_keys_point_backwards(tiny):
    assert_fk_order(tiny[0])


def test_fk_check_catches_a_late_dimension(tmp_path):
    to_landing(tiny_log(), tmp_path)
    users = Path(partition_dir(tmp_path, "users", D1).path) / "part-00000.jsonl"
    lines = users.read_text().splitlines(keepends=True)
    late = [ln for ln in lines if ln.startswith('{"user_id":1,')]
    users.write_text("".join(ln for ln in lines if ln not in late))
    later = Path(partition_dir(tmp_path, "users", D2).path) / "part-00000.jsonl"
    later.write_text(later.read_text() + "".join(late))
    with pytest.raises(AssertionError, match="later partition"):
        assert_fk_order(tmp_path)


def test_positions_are_clipped(tmp_path):
    n = 503
    log = InteractionLog(
        users=pd.DataFrame({"user_id": [7], "created_at": [pd.NaT], "country": ["US"], "gender": ["F"],
                            "age": [30], "occupation": [None]}),
        items=pd.DataFrame({"item_id": np.arange(n), "category": "x", "title": None, "created_at": pd.NaT}),
        interactions=pd.DataFrame({"user_id": 7, "item_id": np.arange(n)[::-1], "rating": 1.0,
                                   "ts": ts("2021-01-01") + pd.to_timedelta(np.arange(n), unit="s")}))
    to_landing(log, tmp_path)
    imp = read_table(tmp_path, "impressions").sort_values("ts", ignore_index=True)
    assert imp["position"].tolist() == [*range(1, 500), 500, 500, 500, 500]
    assert imp["pin_id"].iloc[0] == n - 1 and imp["session_id"].unique().tolist() == ["7-2021-01-01"]


def test_save_threshold(tmp_path):
    summary = to_landing(tiny_log(), tmp_path, save_threshold=4.5)
    saves = read_table(tmp_path, "actions").query("type == 'save'")
    assert sorted(saves["event_id"]) == ["t-s-1-10", "t-s-1-13"]
    assert summary.total("boards") == 2 and summary.total("pin_board_edges") == 2
    assert_fk_order(tmp_path)


def test_invalid_logs_are_refused(tmp_path):
    log = tiny_log()
    stray = log.interactions.assign(user_id=log.interactions["user_id"].replace(3, 99))
    with pytest.raises(ValueError, match="unknown user_id"):
        to_landing(InteractionLog(log.users, log.items, stray), tmp_path)
    twice = pd.concat([log.interactions, log.interactions.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="several rows"):
        to_landing(InteractionLog(log.users, log.items, twice), tmp_path)
    with pytest.raises(ValueError, match="lacks column"):
        to_landing(InteractionLog(log.users.drop(columns="country"), log.items, log.interactions), tmp_path)
    with pytest.raises(ValueError, match="not in InteractionLog.categories"):
        to_landing(InteractionLog(log.users, log.items, log.interactions, categories=("Action",)), tmp_path)


# --- the MovieLens 100K reader on a fake folder ---------------------------------------------------
