"""The candidate channels a bundle can serve, opened once per bundle.

What each channel needs: ``ann`` the PinSage embeddings (``extra/pin_embeddings.npy``; a request's
``query=`` works without), ``two_tower`` the two-tower files and the embeddings, ``cf`` the ALS
factors (:data:`pinrec.export.serving.cf_channel.FILES`), ``category`` and ``trending`` a numeric
``recommend.trending_by`` column in the snapshot's pin view; ``fresh`` nothing. :func:`missing_channels`
says what a bundle lacks, :func:`resolve_channels` turns ``recommend.channels`` into the channels
served, :func:`cold_start` orders the fresh and trending pins once. Base install only.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .bundle_extras import EMBEDDINGS_FILE, extra_path
from .candidates import CHANNELS, ColdStart, PinCatalog
from .cf_channel import FILES as CF_FILES
from .cf_channel import CfChannel
from .recommend_config import RecommendConfig
from .shards import ShardedIndex
from .snapshot_meta import to_micros
from .two_tower import FILES as TWO_TOWER_FILES
from .two_tower import TwoTowerChannel

__all__ = ["cold_start", "missing_channels", "open_cf", "open_two_tower", "resolve_channels"]


def open_two_tower(bundle, pins: PinCatalog, embeddings: np.ndarray | None, threads: int) -> TwoTowerChannel | None:
    """The two-tower channel when the bundle carries its files and PinSage embeddings (None otherwise)."""
    extras = {os.path.basename(e.path): os.path.join(bundle.root, e.path) for e in bundle.manifest.of_role("extra")}
    if embeddings is None or not all(f in extras for f in TWO_TOWER_FILES):
        return None
    return TwoTowerChannel(extras, pins, embeddings, lambda p: faiss.read_index(p, faiss.IO_FLAG_MMAP_IFC),
                           ShardedIndex, max(threads, 1))


def open_cf(bundle) -> CfChannel | None:
    """The ``cf`` channel when the bundle carries every ALS factor file (None otherwise)."""
    paths = [extra_path(bundle, name) for name in CF_FILES]
    return CfChannel(*paths) if all(paths) else None


def missing_channels(bundle, config: RecommendConfig, snapshot, embeddings: np.ndarray | None,
                     two_tower: TwoTowerChannel | None, cf: CfChannel | None) -> dict[str, str]:
    """Channel -> what the bundle lacks to serve it (channels it can serve are absent)."""
    missing = {}
    if embeddings is None:
        missing["ann"] = (f"bundle {bundle.name}/{bundle.version} carries no extra/{EMBEDDINGS_FILE} "
                          "(pass query= to recommend instead)")
    if two_tower is None:
        lacking = [f for f in TWO_TOWER_FILES if extra_path(bundle, f) is None] or [EMBEDDINGS_FILE]
        missing["two_tower"] = f"bundle {bundle.name}/{bundle.version} carries no extra/{lacking[0]}"
    if cf is None:
        missing["cf"] = (f"bundle {bundle.name}/{bundle.version} carries no "
                         + ", ".join(f"extra/{n}" for n in CF_FILES if extra_path(bundle, n) is None))
    view = snapshot.view("pin") if "pin" in snapshot.views else None
    if view is None or view.meta.entities != ("pin_id",) or config.trending_by not in view.values.column_names:
        missing["category"] = missing["trending"] = \
            f"the feature snapshot's pin view has no {config.trending_by!r} (recommend.trending_by)"
    elif not pa.types.is_integer(t := view.values.schema.field(config.trending_by).type) \
            and not pa.types.is_floating(t):
        missing["category"] = missing["trending"] = \
            f"recommend.trending_by {config.trending_by!r} is {t}, not a number to rank pins by"
    return missing


def resolve_channels(channels: tuple[str, ...] | None, missing: Mapping[str, str]) -> tuple[str, ...]:
    """``recommend.channels``, or every channel the bundle can serve when it is None."""
    if channels is None:
        return tuple(c for c in CHANNELS if c not in missing)
    bad = [c for c in channels if c in missing]
    if bad:
        raise ValueError(f"recommend.channels names {bad}, which this bundle cannot serve: "
                         + "; ".join(f"{c}: {missing[c]}" for c in bad)
                         + " (drop them, or leave recommend.channels unset to serve what the bundle can)")
    return tuple(channels)


def cold_start(snapshot, channels: tuple[str, ...], pins: PinCatalog, config: RecommendConfig) -> ColdStart:
    """The fresh and trending orders of the bundle's pins, as of the snapshot's earliest cut-off
    (trending pins ranked by ``recommend.trending_by`` only when a trending or category channel serves)."""
    cutoff_us = min(int(to_micros(snapshot.meta(v).cutoff)[0]) for v in snapshot.views)
    rows = score = None
    if {"trending", "category"} & set(channels):
        view = snapshot.view("pin")
        score = pc.cast(view.values.column(config.trending_by), pa.float64()).to_numpy(zero_copy_only=False)
        rows, found = pins.rows(view.keys)
        rows, score = rows[found], score[found]
    return ColdStart(pins.eligible, pins.created_us, cutoff_us, config.fresh_candidates,
                     config.trending_candidates, pins.cat, rows, score)
