"""Real datasets into the landing zone, through one generic "interaction log" adapter.

A dataset reader returns an :class:`InteractionLog` (users, items, timed ratings); :func:`to_landing`
maps any such log onto pinrec's raw tables (:data:`pinrec.schemas.catalog.RAW_TABLES`) and writes them
with :func:`pinrec.jobs.ingest.landing.write_partition`. Adding a dataset of the same shape is one reader
function plus one entry in :data:`pinrec.jobs.ingest.dataset_readers.READERS`.

Mapping (``<p>`` is ``log.source``, ``"ml"`` for MovieLens):

* items -> ``pins``: ``pin_id = item_id``, ``category``, ``title``, ``nsfw`` (False unless given),
  ``content_embedding`` (None unless given), ``created_at`` = the item's ``created_at``, or its first
  interaction when that is missing or later.
* users -> ``users``: ``created_at`` likewise (missing or later than the first interaction -> the
  first interaction), ``country``, ``gender``, ``age``, ``occupation`` as given.
* each interaction -> an ``impressions`` row: ``event_id = "<p>-<user>-<item>"``,
  ``session_id = "<user>-<UTC date>"``, ``position`` = rank by (ts, item_id) in the session from 1,
  clipped to :data:`~pinrec.schemas.catalog.MAX_POSITION`; surface ``home_feed``, device ``unknown``,
  the user's country.
* each interaction -> a ``closeup`` action at ts (``"<p>-c-<user>-<item>"``, ``impression_id`` =
  the impression); ``rating >= save_threshold`` -> also a ``save`` action (``"<p>-s-<user>-<item>"``)
  to the user's board for the item's category.
* sampled negative impressions (``negatives`` per interaction, :mod:`pinrec.jobs.ingest.negatives`):
  ``"<p>-n-<user>-<pin>"`` at the interaction's ts, in its session, without actions; the interaction
  and its negatives take the slate's positions in seeded random order.
* ``boards``: one per (user, category) among the user's saves, ``board_id = user_id * stride +
  category index`` (``stride`` = 100, or the next power of ten above the number of categories),
  ``topic`` = category, ``created_at`` = its first save. ``pin_board_edges``: one per save.

Partitions: events (impressions, actions, edges) by the UTC date of their ts; dimensions on the day
they become needed: users and pins on the day of their first interaction, boards on the day of
their first save. With a bound on the partitions (``max_partitions``), a day is replaced by its
calendar month or year (:func:`choose_granularity`). So every foreign key points into the same or an earlier partition. A user or
item with no interaction lands on the first interaction day on or after its ``created_at`` (the
last day if none; the first day when ``created_at`` is missing, with ``created_at`` = the log's
first interaction). Only days with interactions are written, every table on each of them (empty
files where nothing arrived).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pinrec.schemas.catalog import (
    ACTIONS,
    BOARDS,
    IMPRESSIONS,
    MAX_POSITION,
    PIN_BOARD_EDGES,
    PINS,
    RAW_TABLES,
    USERS,
)

from .landing import GRANULARITIES, LandingSummary, format_ts, write_partition
from .landing_owner import claim, replace
from .negatives import sample_negative_impressions

USER_COLUMNS = ("user_id", "created_at", "country", "gender", "age", "occupation")
ITEM_COLUMNS = ("item_id", "category", "title", "created_at")  # optional: nsfw, content_embedding
INTERACTION_COLUMNS = ("user_id", "item_id", "ts", "rating")
#: seeds the order of an interaction and its sampled negatives within their slate
SLATE_SEED = 0
_TEXT = "string[pyarrow]"


@dataclass(frozen=True)
class InteractionLog:
    """A dataset of timed ratings, the common shape every reader returns.

    Args:
        users: ``user_id`` int64, ``created_at`` (UTC timestamp or NaT), ``country``, ``gender``,
            ``age``, ``occupation``.
        items: ``item_id`` int64, ``category`` str, ``title``, ``created_at`` (UTC timestamp or
            NaT); optional ``nsfw`` bool and ``content_embedding`` (list of floats or None).
        interactions: ``user_id``, ``item_id``, ``ts`` (UTC), ``rating`` (float); at most one
            per (user, item).
        categories: the category vocabulary in board-id order; empty -> sorted item categories.
        source: event id prefix (``"<source>-<user>-<item>"``).
    """

    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    categories: tuple[str, ...] = ()
    source: str = "ml"


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"InteractionLog.{what} lacks column(s) {missing}; has {list(frame.columns)}")


def _settle(created: pd.Series, first: pd.Series, days: pd.DatetimeIndex,
            origin: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    """``(created_at, landing day)`` of dimension rows given their first interaction (NaT if none),
    the interaction days and the log's first interaction ``origin``."""
    created_at = created.where(created.notna() & ~(created > first), first).fillna(origin)
    idx = np.minimum(days.searchsorted(created.dt.floor("D").fillna(days[0])), len(days) - 1)
    return created_at, first.dt.floor("D").fillna(pd.Series(days[idx], index=created.index))


def _check(log: InteractionLog) -> pd.DataFrame:
    """Validate ``log``; its interactions typed (ts UTC) and sorted by (ts, item_id, user_id)."""
    _require(log.users, USER_COLUMNS, "users")
    _require(log.items, ITEM_COLUMNS, "items")
    _require(log.interactions, INTERACTION_COLUMNS, "interactions")
    inter = log.interactions.loc[:, list(INTERACTION_COLUMNS)].astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float64"})
    inter["ts"] = _utc(inter["ts"])
    if inter.empty or inter["ts"].isna().any():
        raise ValueError("InteractionLog.interactions must be non-empty with a ts on every row")
    if inter.duplicated(["user_id", "item_id"]).any():
        raise ValueError("InteractionLog.interactions holds several rows for one (user_id, item_id)")
    for key, frame, what in (("user_id", log.users, "users"), ("item_id", log.items, "items")):
        if frame[key].duplicated().any():
            raise ValueError(f"InteractionLog.{what} repeats a {key}")
        unknown = np.setdiff1d(inter[key].unique(), frame[key].to_numpy())
        if len(unknown):
            raise ValueError(f"interactions refer to {len(unknown)} unknown {key}(s), e.g. {unknown[:5].tolist()}")
    stray = sorted(set(log.items["category"]) - set(log.categories)) if log.categories else []
    if stray:
        raise ValueError(f"item categories {stray[:5]} are not in InteractionLog.categories")
    inter = inter.sort_values(["ts", "item_id", "user_id"], kind="stable", ignore_index=True)
    inter["_day"] = inter["ts"].dt.floor("D")
    return inter


def _tables(log: InteractionLog, inter: pd.DataFrame, save_threshold: float,
            negatives: int = 0) -> dict[str, pd.DataFrame]:
    """Every raw table's rows, each with its landing day (UTC midnight) in ``_day``; ``negatives``
    sampled negative impressions per interaction (:mod:`pinrec.jobs.ingest.negatives`)."""
    days, origin = pd.DatetimeIndex(inter["_day"].unique()), inter["ts"].iloc[0]
    users = log.users.set_index("user_id", drop=False)
    items = log.items.set_index("item_id", drop=False)
    created, day = _settle(_utc(users["created_at"]), inter.groupby("user_id")["ts"].min().reindex(users.index),
                           days, origin)
    users = users.assign(created_at=created, _day=day)
    created, day = _settle(_utc(items["created_at"]), inter.groupby("item_id")["ts"].min().reindex(items.index),
                           days, origin)
    pins = pd.DataFrame({
        "pin_id": items["item_id"].astype("int64"), "created_at": created,
        "category": items["category"].astype(str), "title": items["title"],
        "nsfw": items["nsfw"].astype(bool) if "nsfw" in items else False,
        "content_embedding": items.get("content_embedding"), "_day": day})

    # ids as Arrow strings: Python string objects cost ~60 bytes each, several per row, for the whole log
    user, item, p = inter["user_id"].astype(_TEXT), inter["item_id"].astype(_TEXT), log.source
    day_names = pd.Series(days.strftime("%Y-%m-%d"), index=days)

    def shown(rows: pd.DataFrame, prefix: str, position: np.ndarray) -> pd.DataFrame:
        who = rows["user_id"].astype(_TEXT)
        return pd.DataFrame({
            "event_id": prefix + who + "-" + rows["item_id"].astype(_TEXT), "user_id": rows["user_id"],
            "pin_id": rows["item_id"], "ts": rows["ts"], "session_id": who + "-" + day_names.reindex(rows["_day"]).to_numpy(),
            "position": np.minimum(position, MAX_POSITION).astype(np.int32), "surface": "home_feed",
            "device": "unknown", "country": users["country"].reindex(rows["user_id"]).to_numpy(), "_day": rows["_day"]})

    draw = sample_negative_impressions(inter, pins.assign(available=np.maximum(pins["created_at"], pins["_day"]))
                                       .reset_index(drop=True), negatives)
    if draw.negatives.empty:
        position = inter.groupby(["user_id", "_day"], sort=False).cumcount().to_numpy() + 1
        impressions = shown(inter, p + "-", position)
    else:  # an interaction and its negatives form a slate, in seeded random order: position tells nothing
        extra = draw.negatives.assign(_day=draw.negatives["ts"].dt.floor("D"))
        both = pd.concat([inter[["user_id", "item_id", "ts", "_day"]].assign(slate=np.arange(len(inter))),
                          extra], ignore_index=True)
        both["_shuffle"] = np.random.default_rng(SLATE_SEED).random(len(both))
        ordered = both.sort_values(["ts", "user_id", "slate", "_shuffle"], kind="stable")
        rank = (ordered.groupby(["user_id", "_day"], sort=False).cumcount() + 1).reindex(both.index).to_numpy()
        impressions = pd.concat([shown(inter, p + "-", rank[:len(inter)]),
                                 shown(extra.reset_index(drop=True), p + "-n-", rank[len(inter):])],
                                ignore_index=True)

    categories = log.categories or tuple(sorted(log.items["category"].astype(str).unique()))
    stride = max(100, 10 ** len(str(len(categories) - 1)))
    category = items["category"].reindex(inter["item_id"]).to_numpy()
    cat_index = pd.Series(np.arange(len(categories)), index=list(categories)).reindex(category).to_numpy()
    is_save = (inter["rating"] >= save_threshold).to_numpy()
    saves = inter[is_save].assign(board_id=(inter["user_id"].to_numpy() * stride + cat_index)[is_save],
                                  topic=category[is_save])
    boards = (saves.groupby("board_id", sort=True)
              .agg(owner_user_id=("user_id", "first"), topic=("topic", "first"), created_at=("ts", "min"))
              .reset_index())
    boards["_day"] = boards["created_at"].dt.floor("D")
    edges = pd.DataFrame({"pin_id": saves["item_id"], "board_id": saves["board_id"], "saved_at": saves["ts"],
                          "_day": saves["_day"]})
    engaged = impressions.iloc[:len(inter)]  # the interactions' own impressions, in their order
    closeups = engaged[["user_id", "pin_id", "ts", "session_id", "_day"]].assign(
        event_id=p + "-c-" + user + "-" + item, impression_id=engaged["event_id"], type="closeup",
        board_id=np.nan, _rank=0)
    save_actions = closeups[is_save].assign(event_id=(p + "-s-" + user + "-" + item)[is_save], type="save",
                                            board_id=saves["board_id"].to_numpy(), _rank=1)
    actions = (pd.concat([closeups, save_actions], ignore_index=True)
               .sort_values(["ts", "pin_id", "user_id", "_rank"], kind="stable", ignore_index=True))
    return {USERS.name: users, PINS.name: pins, BOARDS.name: boards, PIN_BOARD_EDGES.name: edges,
            IMPRESSIONS.name: impressions, ACTIONS.name: actions}


def choose_granularity(days: pd.DatetimeIndex, max_partitions: int) -> str:
    """The finest landing granularity (:data:`~pinrec.jobs.ingest.landing.GRANULARITIES`) at which the
    interaction ``days`` (UTC midnights) fill at most ``max_partitions`` partitions; 0: ``"day"``
    (no bound). Raises ValueError when even years are too many."""
    if max_partitions < 0:
        raise ValueError(f"max_partitions must be >= 0 (0: one partition per day), got {max_partitions}")
    if not max_partitions:
        return "day"
    naive = days.tz_convert(None) if days.tz is not None else days
    counts = {"day": len(naive.unique()), "month": len(naive.to_period("M").unique()),
              "year": len(naive.year.unique())}
    for granularity in GRANULARITIES:
        if counts[granularity] <= max_partitions:
            return granularity
    raise ValueError(f"the log spans {counts['year']} calendar years, more than max_partitions={max_partitions} "
                     f"partitions even by year: raise max_partitions (0: one partition per day)")


def _starts(stamps: pd.Series, granularity: str) -> pd.Series:
    """UTC midnights -> the first day of their partition (as UTC midnights)."""
    if granularity == "day":
        return stamps
    floored = stamps.dt.tz_localize(None).dt.to_period("M" if granularity == "month" else "Y").dt.start_time
    return floored.dt.tz_localize("UTC")


def resolve_negatives(negatives: int | None, saves: int, interactions: int) -> int:
    """Sampled negative impressions per interaction: ``negatives`` when given (>= 0), else (auto) 1 for a
    log in which every interaction is a save (an implicit log: neither ranker task would have a
    negative label) and 0 for one with interactions below the save threshold."""
    if negatives is None:
        return 1 if saves >= interactions else 0
    if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 0:
        raise ValueError(f"dataset.negative_impressions must be an integer >= 0 or null (auto), got {negatives!r}")
    return negatives


def to_landing(log: InteractionLog, landing: str | Path, save_threshold: float = 4.0, max_partitions: int = 0,
               empty_partitions: bool = True, negatives: int | None = None) -> LandingSummary:
    """Write ``log`` into ``landing`` as pinrec's raw tables (mapping and partitioning in the
    module docstring): every table on every day that has interactions, one
    ``part-00000.jsonl`` each. Returns the rows written per table and day (no faults, no
    duplicates). Raises ValueError for a log that breaks :class:`InteractionLog`'s contract.

    ``empty_partitions=False`` writes no empty file (a dimension table gets a partition only on
    days it has rows: ingestion treats those tables as optional). ``max_partitions`` > 0 bounds the
    partitions per table: a log with more interaction days than that lands by calendar month, or by
    year when months are still too many (:func:`choose_granularity`; ``summary.partition`` says
    which), each folder named by the span's first day. Ingestion reads the span from the dataset
    record and writes each event to the Delta partition of its own day. ``negatives``: sampled negative
    impressions per interaction (None: :func:`resolve_negatives`'s auto); ``summary.labels`` counts the
    landed impressions, closeups and saves and ``summary.negatives`` the per-interaction number used. The
    log replaces what a previous load left in ``landing`` (:mod:`pinrec.jobs.ingest.landing_owner`)."""
    inter = _check(log)
    claim(landing, "dataset")
    per = resolve_negatives(negatives, int((inter["rating"] >= save_threshold).sum()), len(inter))
    tables = _tables(log, inter, save_threshold, per)
    granularity = choose_granularity(pd.DatetimeIndex(inter["_day"]), max_partitions)
    days = pd.DatetimeIndex(_starts(inter["_day"], granularity).unique())
    kinds = tables[ACTIONS.name]["type"].value_counts()
    labels = {"impressions": len(tables[IMPRESSIONS.name]), "closeup": int(kinds.get("closeup", 0)),
              "save": int(kinds.get("save", 0))}
    summary = LandingSummary(rows={spec.name: {} for spec in RAW_TABLES}, partition=granularity, labels=labels,
                             negatives=per)
    for spec in RAW_TABLES:
        frame = tables.pop(spec.name).reset_index(drop=True)  # each table freed once written
        frame["_day"] = _starts(frame["_day"], granularity)
        columns = list(spec.column_names)
        stamps = [c.name for c in spec.columns if c.dtype == "timestamp"]
        at = frame.groupby("_day", sort=False).indices  # one partition's copy at a time, not all of them
        for stamp in days:
            rows = frame.iloc[at.get(stamp, [])][columns]
            if len(rows) or empty_partitions:
                # timestamps formatted per partition (write_partition keeps strings): no string per row of the log
                write_partition(landing, spec, stamp.date(), rows.assign(**{c: format_ts(rows[c]) for c in stamps}))
                summary.rows[spec.name][stamp.date()] = len(rows)
        del frame
    replace(landing, "dataset", summary.rows)  # what another dataset or world left
    return summary
