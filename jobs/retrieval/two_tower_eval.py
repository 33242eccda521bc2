"""The two-tower model as a model of retrieval evaluation: trained on the training log of the split evaluated.

:func:`pinrec.jobs.retrieval.retrieval_eval.evaluate_retrieval` takes, besides item embeddings, *scorer
sources*: functions of ``(training log, item embeddings the call trained on the same log)``
returning a :class:`~pinrec.jobs.retrieval.baselines.Scorer`. :class:`TwoTowerLogModel` is one. Called
with a split's training log ``(user_id, pin_id, ts)`` (in time order, as the leave-one-out split
leaves it) it

1. builds the retrieval form of the two-tower pairs (:func:`sequence_pairs`): for each user's
   j-th training item (j >= 1) one pair (history, item), the history being the user's ``L`` items
   before it, newest first: the task the protocol asks (the next item from the ones before);
2. gives every pin of the catalogue its inputs (:func:`pin_table`): a learned id embedding
   (categorical: row + 1), dense features from the training log only (content vector and a
   ``has_content`` flag when there is content, ``log1p`` of the pin's distinct training users;
   standardised), and as the vectors the user tower pools, the PinSage embeddings of the same
   split when PinSage ran in the call (``embedding`` names the model), else those dense features;
   the user tower also reads a learned user-id embedding and ``log1p`` of the history length;
3. holds out each user's last pair (users with >= 2 pairs) as validation, trains one model per
   temperature of ``two_tower.temperatures`` (:func:`pinrec.models.two_tower_trainer.fit_two_tower`:
   in-batch softmax with logQ correction) and keeps the best validation recall@``eval_k``; then
   retrains at that temperature on every pair (same seed and epochs), so that the model has seen
   the user's latest training item as a target, as the baselines have;
4. scores a user's candidates by ``<user tower(latest L training items), pin tower(pin)>``.

Nothing from the held-out interactions enters the pairs, the features or the temperature choice.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .baselines import ItemEmbeddings, check_log


def sequence_pairs(train: pd.DataFrame, pin_ids: np.ndarray, length: int) -> pd.DataFrame:
    """One row per (user, j-th training item), j >= 1, ``train`` read in its row order (time order):
    ``user_id``, ``target`` (row of the item in ``pin_ids``, sorted unique), ``history`` ((L,)
    int64 rows of the user's ``length`` items before it, newest first, -1 padding), ``position`` (j)
    and ``last`` (True on the user's last pair). ValueError for a pin outside ``pin_ids``."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    log = check_log(train).drop_duplicates(["user_id", "pin_id"])
    rows = _rows(log["pin_id"].to_numpy(), pin_ids)
    out = {"user_id": [], "target": [], "history": [], "position": [], "last": []}
    for user, idx in log.groupby("user_id", sort=True).indices.items():
        items = rows[np.sort(idx)]
        for j in range(1, len(items)):
            before = items[max(0, j - length):j][::-1]
            out["user_id"].append(user)
            out["target"].append(items[j])
            out["history"].append(np.concatenate([before, np.full(length - len(before), -1, np.int64)]))
            out["position"].append(j)
            out["last"].append(j == len(items) - 1)
    return pd.DataFrame(out)


def latest_history(train: pd.DataFrame, pin_ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(users (U,), history (U, L))``: each user's latest ``length`` training items as rows of
    ``pin_ids``, newest first, -1 padding (what the user tower reads when scoring)."""
    log = check_log(train).drop_duplicates(["user_id", "pin_id"])
    rows = _rows(log["pin_id"].to_numpy(), pin_ids)
    users, lists = [], []
    for user, idx in log.groupby("user_id", sort=True).indices.items():
        items = rows[np.sort(idx)][-length:][::-1]
        users.append(user)
        lists.append(np.concatenate([items, np.full(length - len(items), -1, np.int64)]))
    return np.asarray(users, np.int64), np.stack(lists) if lists else np.empty((0, length), np.int64)


def _rows(pins: np.ndarray, pin_ids: np.ndarray) -> np.ndarray:
    col = np.searchsorted(pin_ids, pins).clip(0, max(len(pin_ids) - 1, 0))
    if len(pins) and (len(pin_ids) == 0 or (pin_ids[col] != pins).any()):
        stray = np.setdiff1d(pins, pin_ids)
        raise ValueError(f"{len(stray)} logged pin(s) are not in the catalogue, e.g. {stray[:5].tolist()}")
    return col.astype(np.int64)


def pin_features(train: pd.DataFrame, pin_ids: np.ndarray, content: ItemEmbeddings | None = None) -> np.ndarray:
    """(N, F) float32 dense features of ``pin_ids`` from the training log only: ``content`` vectors
    and a ``has_content`` flag (when given), then ``log1p`` of the pin's distinct training users;
    each column standardised (a constant column becomes 0)."""
    log = check_log(train).drop_duplicates(["user_id", "pin_id"])
    users = log["pin_id"].value_counts().reindex(pin_ids, fill_value=0).to_numpy(np.float64)
    columns = [np.log1p(users)[:, None]]
    if content is not None:
        vectors, found = ItemEmbeddings.of(content).lookup(pin_ids)
        columns = [vectors.astype(np.float64), found[:, None].astype(np.float64), *columns]
    x = np.concatenate(columns, axis=1)
    std = x.std(0)
    return ((x - x.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


class TwoTowerScorer:
    """Scores candidates with a trained two-tower model (module docstring, step 4); ``notes``:
    the temperatures' validation recall, the chosen one, the pair counts and what the towers pooled."""

    def __init__(self, trainer, pin_ids: np.ndarray, users: np.ndarray, user_vectors: np.ndarray,
                 notes: dict) -> None:
        import torch

        self.pin_ids, self.users, self.user_vectors, self.notes = pin_ids, users, user_vectors, notes
        self.pin_vectors = trainer.pin_embeddings().to(torch.float32).numpy()

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """users (U,), candidates (U, C) pin ids -> (U, C); a pin outside the catalogue or a user
        without training items scores ``-inf``."""
        urow = np.searchsorted(self.users, users).clip(0, max(len(self.users) - 1, 0))
        known = self.users[urow] == users
        col = np.searchsorted(self.pin_ids, candidates).clip(0, len(self.pin_ids) - 1)
        found = self.pin_ids[col] == candidates
        scores = np.einsum("ud,ucd->uc", self.user_vectors[urow], self.pin_vectors[col])
        return np.where(found & known[:, None], scores, -np.inf)


@dataclass
class TwoTowerLogModel:
    """A scorer source: ``model(train, embedded)`` trains the two-tower on ``train`` (module
    docstring) and returns a :class:`TwoTowerScorer`.

    Args:
        cfg: :class:`pinrec.models.config.TwoTowerConfig` (``list_length`` is L; ``temperatures``,
            ``epochs``, ``batch_size``, ``lr``, ``logq``, ``eval_k``, ``seed``, ``device`` as in the pipeline).
        content: content vectors by pin id (pin features), or None.
        pins: catalogue pins beyond the logged ones.
        embedding: the name of the embedding model whose vectors the towers read when the same call
            trained it (default ``"pinsage"``); without it, the pins' dense features.
        threads: torch CPU threads while training (0: leave torch's setting).
    """

    cfg: object
    content: ItemEmbeddings | None = None
    pins: np.ndarray | None = None
    embedding: str = "pinsage"
    threads: int = 0

    def __call__(self, train: pd.DataFrame, embedded: Mapping[str, ItemEmbeddings] | None = None) -> TwoTowerScorer:
        import torch

        from pinrec.models.two_tower_trainer import (
            PinTable,
            TwoTowerTrainer,
            fit_two_tower,
        )

        cfg, train = self.cfg, check_log(train)
        parts = [train["pin_id"].to_numpy()] + [np.asarray(p, np.int64) for p in
                                                (self.pins, None if self.content is None else self.content.ids)
                                                if p is not None]
        pin_ids = np.unique(np.concatenate(parts))
        dense = pin_features(train, pin_ids, self.content)
        source = (embedded or {}).get(self.embedding)
        vectors = dense if source is None else ItemEmbeddings.of(source).lookup(pin_ids)[0]
        pairs = sequence_pairs(train, pin_ids, cfg.list_length)
        valid = pairs["last"] & (pairs["position"] > 1)  # the user keeps a training pair
        if not valid.any() or valid.all():
            raise ValueError(f"the training log gives {len(pairs)} pairs, {int(valid.sum())} for validation: "
                             "the two-tower needs users with three or more training items, and some training pairs")
        users = np.unique(train["user_id"].to_numpy())
        pins = PinTable(torch.arange(1, len(pin_ids) + 1).unsqueeze(1), torch.from_numpy(dense),
                        torch.from_numpy(np.ascontiguousarray(vectors, np.float32)))
        data = {name: self._data(pairs[mask], users, pins) for name, mask in
                (("train", ~valid), ("validation", valid), ("all", np.ones(len(pairs), bool)))}
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            cards = ([len(users) + 1], [len(pin_ids) + 1])
            fit = fit_two_tower(data["train"], data["validation"], pins, cfg, *cards)
            final = TwoTowerTrainer(data["all"], pins, cfg, fit.temperature, *cards)
            final.fit()
            score_users, history = latest_history(train, pin_ids, cfg.list_length)
            query = self._data(pd.DataFrame({"user_id": score_users, "target": 0, "history": list(history)}),
                               users, pins)
            user_vectors = final.user_embeddings(query).to(torch.float32).numpy()
            notes = {"temperature": fit.temperature,
                     "validation_recall": {f"{t:g}": round(r, 4) for t, r in fit.table.items()},
                     "pairs": len(pairs), "validation_pairs": int(valid.sum()),
                     "pooled": self.embedding if source is not None else "pin features"}
            return TwoTowerScorer(final, pin_ids, score_users, user_vectors, notes)
        finally:
            torch.set_num_threads(before)

    @staticmethod
    def _data(pairs: pd.DataFrame, users: np.ndarray, pins):
        """:class:`~pinrec.models.two_tower_trainer.TwoTowerData` of ``pairs`` (user-id categorical,
        log1p history length, the history as saves, no closeups; the pin's id and features)."""
        import torch

        from pinrec.models.two_tower_trainer import TwoTowerData

        history = torch.from_numpy(np.stack(pairs["history"].to_numpy()).astype(np.int64))
        target = torch.from_numpy(pairs["target"].to_numpy(np.int64))
        user_rows = torch.from_numpy(np.searchsorted(users, pairs["user_id"].to_numpy()) + 1).unsqueeze(1)
        size = torch.log1p((history >= 0).sum(1, keepdim=True).to(torch.float32))
        return TwoTowerData(user_rows, (size - 1.5) / 1.5, history, torch.full_like(history, -1), target,
                            pins.categorical[target], pins.dense[target])


def landing_two_tower(landing, cfg, threads: int = 0) -> TwoTowerLogModel:
    """A :class:`TwoTowerLogModel` whose content vectors and catalogue are the landed pins' (the
    ``pinrec eval-retrieval --two-tower`` model)."""
    from .retrieval_data import read_content_embeddings, read_landed_pins

    pins = read_landed_pins(landing)
    try:
        content = read_content_embeddings(landing, pins)
    except ValueError:
        content = None
    return TwoTowerLogModel(cfg, content, pins["pin_id"].dropna().astype("int64").to_numpy(), threads=threads)


__all__ = ["TwoTowerLogModel", "TwoTowerScorer", "landing_two_tower", "latest_history", "pin_features",
           "sequence_pairs"]
