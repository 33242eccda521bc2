"""The funnel replay, pure: a day's users through the serving code, measured (``pinrec eval-funnel``).

For every user with a save on the replayed day, the :class:`~pinrec.export.serving.recommend.Recommender`
(built by ``make(config)`` on one bundle and a feature snapshot as of the day's start) is asked as
serving asks it, with ``context`` = the user's first impression of the day (surface, device, country)
and ``now`` = the snapshot's cut-off:

* ``candidates.<scope>``: ``Recommender.candidates()`` (merged, filtered, in priority order) for
  scope ``merged``, and for each channel the Recommender serves (``Recommender.channels``) the same
  call on a Recommender serving that channel alone (its own order): recall@n of the day's saves
  and closeups for each cut-off n, and with ``truth`` recall@n of the user's true top pins;
* ``served``: ``Recommender.recommend(k)``: HR@k, NDCG@k and recall@k of the saves (recall@k of
  closeups and truth too), the share of each channel (first channel) among all served pins, and the
  diversity guardrail: mean pairwise cosine of the served pins' PinSage embeddings, category entropy;
* ``prerank.<arm>`` (with ``prerank_keep`` > 0: what the pre-ranker costs): the served list's
  metrics above with the pre-ranker on (arm ``on``: ``recommend.prerank_keep = prerank_keep``) and
  off (arm ``off``: 0), and the recall of the candidates that reach the DCN ranker
  (``prerank.<arm>.to_ranker.recall.{saves,closeups}``, ``.truth_recall``; ``.size``: how many):
  the merged list whole when off, the pre-ranker's best ``prerank_keep`` of it when on (its scores,
  ties by smaller pin id, as :meth:`~pinrec.export.serving.prerank.Prerank.keep` cuts);
  ``prerank.change.<metric>``: the per-user difference on − off; ``prerank.keep``: the keep replayed.
  The arm equal to ``config`` is the ``served`` Recommender itself.

Metrics are means over users (users without a closeup are left out of the closeup recall) of
:mod:`pinrec.models.funnel_metrics`; ``ci95.<key>``: the half-width of the normal 95 % interval of
each mean over users (1.96 sd / sqrt(n), :func:`pinrec.jobs.retrieval.retrieval_eval.ci95`, as the
retrieval evaluation reports it; for ``prerank.change.*`` an interval of the paired difference;
left out below two users). Channel shares pool the served pins and have no interval.
:class:`FunnelReport.metrics` is the flat ``{key: value}`` the manifest stores
(``candidates.merged.recall@500.saves``, ``served.hr@50``, ``served.share.ann``, ``prerank.on.hr@50``,
``ci95.served.hr@50``...); the ``ci95.`` and ``prerank.`` prefixes keep the blessing gate's
higher-is-better keys (``candidates.merged.*``, ``served.hr@*``...) as they were.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinrec.jobs.retrieval.retrieval_eval import ci95
from pinrec.models.funnel_metrics import (
    category_entropy,
    channel_shares,
    hit_at,
    mean_of,
    mean_pairwise_cosine,
    ndcg_at,
    recall_at,
)

from .funnel_table import render


@dataclass(frozen=True)
class DayEvents:
    """A day's engagement by user: ``saves`` / ``closeups`` user -> pin ids; ``contexts`` user ->
    request context (surface, device, country) of their first impression that day."""

    saves: Mapping[int, frozenset[int]]
    closeups: Mapping[int, frozenset[int]] = field(default_factory=dict)
    contexts: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, user_ids: Sequence[int], pin_ids: Sequence[int], types: Sequence[str],
           contexts: Mapping[int, Mapping[str, Any]] | None = None) -> DayEvents:
        """From parallel columns of the day's actions (``types``: ``save``, ``closeup``, others ignored)."""
        by: dict[str, dict[int, set[int]]] = {"save": defaultdict(set), "closeup": defaultdict(set)}
        for u, p, t in zip(user_ids, pin_ids, types, strict=True):
            if t in by:
                by[t][int(u)].add(int(p))
        return cls({u: frozenset(p) for u, p in by["save"].items()},
                   {u: frozenset(p) for u, p in by["closeup"].items()}, dict(contexts or {}))


@dataclass(frozen=True)
class FunnelReport:
    """The replay of one day: ``metrics`` (module docstring), the channels replayed, and ``notes``
    (what the replay could see: the snapshot's cut-off, which models were trained before the day)."""

    day: str
    users: int
    k: int
    cutoffs: tuple[int, ...]
    channels: tuple[str, ...]
    metrics: dict[str, float]
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        """The table the demo and the CLI print (:func:`pinrec.jobs.funnel.funnel_table.render`)."""
        return render(self)


class NothingToReplay(ValueError):
    """No user saved a pin on the replayed day (a sparse log's day): there is no funnel to measure."""


def replay(make: Callable[[Any], Any], config: Any, events: DayEvents, *, day: str, k: int = 50,
           cutoffs: Sequence[int] = (50, 500, 1000), truth: Mapping[int, np.ndarray] | None = None,
           max_users: int = 0, notes: Sequence[str] = (), prerank_keep: int = 0) -> FunnelReport:
    """Replay ``events`` (module docstring). ``make(config)``: a Recommender on the bundle and the
    as-of features for a RecommendConfig; ``truth``: user -> their true top pins (synthetic world);
    ``max_users``: the first users by id only (0: all); ``prerank_keep`` > 0: replay the served list
    with the bundle's pre-ranker keeping that many candidates and without it (``prerank.*``)."""
    if k < 1 or not cutoffs or min(cutoffs) < 1 or prerank_keep < 0:
        raise ValueError(f"funnel: k and every cut-off must be >= 1 and prerank_keep >= 0, got k={k}, "
                         f"cutoffs={list(cutoffs)}, prerank_keep={prerank_keep}")
    users = sorted(events.saves)[: max_users or None]
    if not users:
        raise NothingToReplay(f"funnel: no user saved a pin on {day}: nothing to replay")
    rec = make(config)
    singles = {c: make(dataclasses.replace(config, channels=(c,))) for c in rec.channels}
    arms = _arms(make, config, rec, prerank_keep)
    values: dict[str, list[float]] = defaultdict(list)
    served_channels: list[str] = []
    for user in users:
        ctx = dict(events.contexts.get(user, {}))
        relevant = {"saves": events.saves[user], "closeups": events.closeups.get(user, frozenset())}
        top = truth.get(user) if truth is not None else None
        merged = np.zeros(0, np.int64)
        for scope, r in (("merged", rec), *singles.items()):
            ids = r.candidates(user, ctx).pin_ids
            merged = ids if scope == "merged" else merged
            for n in cutoffs:
                for what, rel in relevant.items():
                    if rel:
                        values[f"candidates.{scope}.recall@{n}.{what}"].append(recall_at(ids.tolist(), rel, n))
                if top is not None and len(top):
                    values[f"candidates.{scope}.truth_recall@{n}"].append(recall_at(ids.tolist(), top.tolist(), n))
        served = rec.recommend(user, ctx, k=k)
        _served(values, "served", served, relevant, top, k)
        served_channels += [r.channel for r in served]
        cos = mean_pairwise_cosine(_vectors(rec, [r.pin_id for r in served]))
        if cos is not None:
            values["served.cosine"].append(cos)
        if served:  # as the cosine: an empty list is no diversity figure (its HR/NDCG count it already)
            values["served.category_entropy"].append(category_entropy(r.category for r in served))
        for arm, r in arms.items():
            _served(values, f"prerank.{arm}", served if r is rec else r.recommend(user, ctx, k=k), relevant, top, k)
            ranked = _to_ranker(r, user, ctx, merged, prerank_keep if arm == "on" else 0)
            values[f"prerank.{arm}.to_ranker.size"].append(float(len(ranked)))
            for what, rel in relevant.items():
                if rel:
                    values[f"prerank.{arm}.to_ranker.recall.{what}"].append(recall_at(ranked, rel, len(ranked) or 1))
            if top is not None and len(top):
                values[f"prerank.{arm}.to_ranker.truth_recall"].append(recall_at(ranked, top.tolist(), len(ranked) or 1))
    for key in [key for key in values if key.startswith("prerank.on.")]:  # both arms measured the same users
        values["prerank.change." + key[len("prerank.on."):]] = \
            list(np.subtract(values[key], values["prerank.off." + key[len("prerank.on."):]]))
    metrics = mean_of(values)
    metrics |= {f"served.share.{c}": s for c, s in channel_shares(served_channels, rec.channels).items()}
    metrics |= {f"ci95.{key}": ci95(np.asarray(v)) for key, v in values.items() if len(v) > 1}
    metrics["users"] = float(len(users))
    if arms:
        metrics["prerank.keep"] = float(prerank_keep)
    return FunnelReport(day, len(users), k, tuple(cutoffs), tuple(rec.channels), metrics, tuple(notes))


def _arms(make: Callable[[Any], Any], config: Any, rec: Any, keep: int) -> dict[str, Any]:
    """The pre-ranker's arms (``on``: ``prerank_keep = keep``, ``off``: 0), ``rec`` where it is one;
    none when ``keep`` is 0."""
    if not keep:
        return {}
    return {arm: rec if config.prerank_keep == n else make(dataclasses.replace(config, prerank_keep=n))
            for arm, n in (("on", keep), ("off", 0))}


def _to_ranker(rec: Any, user: int, context: Mapping[str, Any], merged: np.ndarray, keep: int) -> list[int]:
    """The pins of ``merged`` (the merged candidates) that reach the DCN ranker: all of them without
    a pre-ranker (``keep`` 0) or when at most ``keep``, else the pre-ranker's best ``keep`` (ties:
    smaller pin id first, as :meth:`~pinrec.export.serving.prerank.Prerank.keep` cuts)."""
    if not keep or len(merged) <= keep:
        return merged.tolist()
    score = np.asarray(rec.prerank_scores(user, merged, context))
    return merged[np.sort(np.lexsort((merged, -score))[:keep])].tolist()


def _served(values: dict[str, list[float]], scope: str, served: list, relevant: Mapping[str, frozenset[int]],
            top: np.ndarray | None, k: int) -> None:
    ranked = [r.pin_id for r in served]
    values[f"{scope}.hr@{k}"].append(hit_at(ranked, relevant["saves"], k))
    values[f"{scope}.ndcg@{k}"].append(ndcg_at(ranked, relevant["saves"], k))
    for what, rel in relevant.items():
        if rel:
            values[f"{scope}.recall@{k}.{what}"].append(recall_at(ranked, rel, k))
    if top is not None and len(top):
        values[f"{scope}.truth_recall@{k}"].append(recall_at(ranked, top.tolist(), k))


def _vectors(rec: Any, pin_ids: list[int]) -> np.ndarray:
    """(M, D) PinSage embeddings of ``pin_ids`` from the bundle (zeros: none; (M, 0) without embeddings)."""
    if rec.embeddings is None or not pin_ids:
        return np.zeros((len(pin_ids), 0), np.float32)
    rows, found = rec.pins.rows(np.asarray(pin_ids, np.int64))
    return np.asarray(rec.embeddings[rows[found]], np.float32)


def true_top_pins(user_ids: np.ndarray, user_latent: np.ndarray, pin_ids: np.ndarray, pin_latent: np.ndarray,
                  n: int) -> dict[int, np.ndarray]:
    """Each user's ``n`` most relevant pins by the generator's relevance ``<u, v_p>`` (the synthetic
    world's truth), best first, ties by pin id: user id -> (n,) pin ids. ``pin_ids`` (P,) are the
    pins that could be served (the caller filters them), ``pin_latent`` (P, D) their latents."""
    if len(user_ids) != len(user_latent) or len(pin_ids) != len(pin_latent):
        raise ValueError("true_top_pins: ids and latents must have one row each")
    order = np.argsort(pin_ids, kind="stable")
    pin_ids, pin_latent = np.asarray(pin_ids)[order], np.asarray(pin_latent, np.float64)[order]
    scores = np.asarray(user_latent, np.float64) @ pin_latent.T
    out = {}
    for u, row in zip(np.asarray(user_ids).tolist(), scores, strict=True):
        out[int(u)] = pin_ids[np.argsort(-row, kind="stable")[:n]]
    return out
