"""Drift monitoring job: the newest day of the ``training_set`` Delta table (as its newest build
defines it, :func:`~pinrec.jobs.io.training_set.current_training_set`) against its training
window (:func:`monitor_drift`), with the maths of :mod:`pinrec.jobs.monitoring.drift`, logged to MLflow (metrics,
``drift.json``, plots) for the blessing gate and for people."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from pinrec.jobs.monitoring.config import MonitoringConfig

from .columns import (
    categorical_feature_columns,
    feature_windows,
    numeric_feature_columns,
)
from .drift import DriftReport, drift_report

if TYPE_CHECKING:
    from pinrec.jobs.io.tracking import ArtifactRoot

__all__ = ["MonitoringConfig", "history_start", "monitor_drift"]


def history_start(spark, warehouse) -> dt.date | None:
    """The first ingested impression day (``None`` when there is no impressions table).
    ``warehouse``: a path, Location or :class:`~pinrec.jobs.io.catalog.Catalog`."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    if not catalog.exists("impressions"):
        return None
    return catalog.read("impressions").agg(F.min("dt")).collect()[0][0]


def _training_cutoff(catalog, day: dt.date) -> dt.datetime | None:
    """The cut-off of the newest training_set commit that wrote ``day``."""
    for commit in catalog.history("training_set"):
        meta = commit.user_metadata
        if day.isoformat() in meta.get("days", ()) and meta.get("cutoff"):
            return dt.datetime.fromisoformat(meta["cutoff"])
    return None


def monitor_drift(spark, warehouse, cfg: MonitoringConfig, *, maturity_s: int, day: dt.date | None = None,
                  scores: Callable | tuple[Mapping, Mapping] | None = None, tracking_uri: str | None = None,
                  seed: int = 7, max_feature_drift: float | None = None, max_category_psi: float | None = None,
                  category_psi_noise_factor: float | None = None,
                  artifact_root: ArtifactRoot | None = None) -> DriftReport:
    """Compare ``day`` (default: the newest) of the training set with its ``reference_split``
    rows of earlier days; ``scores``: a callable ``frame -> {task: (N,) scores}`` applied to both
    windows, or the two dicts of arrays. The features compared: the numeric and categorical ones of
    :mod:`~pinrec.jobs.monitoring.columns`. Logs to MLflow (metrics, ``drift.json``, score, feature
    drift and category PSI plots; ``max_feature_drift`` is drawn as the gate's line, and each categorical
    column's limit from ``max_category_psi`` and ``category_psi_noise_factor``
    (:func:`~pinrec.export.build.blessing.category_psi_limit`) on its bar) when ``tracking_uri`` is given,
    into a new experiment's ``artifact_root`` when set. ``warehouse``: a path, Location or
    :class:`~pinrec.jobs.io.catalog.Catalog`."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.training_set import current_training_set

    catalog = Catalog.of(spark, warehouse)
    path = catalog.path("training_set")
    table = current_training_set(catalog)  # as its newest build defines it (days, splits)
    day = day or table.agg(F.max("dt")).collect()[0][0]
    if day is None:
        raise ValueError(f"{path} is empty: build the training set first")
    current = table.where(F.col("dt") == F.lit(day))
    reference = table.where((F.col("split") == cfg.reference_split) & (F.col("dt") < F.lit(day)))
    columns, categorical = numeric_feature_columns(table.columns), categorical_feature_columns(table.columns)
    user = ["user_id"] if "user_id" in table.columns else []  # the categorical PSIs' noise draws users
    keep = table.columns if callable(scores) else [*columns, *categorical, *cfg.tasks, "sample_weight", "dt", *user]

    def collect(frame, name):
        n = frame.count()
        if n == 0:
            raise ValueError(f"no {name} rows in {path} for day {day} (reference split {cfg.reference_split!r})")
        if n > cfg.max_rows:
            frame = frame.sample(fraction=cfg.max_rows / n, seed=seed)
        return frame.select(*keep).toPandas()

    ref, cur = collect(reference, "reference"), collect(current, "current")
    cutoff = _training_cutoff(catalog, day)
    mature = cutoff is not None and cutoff >= dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) \
        + dt.timedelta(seconds=maturity_s)
    days = sorted(ref["dt"].unique())
    name = f"{cfg.reference_split} {days[0]}..{days[-1]}"
    score_ref, score_cur = (scores(ref), scores(cur)) if callable(scores) else scores or (None, None)
    report = drift_report(ref, cur, columns, cfg, day=day.isoformat(), reference_name=name,
                          scores_reference=score_ref, scores_current=score_cur, labels_mature=mature,
                          history_start=history_start(spark, catalog), windows=feature_windows(),
                          categorical=categorical, seed=seed)
    if tracking_uri:
        report = _track(report, cfg, tracking_uri, cutoff, score_ref, score_cur,
                        {"feature_drift": max_feature_drift, "category_psi": (max_category_psi, category_psi_noise_factor)},
                        artifact_root)
    return report


def _track(report: DriftReport, cfg: MonitoringConfig, tracking_uri: str, cutoff: dt.datetime | None,
           score_ref: Mapping | None, score_cur: Mapping | None, limits: Mapping[str, object],
           artifact_root: ArtifactRoot | None) -> DriftReport:
    from dataclasses import replace

    from pinrec.export.build.blessing import category_psi_limit
    from pinrec.jobs.io.tracking import tracked_run

    from .drift_plots import (
        category_psi_figure,
        feature_drift_figure,
        score_histogram_figure,
    )

    params = {"monitoring": asdict(cfg), "day": report.day, "reference": report.reference,
              "training_cutoff": cutoff.isoformat() if cutoff else None}
    with tracked_run(tracking_uri, cfg.experiment, f"drift-{report.day}", params, {"job": "monitoring"},
                     artifact_root=artifact_root) as run:
        metrics = dict(report.drift_metrics())
        metrics |= {f"label_rate_reference.{t}": v for t, v in report.label_rate_reference.items()}
        metrics |= {f"label_rate_current.{t}": v for t, v in (report.label_rate_current or {}).items()}
        metrics |= {"reference_rows": report.reference_rows, "current_rows": report.current_rows}
        run.log_metrics(metrics)
        run.log_dict(report.to_dict(), "drift.json")
        if score_ref:
            run.log_figure(score_histogram_figure(score_ref, score_cur, report.score_psi, cfg.psi_bins),
                           "plots/score_psi.png")
        drifts = {c: f.drift for c, f in report.features.items() if f.drift is not None}
        if drifts:
            run.log_figure(feature_drift_figure(drifts, threshold=limits["feature_drift"]), "plots/feature_drift.png")
        if report.categories:
            column_limits = {c: limit for c, s in report.categories.items()
                             if (limit := category_psi_limit(*limits["category_psi"], s.noise_psi)) is not None}
            run.log_figure(category_psi_figure({c: s.psi for c, s in report.categories.items()}, limits=column_limits),
                           "plots/category_psi.png")
        return replace(report, mlflow_run_id=run.run_id)
