"""Reading an interaction log into an :class:`~pinrec.jobs.ingest.datasets.InteractionLog` and landing it
(:mod:`pinrec.jobs.ingest.log_reader`): :func:`read_log`, :func:`load_log`, :func:`land_configured`.

Repeated (user, item) rows (a usage log: one row per context) become one interaction at the
earliest time; ``rating`` keeps the latest row's value (by time; among equal times the later row of
the file), ``weight`` is summed. The interaction's
``rating`` is the rating column, else the summed weight, else 1.0; ``save_threshold`` (None: 4.0 when
the log has ratings, else every interaction is a save) decides which interactions are saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .dataset_info import write_dataset_info
from .dataset_readers import load_dataset
from .datasets import InteractionLog, to_landing
from .landing import LandingSummary
from .log_columns import _column, _ids, _numbers
from .log_files import read_table
from .log_items import _items
from .log_spec import LogSpec, ReadLog
from .log_times import _times


def read_log(path: str | Path, spec: LogSpec | None = None) -> ReadLog:
    """Read the interaction log at ``path`` as ``spec`` says (:mod:`pinrec.jobs.ingest.log_reader`). Raises
    FileNotFoundError / ValueError naming the file and column at fault."""
    spec = spec or LogSpec()
    frame = read_table(path, spec.sep, spec.names, text_columns=(spec.user, spec.item))
    if frame.empty:
        raise ValueError(f"interaction log {path} has no rows")
    users, user_ids = _ids(_column(frame, spec.user, "user", path))
    items, item_ids = _ids(_column(frame, spec.item, "item", path))
    if spec.rating or spec.weight:
        value = _numbers(frame, spec.rating or spec.weight, "rating" if spec.rating else "weight", path)
    else:
        value = pd.Series(1.0, index=frame.index)
    inter = pd.DataFrame({"user_id": users, "item_id": items, "ts": _times(frame, spec, path).to_numpy(),
                          "rating": value.to_numpy(), "_row": np.arange(len(frame))})
    grouped = inter.groupby(["user_id", "item_id"], sort=False)
    latest = inter.sort_values(["ts", "_row"], kind="stable").groupby(["user_id", "item_id"], sort=False)["rating"]
    inter = pd.DataFrame({"ts": grouped["ts"].min(), "_row": grouped["_row"].min(),
                          "rating": grouped["rating"].sum() if spec.weight else latest.last()}
                         ).reset_index().sort_values("_row", kind="stable").drop(columns="_row")
    item_frame, categories = _items(spec, inter["item_id"].to_numpy(), item_ids)
    user_frame = pd.DataFrame({"user_id": np.unique(inter["user_id"]), "created_at": pd.NaT,
                               "country": spec.country, "gender": "U", "age": pd.NA, "occupation": None})
    user_frame["age"] = user_frame["age"].astype("Int32")
    threshold = spec.save_threshold if spec.save_threshold is not None else (4.0 if spec.rating else -np.inf)
    log = InteractionLog(users=user_frame, items=item_frame, interactions=inter.reset_index(drop=True),
                         categories=categories, source="log")
    return ReadLog(log, spec.mode, float(threshold), len(frame), user_ids, item_ids)


def load_log(path: str | Path, landing: str | Path, spec: LogSpec | None = None,
             max_partitions: int = 0, negatives: int | None = None) -> LandingSummary:
    """Read the log at ``path`` (:func:`read_log`) and land it (:func:`~pinrec.jobs.ingest.datasets.to_landing`,
    no empty partitions, at most ``max_partitions`` per table when > 0, ``negatives`` sampled negative
    impressions per interaction, None: 1 for a log whose every interaction is a save, else 0), with the
    dataset record (:mod:`pinrec.jobs.ingest.dataset_info`) saying how its time was given."""
    read = read_log(path, spec)
    summary = to_landing(read.log, landing, read.save_threshold, max_partitions, empty_partitions=False,
                         negatives=negatives)
    write_dataset_info(landing, {
        "kind": "log", "path": str(path), "timestamps": read.timestamps, "rows": read.rows,
        "users": len(read.log.users), "items": len(read.log.items), "interactions": len(read.log.interactions),
        # null: every interaction is a save (-inf is no JSON a strict parser reads)
        "save_threshold": read.save_threshold if np.isfinite(read.save_threshold) else None,
        "negative_impressions": summary.negatives,
        "partitions": len(summary.rows["impressions"]),
        "max_partitions": max_partitions, "partition": summary.partition}, read.user_ids, read.item_ids)
    return summary


def land_configured(ds, landing: str | Path) -> LandingSummary:
    """Land the dataset a :class:`~pinrec.jobs.config.DatasetConfig` ``ds`` names (``kind``
    ``movielens-100k`` or ``log``, not ``synthetic``) into ``landing``: what ``pinrec load-dataset`` and
    the demo's landing step both run."""
    if ds.kind == "synthetic" or not ds.path:
        raise ValueError(f"dataset.kind {ds.kind!r} with dataset.path {ds.path!r}: nothing to load "
                         "(movielens-100k or log, with a path)")
    if ds.kind != "log":
        return load_dataset(ds.kind, ds.path, landing, ds.max_partitions, ds.negative_impressions)
    spec = LogSpec(user=ds.user_column, item=ds.item_column, timestamp=ds.timestamp_column, rating=ds.rating_column,
                   weight=ds.weight_column, timestamps=ds.timestamps, timestamp_unit=ds.timestamp_unit, sep=ds.sep,
                   names=ds.names, save_threshold=ds.save_threshold, country=ds.country, items=ds.items,
                   item_key=ds.item_key, category=ds.category_column, labels=ds.labels_column,
                   label_sep=ds.label_sep, title=ds.title_column, items_sep=ds.items_sep,
                   items_names=ds.items_names)
    return load_log(ds.path, landing, spec, ds.max_partitions, ds.negative_impressions)
