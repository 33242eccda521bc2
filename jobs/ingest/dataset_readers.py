"""Dataset readers: a dataset kind -> a reader returning an :class:`~pinrec.jobs.ingest.datasets.InteractionLog`,
and :func:`load_dataset`, which reads one and lands it (:func:`~pinrec.jobs.ingest.datasets.to_landing`)
with its dataset record. Any other interaction log: :mod:`pinrec.jobs.ingest.log_reader`.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pinrec.schemas.catalog import IMPRESSIONS

from .dataset_info import write_dataset_info
from .datasets import InteractionLog, to_landing
from .landing import LandingSummary


def _file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} is missing (expected in {folder})")
    return path


def _table(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=sep, header=None, encoding="latin-1", quoting=csv.QUOTE_NONE,
                        dtype=str, keep_default_na=False)
    if frame.shape[1] != len(names):
        raise ValueError(f"{path}: expected {len(names)} {sep!r}-separated fields, found {frame.shape[1]}")
    frame.columns = names
    return frame


def read_movielens_100k(path: str | Path) -> InteractionLog:
    """Read the GroupLens MovieLens 100K folder (u.data, u.user, u.item, u.genre).

    Items: category = the first genre set in u.genre order (the "unknown" genre, or no genre at
    all, gives ``"unknown"``); ``content_embedding`` = the genre flags as float32; ``created_at`` =
    the release date (UTC midnight, NaT if missing). Users: country ``"US"`` (ZIP codes),
    ``created_at`` NaT (the first rating stands in). Interactions: unix seconds -> UTC.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"MovieLens 100K folder {folder} does not exist")
    genre = _file(folder, "u.genre").read_text(encoding="latin-1").splitlines()
    genre_pairs = sorted((int(idx), name) for name, idx in (ln.rsplit("|", 1) for ln in genre if ln.strip()))
    genres = tuple(name for _, name in genre_pairs)
    if not genres:
        raise ValueError(f"{folder / 'u.genre'} lists no genres")

    data = _table(_file(folder, "u.data"), "\t", ["user_id", "item_id", "rating", "ts"])
    interactions = pd.DataFrame({
        "user_id": data["user_id"].astype("int64"), "item_id": data["item_id"].astype("int64"),
        "ts": pd.to_datetime(data["ts"].astype("int64"), unit="s", utc=True), "rating": data["rating"].astype(float)})

    raw_users = _table(_file(folder, "u.user"), "|", ["user_id", "age", "gender", "occupation", "zip"])
    users = pd.DataFrame({
        "user_id": raw_users["user_id"].astype("int64"), "created_at": pd.Series(pd.NaT, index=raw_users.index,
                                                                                 dtype="datetime64[ns, UTC]"),
        "country": "US", "gender": raw_users["gender"].where(raw_users["gender"].isin(["M", "F"]), "U"),
        "age": pd.to_numeric(raw_users["age"], errors="coerce").astype("Int32"),
        "occupation": raw_users["occupation"].replace("", None)})

    raw_items = _table(_file(folder, "u.item"), "|",
                       ["item_id", "title", "release", "video_release", "url", *(f"g{i}" for i in range(len(genres)))])
    flags = raw_items[[f"g{i}" for i in range(len(genres))]].astype(np.int8).to_numpy()
    top = flags.argmax(axis=1)  # the first set flag, in u.genre order
    category = np.where(flags.any(axis=1), np.asarray(genres, dtype=object)[top], "unknown")
    items = pd.DataFrame({
        "item_id": raw_items["item_id"].astype("int64"), "category": category,
        "title": raw_items["title"].replace("", None),
        "created_at": pd.to_datetime(raw_items["release"], format="%d-%b-%Y", utc=True, errors="coerce"),
        "nsfw": False, "content_embedding": flags.astype(np.float32).tolist()})
    vocabulary = genres if "unknown" in genres else ("unknown", *genres)
    return InteractionLog(users=users, items=items, interactions=interactions, categories=vocabulary, source="ml")


#: Dataset kind -> reader; ``load_dataset`` dispatches on it.
READERS: dict[str, Callable[[str | Path], InteractionLog]] = {"movielens-100k": read_movielens_100k}


def load_dataset(kind: str, path: str | Path, landing: str | Path, max_partitions: int = 0,
                 negatives: int | None = None) -> LandingSummary:
    """Read dataset ``kind`` from ``path`` and write it into ``landing`` (see :func:`to_landing`; at
    most ``max_partitions`` partitions per table when > 0; ``negatives`` sampled negative impressions
    per interaction, None: auto), with the dataset record
    (:mod:`pinrec.jobs.ingest.dataset_info`). Any other interaction log:
    :func:`pinrec.jobs.ingest.log_reader.load_log`."""
    if kind not in READERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known kinds: {sorted(READERS)} "
                         "(any other interaction log: kind 'log')")
    if path is None:
        raise ValueError(f"dataset kind {kind!r} needs a path to the dataset folder")
    log = READERS[kind](path)
    summary = to_landing(log, landing, max_partitions=max_partitions, negatives=negatives)
    write_dataset_info(landing, {"kind": kind, "path": str(path), "timestamps": "column",
                                 "users": len(log.users), "items": len(log.items),
                                 "interactions": len(log.interactions), "save_threshold": 4.0,
                                 "negative_impressions": summary.negatives,
                                 "partitions": len(summary.rows[IMPRESSIONS.name]),
                                 "max_partitions": max_partitions, "partition": summary.partition})
    return summary
