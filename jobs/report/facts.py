"""What the run report shows, as plain values: :class:`RunFacts` (gathered by
:mod:`pinrec.jobs.report.gather`, drawn by :mod:`pinrec.jobs.report.page`).

Each part the run may lack holds either its facts or a ``str``: the sentence saying why it is
absent (no MLflow tracking, a ``fast`` ranker evaluation, a first embedding version, ...), which
the page prints in place of the section's plots. The bundle's own record (metrics, lineage,
blessing) is its :class:`~pinrec.schemas.manifest.Manifest`, kept whole.

The pure helpers below turn the stored records into what a plot needs: :func:`funnel_recall`
(the manifest's funnel metrics by channel), :func:`index_points` (the index candidates tried),
:func:`ranker_auc` (AUC by task and model).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pinrec.schemas.manifest import Manifest


@dataclass(frozen=True)
class Ingestion:
    """The ingest batches behind the bundle's raw-table versions: per raw table ``counts``
    (``valid``, ``quarantined``, ``duplicates``, ``in``; ``None`` where the batch did not record
    it), ``reasons`` (quarantine reason -> rows, from the quarantine table) and its ``batches`` ids;
    ``versions``: the raw table versions they make up."""

    counts: dict[str, dict[str, int | None]]
    reasons: dict[str, dict[str, int]]
    batches: dict[str, tuple[str, ...]]
    versions: dict[str, int]


@dataclass(frozen=True)
class PinSageFacts:
    """The bundle's embedding version (the ``pin_embeddings`` commit): ``loss``: (epoch, mean loss)
    of its MLflow run, or why it is missing; ``stability``: against the previous version ({} for
    a first version); ``warm_start_from``/``warm_start``: the version it started from and why."""

    model_version: str
    delta_version: int | None
    run_id: str | None
    loss: tuple[tuple[int, float], ...] | str
    stability: dict[str, float]
    warm_start_from: str | None = None
    warm_start: str = ""


@dataclass(frozen=True)
class RankerFacts:
    """The bundle's ranker: its ``metrics.json`` (``metrics`` rows, ``debias``, ``auc_gaps``), the
    ``evaluation`` mode its run logged (None when unknown) and its MLflow ``plots`` (name -> PNG
    bytes: ``reliability``, ``ctr_by_position``) or why they are missing."""

    model_version: str
    folder: str
    metrics: tuple[dict, ...]
    debias: tuple[dict, ...] = ()
    auc_gaps: tuple[dict, ...] = ()
    evaluation: str | None = None
    run_id: str | None = None
    plots: dict[str, bytes] | str = field(default_factory=dict)


@dataclass(frozen=True)
class RunFacts:
    """Everything the page shows about one bundle version (module docstring for the ``str`` parts).
    ``channel_version``: the version ``channel`` points to now (None: nowhere); ``index``: the
    bundle's ``index.json`` (the index tuner's record); ``retrieval_eval``: ``pinrec eval-retrieval``'s
    ``report.json`` with ``where`` it was read; ``drift``: the monitoring run's ``drift.json`` (the
    comparison behind ``metrics.drift``: reference window, rows, signals still in warm-up); ``max_feature_drift`` /
    ``max_null_rate_shift`` / ``max_category_psi`` / ``category_psi_noise_factor`` /
    ``max_unseen_category_share``: the gate's limits on feature drift, null-rate shift, category PSI
    (raised by the sampling noise) and unseen-category share (None: not checked); ``tracking_uri``:
    the MLflow store holding the same runs."""

    manifest: Manifest
    store_uri: str
    channel: str
    channel_version: str | None
    ingestion: Ingestion | str
    pinsage: PinSageFacts | str
    ranker: RankerFacts | str
    index: dict | str
    retrieval_eval: dict | str
    drift: dict | str = "no drift report"
    max_feature_drift: float | None = None
    max_null_rate_shift: float | None = None
    max_category_psi: float | None = None
    category_psi_noise_factor: float | None = None
    max_unseen_category_share: float | None = None
    tracking_uri: str | None = None

    @property
    def promoted(self) -> bool:
        return self.channel_version == self.manifest.version


_FUNNEL = re.compile(r"candidates\.(?P<scope>[^.]+)\.recall@(?P<n>\d+)\.(?P<what>[^.]+)")


def funnel_recall(funnel: Mapping[str, float], what: str = "saves") -> dict[str, dict[str, float]]:
    """``candidates.<channel>.recall@<n>.<what>`` metrics -> {``recall@n``: {channel: recall}},
    cut-offs ascending, channels in the order first seen (``merged`` last)."""
    found: dict[int, dict[str, float]] = {}
    for key, value in funnel.items():
        m = _FUNNEL.fullmatch(key)
        if m and m["what"] == what and math.isfinite(value):
            found.setdefault(int(m["n"]), {})[m["scope"]] = float(value)
    out = {}
    for n in sorted(found):
        row = found[n]
        out[f"recall@{n}"] = {**{c: v for c, v in row.items() if c != "merged"},
                              **({"merged": row["merged"]} if "merged" in row else {})}
    return out


def index_points(index: Mapping[str, Any]) -> tuple[list[dict], dict | None]:
    """(the index candidates tried, the one built) as ``{"label", "recall", "latency_ms"}`` from an
    ``index.json`` (:func:`pinrec.export.build.ann_build.make_manifest`); candidates without a
    measured p50 latency are left out."""
    points = []
    for c in index.get("candidates") or []:
        p50 = (c.get("latency") or {}).get("p50_ms")
        if c.get("recall_at_k") is None or p50 is None:
            continue
        params = ",".join(f"{k}={v}" for k, v in sorted((c.get("search_params") or {}).items()))
        points.append({"label": c["factory"] + (f" ({params})" if params else ""),
                       "recall": float(c["recall_at_k"]), "latency_ms": float(p50), "factory": c["factory"]})
    chosen = next((p for p in points if p["factory"] == index.get("factory")), None)
    return points, chosen


def ranker_auc(rows: tuple[dict, ...] | list[dict]) -> dict[str, dict[str, float]]:
    """``metrics.json`` rows -> {task: {model: AUC}} (finite AUCs only), models in row order."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        value = row.get("auc")
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.setdefault(row["task"], {})[row["model"]] = float(value)
    return out
