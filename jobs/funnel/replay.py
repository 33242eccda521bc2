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
* ``served_without_prerank``: when the config turns a pre-ranker on (a ``prerank_keep`` differing
  from its default, :func:`prerank_variant`), the served metrics again with it off.

Metrics are means over users (users without a closeup are left out of the closeup recall) of
:mod:`pinrec.models.funnel_metrics`; :class:`FunnelReport.metrics` is the flat ``{key: value}`` the
manifest stores (``candidates.merged.recall@500.saves``, ``served.hr@50``, ``served.share.ann``...).
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinrec.models.funnel_metrics import (
    category_entropy,
    channel_shares,
    hit_at,
    mean_of,
    mean_pairwise_cosine,
    ndcg_at,
    recall_at,
)

PRERANK_FIELD = "prerank_keep"


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
        m, k = self.metrics, self.k
        cols = [f"{what}@{n}" for what in ("saves", "closeups") for n in self.cutoffs]
        truth = any(key.startswith("candidates.merged.truth") for key in m)
        cols += [f"truth@{n}" for n in self.cutoffs] if truth else []
        head = f"  {'candidate recall':<24}" + "".join(f"{c:>14}" for c in cols)
        lines = [f"funnel replay of {self.day}: {self.users} users with saves, top-{k} served", head]
        for scope in ("merged", *self.channels):
            keys = [f"candidates.{scope}.recall@{n}.{w}" for w in ("saves", "closeups") for n in self.cutoffs]
            keys += [f"candidates.{scope}.truth_recall@{n}" for n in self.cutoffs] if truth else []
            lines.append(f"  {scope:<24}" + "".join(_cell(m.get(key)) for key in keys))
        for scope in ("served", "served_without_prerank"):
            if f"{scope}.hr@{k}" not in m:
                continue
            parts = [f"HR@{k} {m[f'{scope}.hr@{k}']:.4f}", f"NDCG@{k} {m[f'{scope}.ndcg@{k}']:.4f}",
                     f"recall@{k} saves {m[f'{scope}.recall@{k}.saves']:.4f}"]
            parts += [f"truth@{k} {m[f'{scope}.truth_recall@{k}']:.4f}"] if f"{scope}.truth_recall@{k}" in m else []
            lines.append(f"  {scope:<24} " + ", ".join(parts))
        shares = ", ".join(f"{c} {m[f'served.share.{c}']:.1%}" for c in self.channels if f"served.share.{c}" in m)
        lines.append(f"  served channel shares     {shares}")
        cos = m.get("served.cosine")
        lines.append(f"  diversity                 mean pairwise cosine {'-' if cos is None else f'{cos:.4f}'}, "
                     f"category entropy {m.get('served.category_entropy', 0.0):.3f} bits")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.4f}':>14}"


def prerank_variant(config: Any) -> Any | None:
    """``config`` with the pre-ranker off (its ``prerank_keep`` at the field's default, the
    optional stage's "off"), or None when ``config`` has no such field or already has it off."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    if PRERANK_FIELD not in fields:
        return None
    f = fields[PRERANK_FIELD]
    off = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return None if getattr(config, PRERANK_FIELD) == off else dataclasses.replace(config, **{PRERANK_FIELD: off})


def replay(make: Callable[[Any], Any], config: Any, events: DayEvents, *, day: str, k: int = 50,
           cutoffs: Sequence[int] = (50, 500, 1000), truth: Mapping[int, np.ndarray] | None = None,
           max_users: int = 0, notes: Sequence[str] = ()) -> FunnelReport:
    """Replay ``events`` (module docstring). ``make(config)``: a Recommender on the bundle and the
    as-of features for a RecommendConfig; ``truth``: user -> their true top pins (synthetic world);
    ``max_users``: the first users by id only (0: all)."""
    if k < 1 or not cutoffs or min(cutoffs) < 1:
        raise ValueError(f"funnel: k and every cut-off must be >= 1, got k={k}, cutoffs={list(cutoffs)}")
    users = sorted(events.saves)[: max_users or None]
    if not users:
        raise ValueError(f"funnel: no user saved a pin on {day}: nothing to replay")
    rec = make(config)
    singles = {c: make(dataclasses.replace(config, channels=(c,))) for c in rec.channels}
    values: dict[str, list[float]] = defaultdict(list)
    served_channels: list[str] = []
    for user in users:
        ctx = dict(events.contexts.get(user, {}))
        relevant = {"saves": events.saves[user], "closeups": events.closeups.get(user, frozenset())}
        top = truth.get(user) if truth is not None else None
        for scope, r in (("merged", rec), *singles.items()):
            ranked = r.candidates(user, ctx).pin_ids.tolist()
            for n in cutoffs:
                for what, rel in relevant.items():
                    if rel:
                        values[f"candidates.{scope}.recall@{n}.{what}"].append(recall_at(ranked, rel, n))
                if top is not None and len(top):
                    values[f"candidates.{scope}.truth_recall@{n}"].append(recall_at(ranked, top.tolist(), n))
        served = rec.recommend(user, ctx, k=k)
        _served(values, "served", served, relevant, top, k)
        served_channels += [r.channel for r in served]
        cos = mean_pairwise_cosine(_vectors(rec, [r.pin_id for r in served]))
        if cos is not None:
            values["served.cosine"].append(cos)
        values["served.category_entropy"].append(category_entropy(r.category for r in served))
    variant = prerank_variant(config)
    if variant is not None:
        plain = make(variant)
        for user in users:
            relevant = {"saves": events.saves[user], "closeups": events.closeups.get(user, frozenset())}
            top = truth.get(user) if truth is not None else None
            _served(values, "served_without_prerank", plain.recommend(user, dict(events.contexts.get(user, {})), k=k),
                    relevant, top, k)
    metrics = mean_of(values)
    metrics |= {f"served.share.{c}": s for c, s in channel_shares(served_channels, rec.channels).items()}
    metrics["users"] = float(len(users))
    return FunnelReport(day, len(users), k, tuple(cutoffs), tuple(rec.channels), metrics, tuple(notes))


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
