"""The point-in-time training set: one row per (sampled) impression, features as known then.

Spine = impressions of the requested days. For each impression:

* labels ``closeup`` / ``save``: an action of that type on the impression within ``maturity_s``
  after it (a delayed save counts; an action naming only its session counts for the latest
  impression of its user, pin and session at or before it); impressions whose window has not closed at the cut-off (the
  end of the last day of ingested actions) are left out, never labelled negative;
* features from every feature view as known at the impression (:mod:`pinrec.jobs.features.pit_join`, all views
  in one call: small feature tables are looked up in place, the others share shuffles), with a
  ``<view>__missing`` indicator;
* context: ``position``, ``surface``, ``device``, ``country``, ``hour``, ``day_of_week``;
* negatives (neither closeup nor save) are kept with probability ``negative_rate``, only from
  sessions with a positive; ``sample_weight`` = 1 / rate undoes the sampling;
* ``split``: ``train`` / ``validation`` / ``test`` by day, the last days last. Only this build's
  days are replaced; readers go by the newest build (:mod:`pinrec.jobs.io.training_set`).

A requested day without ingested impressions, or without built features in every view, is refused
(FileNotFoundError naming the command to run) before anything is written.

The Delta commit's ``userMetadata`` records the lineage (Delta versions of every input, as the
catalog read them) and the sampling, so a model trained on it can be traced and corrected.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import asdict, dataclass, field

from pinrec.jobs.config import TrainingSetConfig
from pinrec.jobs.io.timestamps import from_spark, ts_lit
from pinrec.schemas.catalog import feature_table
from pinrec.schemas.features import FEATURE_VIEWS, FeatureView

from .holdout import resolved
from .pit_join import point_in_time_join_many

CONTEXT = ("position", "surface", "device", "country", "hour", "day_of_week")


@dataclass(frozen=True)
class TrainingSetReport:
    days: tuple[str, ...]
    cutoff: str
    rows: int
    immature_excluded: int
    negative_rate: float
    rows_by_split: dict[str, int] = field(default_factory=dict)
    input_versions: dict[str, int | None] = field(default_factory=dict)
    delta_version: int | None = None
    held_out_days: dict[str, int] = field(default_factory=dict)  # validation / test days, as resolved

    def render(self) -> str:
        splits = ", ".join(f"{k}={v}" for k, v in sorted(self.rows_by_split.items()))
        version = "-" if self.delta_version is None else self.delta_version
        held = (f" over {self.held_out_days['validation']}+{self.held_out_days['test']} held-out day(s)"
                if self.held_out_days else "")
        return (f"training_set     {self.days[0]}..{self.days[-1]}  rows={self.rows} ({splits}{held}); "
                f"immature excluded={self.immature_excluded}; negative_rate={self.negative_rate}; "
                f"cut-off {self.cutoff}; delta_v={version}")

    def metadata(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "delta_version"}, sort_keys=True)


def split_days(days: list[dt.date], cfg: TrainingSetConfig) -> dict[dt.date, str]:
    """Temporal split: the last ``test_days`` days are test, the ``validation_days`` before them
    validation, the rest train (both numbers set: :func:`~pinrec.jobs.features.holdout.resolved`).
    Raises when nothing is left to train on."""
    if cfg.validation_days is None or cfg.test_days is None:
        raise ValueError("split_days needs training.validation_days and test_days set: resolve them from the "
                         "days' impressions first (pinrec.jobs.features.holdout.resolved)")
    days = sorted(set(days))
    n_eval = cfg.validation_days + cfg.test_days
    if len(days) <= n_eval:
        raise ValueError(f"{len(days)} day(s) cannot hold validation_days={cfg.validation_days} + "
                         f"test_days={cfg.test_days} and still leave a training day")
    out = {}
    for i, d in enumerate(days):
        from_end = len(days) - i
        out[d] = "test" if from_end <= cfg.test_days else "validation" if from_end <= n_eval else "train"
    return out


def attribute_actions(actions, impressions):
    """``actions`` as (``impression_id``, ``type``, ``ts``) rows, one per action attributed to an
    impression. An action that names no impression but its session (the actions schema's
    ``attributable`` rule allows it) gets the latest impression of its (``user_id``, ``pin_id``,
    ``session_id``) at or before it (ties: the greatest ``event_id``); with none it is left out (it
    labels nothing). ``impressions``: the whole table, not only the spine's days, so that a later
    impression outside them is still the latest."""
    from pyspark.sql import functions as F

    keys = ["user_id", "pin_id", "session_id"]
    linked = actions.where(F.col("impression_id").isNotNull()).select("impression_id", "type", "ts")
    loose = actions.where(F.col("impression_id").isNull() & F.col("session_id").isNotNull())
    if loose.isEmpty():  # the usual case: one small job instead of a join over every impression
        return linked
    shown = impressions.select(*keys, F.col("ts").alias("_shown_ts"), F.col("event_id").alias("_shown_id"))
    latest = (loose.join(shown, keys).where(F.col("_shown_ts") <= F.col("ts")).groupBy("event_id", "type", "ts")
              .agg(F.max(F.struct("_shown_ts", "_shown_id")).getField("_shown_id").alias("impression_id")))
    return linked.unionByName(latest.select("impression_id", "type", "ts"))


def label_impressions(impressions, actions, cutoff: dt.datetime, maturity_s: int):
    """Impressions with mature ``closeup``/``save`` labels (an action at ``t <= ts <= t + maturity_s``);
    impressions whose window has not closed before ``cutoff`` (``t + maturity_s >= cutoff``) are dropped.
    ``actions``: by ``impression_id`` (:func:`attribute_actions` fills it for session-linked ones)."""
    from pyspark.sql import functions as F

    window = F.expr(f"INTERVAL {maturity_s} SECONDS")
    # the window must close before the cut-off: an action at the cut-off instant (the next day's midnight by
    # default) lies in a day not ingested yet, so a window ending there could still turn positive
    mature = impressions.where(F.col("ts") + window < ts_lit(cutoff))
    acts = actions.where(F.col("impression_id").isNotNull()).select(
        F.col("impression_id").alias("event_id"), F.col("type"), F.col("ts").alias("_action_ts"))
    labelled = (mature.join(acts, "event_id", "left")
                .withColumn("_in_window", (F.col("_action_ts") >= F.col("ts")) & (F.col("_action_ts") <= F.col("ts") + window))
                .groupBy(*impressions.columns)
                .agg(F.max(F.when(F.col("_in_window") & (F.col("type") == "closeup"), 1).otherwise(0)).alias("closeup"),
                     F.max(F.when(F.col("_in_window") & (F.col("type") == "save"), 1).otherwise(0)).alias("save")))
    return labelled


def sample_negatives(labelled, rate: float, seed: int):
    """Keep positives; keep negatives from sessions with a positive with probability ``rate``
    (a deterministic hash of the event id, so re-runs keep the same rows)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    positive = (F.col("closeup") + F.col("save")) > 0
    weight = F.when(positive, F.lit(1.0)).otherwise(F.lit(1.0 / rate))
    if rate >= 1.0:
        return labelled.withColumn("sample_weight", weight)
    draw = (F.xxhash64(F.col("event_id"), F.lit(seed)).bitwiseAND(F.lit(0xFFFFFF)) / float(0x1000000))
    flagged = labelled.withColumn(
        "_session_has_positive", F.max(positive.cast("int")).over(Window.partitionBy("session_id")) > 0)
    keep = positive | (F.col("_session_has_positive") & (draw < F.lit(rate)))
    return flagged.where(keep).drop("_session_has_positive").withColumn("sample_weight", weight)


def build_training_frame(impressions, actions, pins, features: dict[str, object], days: list[dt.date],
                         cutoff: dt.datetime, cfg: TrainingSetConfig, seed: int,
                         views: tuple[FeatureView, ...] = FEATURE_VIEWS, first_ts: dt.datetime | None = None):
    """Pure transform: validated tables and feature tables in, the training frame out.

    ``first_ts``: the earliest ``ts`` of the days' impressions, when known; each view's rows older than it by
    more than the view's TTL are then left out before the point-in-time join (they could only be joined stale,
    i.e. as missing), so a day's training set reads days of features, not their whole history."""
    from pyspark.sql import functions as F

    if first_ts is not None:
        features = {view.name: features[view.name].where(F.col("feature_ts") >= ts_lit(first_ts - view.ttl))
                    for view in views}
    spine = impressions.where(F.col("dt").isin(list(days)))
    labelled = label_impressions(spine, attribute_actions(actions, impressions), cutoff, cfg.maturity_s)
    sampled = sample_negatives(labelled, cfg.negative_rate, seed)
    out = (sampled.join(pins.select("pin_id", "category").dropDuplicates(["pin_id"]), "pin_id", "left")
           .withColumn("hour", F.hour("ts")).withColumn("day_of_week", F.dayofweek("ts")))
    out = point_in_time_join_many(out, [(features[view.name], view) for view in views],
                                  broadcast_max_bytes=cfg.broadcast_max_mb * 2**20)
    return out.withColumn("split", split_column(split_days(days, cfg)))


def split_column(splits: dict[dt.date, str]):
    """The ``split`` column of :func:`split_days`'s split, for rows whose ``dt`` is one of its days: two
    comparisons with the first validation and test days (held-out days are the last ones), not one
    ``when`` per day, whose nesting overflowed the JVM's stack on ~1,000 days (a 3-year log)."""
    from pyspark.sql import functions as F

    column = F.lit("train")
    for name in ("validation", "test"):  # test last: it wins over validation on its days
        if held := [d for d, s in splits.items() if s == name]:
            column = F.when(F.col("dt") >= F.lit(min(held)), F.lit(name)).otherwise(column)
    return column


def build_training_set(spark, warehouse, days: list[dt.date], cfg: TrainingSetConfig, seed: int,
                       cutoff: dt.datetime | None = None) -> TrainingSetReport:
    """Read the validated and feature tables (pinned Delta versions: the report's
    ``input_versions``, the catalog's lineage), build the training set for ``days`` and replace
    those days' partitions of the ``training_set`` Delta table. ``warehouse``: a path, Location or
    :class:`~pinrec.jobs.io.catalog.Catalog`."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    if not days:
        raise ValueError("build_training_set needs at least one day")
    days = sorted(set(days))
    catalog = Catalog.of(spark, warehouse)
    inputs = ("impressions", "actions", "pins", *(feature_table(v) for v in FEATURE_VIEWS))
    catalog.require(inputs, "run `pinrec ingest` and `pinrec features` for these days first")
    read = {name: catalog.read(name) for name in inputs}
    versions = {name: catalog.reads[name] for name in inputs}
    if cutoff is None:
        last = read["actions"].agg(F.max("dt")).collect()[0][0]
        if last is None:
            raise FileNotFoundError(f"no actions were ingested (the actions table at {catalog.path('actions')} is "
                                    "empty), so the label cut-off (the end of the last day of actions) cannot be "
                                    "set: run `pinrec ingest` for the actions first, or pass cutoff=")
        cutoff = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    # One job over the spine: the days present, its rows, and those whose label window has closed
    # (what label_impressions keeps: one row per impression, the ingested table has no duplicates).
    mature = F.col("ts") + F.expr(f"INTERVAL {cfg.maturity_s} SECONDS") < ts_lit(cutoff)
    per_day = (read["impressions"].where(F.col("dt").isin(days)).groupBy("dt")
               .agg(F.count("*").alias("n"), F.sum(mature.cast("long")).alias("mature"), F.min("ts").alias("first"))
               .collect())
    absent = [d.isoformat() for d in days if d not in {r["dt"] for r in per_day}]
    if absent:
        raise FileNotFoundError(f"no impressions were ingested for {absent}: run `pinrec ingest` for those days first "
                                "(if it ran, it rejected their batch: `pinrec tables` counts the quarantined rows)")
    # features not built for a day would leave its rows' feature columns null (the join finds nothing): refuse
    tables = [feature_table(v) for v in FEATURE_VIEWS]
    built = {(r["table"], r["dt"]) for r in functools.reduce(DataFrame.unionByName, [
        read[t].where(F.col("dt").isin(days)).select(F.lit(t).alias("table"), "dt").distinct() for t in tables])
        .collect()}
    unbuilt = {t: missing for t in tables if (missing := [d.isoformat() for d in days if (t, d) not in built])}
    if unbuilt:
        raise FileNotFoundError(f"no features were built for some of these days ({unbuilt}): run `pinrec features` "
                                "for those days first")
    spine_rows, total_mature = sum(r["n"] for r in per_day), sum(r["mature"] or 0 for r in per_day)
    cfg = resolved(cfg, {r["dt"]: r["n"] for r in per_day})  # null held-out days: chosen from these counts
    features = {v.name: read[feature_table(v)] for v in FEATURE_VIEWS}
    frame = build_training_frame(read["impressions"], read["actions"], read["pins"], features, days, cutoff, cfg, seed,
                                 first_ts=from_spark(min((r["first"] for r in per_day if r["first"]), default=None)))
    frame = frame.cache()
    try:
        counts = {r["split"]: r["n"] for r in frame.groupBy("split").agg(F.count("*").alias("n")).collect()}
        report = TrainingSetReport(
            days=tuple(d.isoformat() for d in days), cutoff=cutoff.isoformat(), rows=sum(counts.values()),
            immature_excluded=spine_rows - total_mature, negative_rate=cfg.negative_rate,
            rows_by_split=counts, input_versions=versions,
            held_out_days={"validation": cfg.validation_days, "test": cfg.test_days})
        # A feature added to a view since the table was created becomes a new column (days not
        # rebuilt read it as null) instead of failing the write.
        commit = catalog.write("training_set", frame, days=days, add_columns=True,
                               user_metadata=json.loads(report.metadata()))
    finally:
        frame.unpersist()
    return TrainingSetReport(**{**asdict(report), "delta_version": commit.version})
