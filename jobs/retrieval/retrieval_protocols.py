"""Retrieval protocols: leave-one-out with sampled negatives, same-board pairs, latent agreement.

* **user-item, leave-one-out** (He et al., "Neural Collaborative Filtering", WWW 2017): on an
  interaction log ``(user_id, pin_id, ts)``, de-duplicated on (user, pin) keeping the first
  interaction, each user's latest pin is held out and ranked against ``num_negatives`` pins drawn
  uniformly without replacement from the catalogue minus every pin the user interacted with, by
  ``numpy.random.default_rng([seed, user_id])`` (a user's negatives do not depend on the other
  users). Ties on ``ts`` are broken by a seeded hash of (user, pin), not by id: 44 % of the
  MovieLens 100K users rated several movies in their last second, and there the Spearman
  correlation of movie id and rating count is -0.81, so "the larger id" would hold out obscure
  movies. Users with one pin stay in training but are not evaluated. HR@K, NDCG@K, MRR
  (:mod:`pinrec.models.retrieval_metrics`).
* **item-item, same board**: on ``graph_edges`` (:mod:`pinrec.jobs.graph.graph`), each ``eval`` edge (board b,
  pin t) is a query: q = b's latest ``train`` pin (ties: the larger pin id), target t, ranked by
  cosine against every pin of the catalogue (the edges' pins plus ``pins``) except b's ``train``
  pins; boards with no ``train`` pin give no query.
* **latent agreement** (synthetic world): Spearman correlation of embedding cosine and true latent
  cosine over random pairs of distinct pins, and overlap@K of the two K-nearest-neighbour lists of
  random query pins (self excluded).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pinrec.models.retrieval_metrics import overlap_at_k, ranks_from_scores

from .baselines import ItemEmbeddings, check_log


@dataclass(frozen=True)
class LeaveOneOut:
    """``train`` (user_id, pin_id, ts); ``test``: one row per evaluated user (user_id, pin_id, ts,
    negatives: list of pin ids, not necessarily as many for every user), sorted by user;
    ``catalogue``: (N,) sorted pin ids; ``notes``: what was dropped from given negatives."""

    train: pd.DataFrame
    test: pd.DataFrame
    catalogue: np.ndarray
    notes: dict = field(default_factory=dict)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """users (U,) and candidates (U, 1 + most negatives), the held-out pin first; a user with
        fewer negatives has the rest padded with its held-out pin (see :meth:`padding`)."""
        width = max((len(n) for n in self.test["negatives"]), default=0)
        held = self.test["pin_id"].to_numpy(np.int64)
        out = np.repeat(held[:, None], 1 + width, axis=1)
        for row, neg in enumerate(self.test["negatives"]):
            out[row, 1:1 + len(neg)] = neg
        return self.test["user_id"].to_numpy(), out

    def padding(self) -> np.ndarray:
        """(U, 1 + most negatives) bool: True where :meth:`candidates` holds padding (score it -inf)."""
        lengths = self.test["negatives"].map(len).to_numpy()
        width = max(lengths.max(initial=0), 0)
        return np.arange(1 + width)[None, :] > lengths[:, None]


def _given(log: pd.DataFrame, negatives: pd.DataFrame, catalogue: np.ndarray,
           seen: dict) -> tuple[pd.DataFrame, dict]:
    """Rows of ``log`` held out by ``negatives`` (user_id, pin_id, negatives) with the negatives
    cleaned: repeats merged, the user's own pins dropped (counted in the notes), unknown pins an error."""
    given = negatives.assign(user_id=negatives["user_id"].astype("int64"), pin_id=negatives["pin_id"].astype("int64"))
    if given["user_id"].duplicated().any():
        raise ValueError(f"given negatives hold several lines for user(s) "
                         f"{given.loc[given['user_id'].duplicated(), 'user_id'].head(5).tolist()}")
    rows = log.reset_index().merge(given[["user_id", "pin_id"]], on=["user_id", "pin_id"], how="inner")
    if len(rows) != len(given):
        missing = given.merge(rows[["user_id", "pin_id"]], how="left", indicator=True)
        bad = missing[missing["_merge"] == "left_only"][["user_id", "pin_id"]].head(3).values.tolist()
        raise ValueError(f"given negatives do not match this log: {len(given) - len(rows)} held-out (user, pin) "
                         f"pair(s) are not in it, e.g. {bad} (another log, split or id numbering?)")
    few = rows["user_id"].map(log["user_id"].value_counts()) < 2
    notes = {"negatives_users": len(given), "negatives_users_skipped_one_pin": int(few.sum())}
    rows = rows[~few]
    cleaned, own, total = [], 0, 0
    lists = given.set_index("user_id")["negatives"]
    for user in rows["user_id"]:
        neg = np.unique(np.asarray(list(lists[user]), dtype=np.int64))
        total += len(neg)
        unknown = np.setdiff1d(neg, catalogue, assume_unique=True)
        if len(unknown):
            raise ValueError(f"given negatives of user {user} name {len(unknown)} pin(s) not in the catalogue, "
                             f"e.g. {unknown[:5].tolist()} (another id numbering?)")
        keep = ~np.isin(neg, seen[user])
        own += int((~keep).sum())
        cleaned.append(neg[keep].tolist())
    notes |= {"negatives_given": total, "negatives_dropped_own_pins": own}
    test = log.loc[rows["index"].to_numpy()].assign(negatives=cleaned)
    return test.sort_values("user_id", ignore_index=False), notes


def leave_one_out(log: pd.DataFrame, num_negatives: int = 99, seed: int = 7, catalogue: np.ndarray | None = None,
                  negatives: pd.DataFrame | None = None, also_seen: pd.DataFrame | None = None) -> LeaveOneOut:
    """The NCF split of ``log`` (module docstring) over ``catalogue`` (default: the logged pins).

    ``negatives`` (user_id, pin_id, negatives: any number per user), as stored by
    :meth:`pinrec.jobs.retrieval.retrieval_eval.RetrievalReport.write` or read from an NCF
    ``test.negative`` file (:func:`pinrec.jobs.retrieval.retrieval_data.read_ncf_negatives`), replaces
    the sampling: each listed user's ``pin_id`` is held out (it must be in the log: ValueError
    otherwise) and ranked against its negatives; negatives that are the user's own pins are dropped
    and counted in ``notes`` (the NCF ML-1M file lists 156 users' own held-out item), a pin outside the
    catalogue is a ValueError, users with a single pin are skipped (counted). ``also_seen`` (user_id,
    pin_id): more pins each user has, never drawn as that user's negatives (the tuning split's users'
    held-out test pins, which its log no longer holds).
    """
    log = check_log(log)
    hashed = [pd.util.hash_array(np.asarray(v, dtype=np.int64)) for v in (log["user_id"], log["pin_id"], [seed])]
    tie = pd.util.hash_array(hashed[0] ^ hashed[1] ^ hashed[2])
    log = (log.assign(_tie=tie).sort_values(["ts", "_tie"], kind="stable")
           .drop_duplicates(["user_id", "pin_id"]).drop(columns="_tie"))
    items = np.unique(log["pin_id"].to_numpy())
    catalogue = items if catalogue is None else np.unique(np.asarray(catalogue, dtype=np.int64))
    if len(stray := np.setdiff1d(items, catalogue)):
        raise ValueError(f"{len(stray)} logged pin(s) are not in the catalogue, e.g. {stray[:5].tolist()}")
    seen_log = log if also_seen is None else pd.concat([log[["user_id", "pin_id"]], also_seen[["user_id", "pin_id"]]])
    seen = {user: np.unique(pins.to_numpy()) for user, pins in seen_log.groupby("user_id")["pin_id"]}
    notes: dict = {}
    if negatives is None:
        counts = log["user_id"].map(log["user_id"].value_counts())
        last = log[counts >= 2].groupby("user_id").tail(1)
        test = last.sort_values("user_id", ignore_index=False)
        if test.empty:
            raise ValueError("no user has two or more distinct pins: nothing to hold out")
        # not evaluated: nothing would be left to learn them from (the report says how many)
        notes["users_skipped_one_pin"] = int(log.loc[counts < 2, "user_id"].nunique())
        if len(catalogue) <= num_negatives:
            raise ValueError(f"the catalogue holds {len(catalogue)} pins: {num_negatives} negatives and the held-out "
                             "pin do not fit; lower retrieval_eval.num_negatives")
        drawn, short = [], []
        free = np.ones(len(catalogue), bool)  # the catalogue minus one user's pins, as setdiff1d gave, 15x faster
        for user in test["user_id"]:
            at = np.searchsorted(catalogue, seen[user]).clip(max=len(catalogue) - 1)
            at = at[catalogue[at] == seen[user]]
            free[at] = False
            pool = catalogue[free]
            free[at] = True
            if len(pool) < num_negatives:  # a user who met (almost) every pin: skipped, counted, not fatal
                short.append(user)
                drawn.append(None)
                continue
            drawn.append(np.sort(np.random.default_rng([seed, int(user)]).choice(pool, num_negatives, replace=False)))
        test = test.assign(negatives=[d.tolist() if d is not None else None for d in drawn])
        if short:
            test = test[test["negatives"].notna()]
            notes["users_without_enough_negatives"] = len(short)
            if test.empty:
                raise ValueError(f"no user has {num_negatives} pins they never interacted with: lower "
                                 "retrieval_eval.num_negatives")
    else:
        test, notes = _given(log, negatives, catalogue, seen)
        if test.empty:
            raise ValueError("the given negatives leave no user to evaluate")
    held = log.index.isin(test.index)
    return LeaveOneOut(log[~held].reset_index(drop=True), test.reset_index(drop=True), catalogue, notes)


#: users scored per call: a scorer builds (users, candidates) arrays (EASE a dense (users, items) one)
SCORE_BATCH = 4096


def leave_one_out_ranks(split: LeaveOneOut, scorer) -> np.ndarray:
    """(U,) rank of each test user's held-out pin among its candidates (padding at -inf), scored
    :data:`SCORE_BATCH` users at a time so that memory does not grow with the number of users."""
    users, candidates = split.candidates()
    padding = split.padding()
    return np.concatenate([ranks_from_scores(np.where(padding[s:s + SCORE_BATCH], -np.inf,
                                                      scorer.score(users[s:s + SCORE_BATCH],
                                                                   candidates[s:s + SCORE_BATCH])))
                           for s in range(0, len(users), SCORE_BATCH)])


def same_board_pairs(edges: pd.DataFrame) -> pd.DataFrame:
    """``graph_edges`` rows (pin_id, board_id, saved_at, split) -> one row per eval edge with a
    query: board_id, query, target, exclude (the board's train pins, a list)."""
    train = edges[edges["split"] == "train"].sort_values(["board_id", "saved_at", "pin_id"], kind="stable")
    board = train.groupby("board_id").agg(query=("pin_id", "last"), exclude=("pin_id", list))
    pairs = edges[edges["split"] == "eval"].join(board, on="board_id", how="inner")
    return (pairs.rename(columns={"pin_id": "target"})[["board_id", "query", "target", "exclude"]]
            .sort_values(["board_id", "target"], ignore_index=True))


def item_to_item_ranks(pairs: pd.DataFrame, embeddings: ItemEmbeddings, catalogue: np.ndarray,
                       batch_size: int = 1024) -> np.ndarray:
    """(Q,) ranks of each pair's target among ``catalogue`` by cosine to its query, excluded pins
    and pins without an embedding at ``-inf``."""
    catalogue = np.unique(np.asarray(catalogue, dtype=np.int64))
    embeddings = embeddings.normalized()
    emb, found = embeddings.lookup(catalogue)
    col = {pin: i for i, pin in enumerate(catalogue.tolist())}
    ranks = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs.iloc[start:start + batch_size]
        query, _ = embeddings.lookup(chunk["query"].to_numpy())
        scores = np.where(found, query @ emb.T, -np.inf).astype(np.float64)
        rows = np.repeat(np.arange(len(chunk)), chunk["exclude"].map(len).to_numpy())
        scores[rows, [col[p] for ex in chunk["exclude"] for p in ex]] = -np.inf
        ranks.append(ranks_from_scores(scores, np.array([col[t] for t in chunk["target"]])))
    return np.concatenate(ranks) if ranks else np.empty(0, np.int64)


def latent_agreement(embeddings: ItemEmbeddings, truth: ItemEmbeddings, num_pairs: int = 20_000,
                     num_queries: int = 500, k: int = 10, seed: int = 7) -> dict[str, float]:
    """Spearman rho of embedding vs true cosine over random pin pairs; overlap@K of neighbours."""
    from scipy.stats import spearmanr

    ids = np.intersect1d(embeddings.ids, truth.ids)
    if len(ids) <= k:
        raise ValueError(f"only {len(ids)} pins have both an embedding and a true latent; need more than k={k}")
    a, b = embeddings.normalized().lookup(ids)[0], truth.normalized().lookup(ids)[0]
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(ids), (2, num_pairs))
    keep = i != j
    rho = spearmanr((a[i] * a[j]).sum(1)[keep], (b[i] * b[j]).sum(1)[keep]).statistic
    queries = rng.choice(len(ids), min(num_queries, len(ids)), replace=False)

    def top(x: np.ndarray) -> np.ndarray:
        sim = x[queries] @ x.T
        sim[np.arange(len(queries)), queries] = -np.inf
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return {"spearman": float(rho), f"overlap@{k}": overlap_at_k(top(a), top(b))}
