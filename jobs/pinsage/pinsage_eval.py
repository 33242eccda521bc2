"""PinSage as a model of retrieval evaluation: trained on the training log of the split evaluated.

:func:`pinrec.jobs.retrieval.retrieval_eval.evaluate_retrieval` takes, for each embedding model, either fixed item
embeddings or a function of the training log; :class:`PinSageLogModel` is such a function. Called
with a split's training log ``(user_id, pin_id, ts)`` it

1. builds the bipartite graph of that log (:func:`log_graph`): pins on one side and the log's
   ``user_id`` as the "boards" on the other, one edge per distinct (user, pin). For the
   leave-one-out protocol the users themselves are the boards: every rating is an interaction of
   the protocol (the held-out item is any rated movie, not only a liked one), so the user x item
   graph carries exactly the signal being evaluated, whereas MovieLens "genre boards" of liked
   movies (:mod:`pinrec.jobs.ingest.datasets`) would drop every rating below 4 and split a user's taste by
   genre. For the item-item protocol the log's ``user_id`` already is the ``board_id`` (the
   ``train`` edges of ``graph_edges``), so there it is the Pin–Board graph itself;
2. computes pin features from the training log only (:func:`log_features`): the content vector
   (MovieLens: genre flags; synthetic world: the noisy content embedding; zeros plus a
   ``has_content`` flag when a pin has none) and ``log1p`` of the pin's number of distinct
   training users, standardised per column. Nothing from the held-out interactions enters the
   graph or the features;
3. trains :class:`pinrec.models.pinsage_trainer.PinSageTrainer` and returns the embeddings of every pin
   of the catalogue (pins without a training edge get theirs from their features alone).

The evaluation then takes the user as the (optionally recency-weighted) mean of their training
items' embeddings. ``id_embedding=True`` adds a learned per-pin vector: fine in these protocols,
where every scored pin that matters was seen in training (warm), not for cold-start pins.

:func:`validation_log` gives the log to tune on: the training part of the test split, so that
evaluating it holds out each user's second-latest pin and the test pins are never seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pinrec.jobs.retrieval.baselines import ItemEmbeddings, check_log


def log_graph(train: pd.DataFrame, pin_ids: np.ndarray):
    """The bipartite graph of ``train``: pin ``pin_ids[i]`` is node ``i`` (``pin_ids`` sorted,
    unique), board ``j`` the ``j``-th smallest ``user_id``. Returns a
    :class:`~pinrec.models.random_walk.PinBoardGraph` (duplicate (user, pin) rows give one edge, at the
    first ``ts``; each board lists its pins in time order, for ``pinsage.positives="sequence"``).
    Raises ``ValueError`` when a logged pin is not in ``pin_ids``."""
    import torch

    from pinrec.models.random_walk import PinBoardGraph

    log = check_log(train)
    pins = log["pin_id"].to_numpy()
    col = np.searchsorted(pin_ids, pins).clip(0, max(len(pin_ids) - 1, 0))
    if len(pins) and (len(pin_ids) == 0 or (pin_ids[col] != pins).any()):
        stray = np.setdiff1d(pins, pin_ids)
        raise ValueError(f"{len(stray)} logged pin(s) are not in pin_ids, e.g. {stray[:5].tolist()}")
    boards, row = np.unique(log["user_id"].to_numpy(), return_inverse=True)
    ns = pd.to_datetime(log["ts"], utc=True).astype("int64").to_numpy()
    return PinBoardGraph(torch.from_numpy(col.astype(np.int64)), torch.from_numpy(row.astype(np.int64)),
                         num_pins=len(pin_ids), num_boards=len(boards), edge_time=torch.from_numpy(ns))


def log_features(train: pd.DataFrame, pin_ids: np.ndarray, content: ItemEmbeddings | None = None):
    """(N, F) float32 features of ``pin_ids`` (sorted, unique): ``content`` vectors (zeros when a
    pin has none) and a ``has_content`` flag when ``content`` is given, then ``log1p`` of the
    pin's distinct training users; every column standardised (a constant column becomes 0)."""
    import torch

    log = check_log(train).drop_duplicates(["user_id", "pin_id"])
    users = log["pin_id"].value_counts().reindex(pin_ids, fill_value=0).to_numpy(dtype=np.float64)
    columns = [np.log1p(users)[:, None]]
    if content is not None:
        vectors, found = ItemEmbeddings.of(content).lookup(pin_ids)
        columns = [vectors.astype(np.float64), found[:, None].astype(np.float64)] + columns
    x = np.concatenate(columns, axis=1)
    std = x.std(0)
    x = (x - x.mean(0)) / np.where(std > 0, std, 1.0)
    return torch.from_numpy(x.astype(np.float32))


@dataclass
class PinSageLogModel:
    """A function of a training log returning PinSage item embeddings (module docstring).

    Args:
        cfg: the training configuration (:class:`pinrec.models.config.PinSageTrainConfig`).
        content: content vectors by pin id (the features' first columns), or None.
        pins: catalogue pins to embed beyond the logged ones (e.g. every landed pin).
        threads: torch CPU threads while training (0: leave torch's setting).

    ``history`` holds the per-epoch metrics of the last fit.
    """

    cfg: object
    content: ItemEmbeddings | None = None
    pins: np.ndarray | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        self.history: list[dict[str, float]] = []

    def pin_ids(self, train: pd.DataFrame) -> np.ndarray:
        """Sorted ids of every pin to embed: the logged pins, ``pins`` and the pins with content."""
        parts = [check_log(train)["pin_id"].to_numpy()]
        parts += [np.asarray(p, dtype=np.int64) for p in (self.pins, None if self.content is None
                                                              else ItemEmbeddings.of(self.content).ids) if p is not None]
        return np.unique(np.concatenate(parts))

    def __call__(self, train: pd.DataFrame) -> ItemEmbeddings:
        import torch

        from pinrec.models.pinsage_trainer import PinSageTrainer

        pin_ids = self.pin_ids(train)
        graph, features = log_graph(train, pin_ids), log_features(train, pin_ids, self.content)
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            trainer = PinSageTrainer(graph, features, self.cfg)
            self.history = trainer.fit()
            vectors = trainer.embed().numpy()
        finally:
            torch.set_num_threads(before)
        return ItemEmbeddings(pin_ids, vectors)


def validation_log(log: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """The training part of the leave-one-out test split of ``log`` (each user's latest pin
    removed): evaluating on it holds out the second-latest pin, for tuning without the test pins."""
    from pinrec.jobs.retrieval.retrieval_protocols import leave_one_out

    return leave_one_out(log, num_negatives=0, seed=seed).train


def landing_model(landing: str, cfg, threads: int = 0) -> PinSageLogModel:
    """A :class:`PinSageLogModel` whose content vectors and catalogue are the landed pins' (the
    ``pinrec eval-retrieval --pinsage`` model); pins without content just lack that column."""
    from pinrec.jobs.retrieval.retrieval_data import (
        read_content_embeddings,
        read_landed_pins,
    )

    pins = read_landed_pins(landing)
    try:
        content = read_content_embeddings(landing, pins)
    except ValueError:
        content = None
    return PinSageLogModel(cfg, content, pins["pin_id"].dropna().astype("int64").to_numpy(), threads)


__all__ = ["PinSageLogModel", "landing_model", "log_features", "log_graph", "validation_log"]
