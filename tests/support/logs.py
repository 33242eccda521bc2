"""Tiny interaction logs for the dataset and retrieval tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pinrec.jobs.ingest.datasets import InteractionLog
from pinrec.jobs.retrieval.baselines import ItemEmbeddings


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def tiny_log() -> InteractionLog:
    users = pd.DataFrame({
        "user_id": [1, 2, 3, 4],
        "created_at": [pd.NaT, ts("2020-12-01"), ts("2021-01-05"), pd.NaT],  # 3: later than first rating
        "country": ["US", "GB", "US", "FR"], "gender": ["F", "M", "U", None],
        "age": [30, 41, None, 22], "occupation": ["artist", None, "writer", "other"]})
    items = pd.DataFrame({
        "item_id": [10, 11, 12, 13, 14],
        "category": ["Action", "Comedy", "Action", "Drama", "Comedy"],
        "title": ["a", "b", "c", "d", "e"],
        "created_at": [ts("1999-01-01"), ts("2021-01-01 11:00"), ts("2000-06-01"), pd.NaT, ts("2021-01-03")]})
    interactions = pd.DataFrame([
        (1, 10, "2021-01-01 10:00", 5.0),
        (1, 11, "2021-01-01 10:00", 3.0),   # same ts as item 10: item id breaks the tie
        (1, 12, "2021-01-01 09:00", 4.0),   # exactly the threshold -> save
        (2, 10, "2021-01-01 23:59:59", 2.0),
        (1, 13, "2021-01-02 00:00:01", 4.5),
        (2, 11, "2021-01-02 08:00", 4.0),
        (3, 13, "2021-01-02 09:00", 1.0),
        (3, 12, "2021-01-04 12:00", 3.9),   # just below the threshold; no interaction on 01-03
    ], columns=["user_id", "item_id", "ts", "rating"]).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True, format="ISO8601"))
    return InteractionLog(users=users, items=items, interactions=interactions,
                          categories=("Action", "Comedy", "Drama"), source="t")


T0 = pd.Timestamp("2021-01-01", tz="UTC")


def log_of(rows) -> pd.DataFrame:
    """(user, pin, hours after T0) triples -> an interaction log."""
    frame = pd.DataFrame(rows, columns=["user_id", "pin_id", "h"])
    return frame.assign(ts=T0 + pd.to_timedelta(frame.pop("h"), unit="h"))


def clustered_log(groups: int = 12, per_group: int = 10, users_per_group: int = 2) -> pd.DataFrame:
    """User 1000 + u of group g saved all pins 100 + g * per_group + j, in a seeded order."""
    rng, rows = np.random.default_rng(0), []
    for g in range(groups):
        for u in range(users_per_group):
            user = 1000 + g * users_per_group + u
            rows += [(user, 100 + g * per_group + j, h) for h, j in enumerate(rng.permutation(per_group))]
    return log_of(rows)


def group_embeddings(groups: int = 12, per_group: int = 10) -> ItemEmbeddings:
    pins = 100 + np.arange(groups * per_group)
    return ItemEmbeddings(pins, np.eye(groups)[(pins - 100) // per_group])


def angles(theta: dict[int, float]) -> ItemEmbeddings:
    return ItemEmbeddings.of({p: np.array([np.cos(t), np.sin(t)]) for p, t in theta.items()})


EDGES = pd.DataFrame([(10, 1, 0, "train"), (11, 1, 1, "train"), (12, 1, 5, "eval"),
                      (20, 2, 0, "train"), (21, 2, 6, "eval"), (22, 2, 7, "eval"), (30, 3, 6, "eval")],
                     columns=["pin_id", "board_id", "h", "split"])


EDGES = EDGES.assign(saved_at=T0 + pd.to_timedelta(EDGES.pop("h"), unit="h"))


THETA = {10: 0.0, 11: 0.1, 12: 0.5, 20: 2.0, 21: 2.2, 22: 3.0, 30: 0.3}
