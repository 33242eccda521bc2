"""An interaction log's item metadata (:mod:`pinrec.jobs.ingest.log_reader`): the pins' categories, titles
and content vectors.

Item metadata (``items``): one row per item id (``item_key``, default the log's item column);
``category`` -> the pin category (missing -> ``"unknown"``), ``labels`` (a multi-label column joined by
``label_sep``) -> the pin's ``content_embedding`` (multi-hot over the sorted vocabulary of the
:data:`MAX_LABELS` most frequent labels) and, when
there is no ``category``, the category (the item's first label); ``title`` -> the pin title. Items
of the table that never occur in the log are kept (catalogue pins without interactions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .log_columns import _column, _int_ids
from .log_files import read_table
from .log_spec import LogSpec

#: the multi-hot content vector covers at most this many labels (the most frequent)
MAX_LABELS = 256


def _items(spec: LogSpec, item_ids: np.ndarray, mapping: pd.DataFrame | None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The items frame over every logged item and every item of the metadata table."""
    meta = pd.DataFrame({"item_id": np.unique(item_ids)})
    if spec.items is None:
        return meta.assign(category="unknown", title=None, created_at=pd.NaT), ("unknown",)
    table = read_table(spec.items, spec.items_sep, spec.items_names, text_columns=(spec.item_key or spec.item,))
    key = _column(table, spec.item_key or spec.item, "item key", spec.items)
    if mapping is None:
        ids = _int_ids(key)
        if ids is None:
            raise ValueError(f"{spec.items}: item key {key.name!r} is not a plain integer like the log's item ids")
    else:  # the log's ids were strings: map the table's keys the same way, new keys after them
        lookup = pd.Series(mapping["id"].to_numpy(), index=mapping["value"])
        ids = lookup.reindex(key.astype(str)).to_numpy()
        new = np.isnan(ids)
        ids[new] = len(mapping) + pd.factorize(key.astype(str)[new], sort=True)[0] + 1
        ids = ids.astype(np.int64)
    if pd.Series(ids).duplicated().any():
        raise ValueError(f"{spec.items}: the item key {key.name!r} repeats an item")
    for name, role in ((spec.labels, "labels"), (spec.title, "title"), (spec.category, "category")):
        if name:  # checked on the file's own columns, before item_id joins them
            _column(table, name, role, spec.items, required=False)
    table = table.assign(item_id=ids)
    meta = meta.merge(table, on="item_id", how="outer")
    labels = None
    if spec.labels:
        labels = meta[spec.labels].fillna("").astype(str).str.split(spec.label_sep).map(
            lambda xs: [x.strip() for x in xs if x.strip()])
    if spec.category:
        category = meta[spec.category].fillna("unknown").astype(str).str.strip().replace("", "unknown")
    elif labels is not None:
        category = labels.map(lambda xs: xs[0] if xs else "unknown")
    else:
        category = pd.Series("unknown", index=meta.index)
    out = pd.DataFrame({"item_id": meta["item_id"].astype(np.int64), "category": category,
                        "title": meta[spec.title].astype(object).where(meta[spec.title].notna(), None)
                        if spec.title else None, "created_at": pd.NaT})
    if labels is not None:
        out["content_embedding"] = _multi_hot(labels, MAX_LABELS)
    return out, tuple(sorted(set(out["category"]) | {"unknown"}))


def _multi_hot(labels: pd.Series, most: int) -> list:
    """Each item's labels as a multi-hot list over the ``most`` most frequent labels (ties: sorted by
    name; the vocabulary in sorted order), None for an item with none of them. A brand or tag column
    with thousands of values would otherwise give every pin a vector that long."""
    flat = labels.explode().dropna()
    counts = flat.value_counts()
    keep = sorted(counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:most])
    column = {x: i for i, x in enumerate(keep)}
    flat = flat[flat.isin(column)]
    hot = np.zeros((len(labels), len(keep)), np.float32)
    hot[labels.index.get_indexer(flat.index), flat.map(column).to_numpy(np.int64)] = 1.0
    return [v.tolist() if v.any() else None for v in hot]
