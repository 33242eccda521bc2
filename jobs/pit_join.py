"""Point-in-time ("as of") join of a spine of events with a feature view, in Spark, without leakage.

For each spine row (entity ``k``, time ``t``) attach the feature row of ``k`` with the greatest
``feature_ts`` among those that were *known* at ``t`` (``feature_ts <= t`` and ``created_ts <= t``)
provided it is still fresh (``feature_ts >= t - ttl``); otherwise nulls and ``missing = true``.

Algorithm (a sort-merge as-of join, linear in rows, no range join): union spine and feature rows,
each feature row stamped with the time it became known, ``known_ts = max(feature_ts, created_ts)``;
within each entity, ordered by that time (feature rows before spine rows on ties, since ``<=``),
a running ``max`` over ``struct(feature_ts, values)`` is the freshest known row at every point.
The running max (not the last row) matters: a late-written old value must not shadow a newer one
that was already known. The window frame is ``ROWS UNBOUNDED PRECEDING .. CURRENT ROW``, which
Spark evaluates streaming, so a hot (skewed) entity costs a sort, not memory per row.
The naive alternative — a range join on ``feature_ts <= t`` plus ``row_number()``, as Feast's Spark
offline store does — is quadratic in the rows of a hot key.
"""
from __future__ import annotations

from schemas.features import FeatureView


class FeatureTableError(ValueError):
    """The feature table or spine breaks the join's contract."""


def check_unique(features, view: FeatureView) -> None:
    """Raise when a feature table holds two rows for one (entity, feature_ts): the join would have
    to pick one arbitrarily."""
    from pyspark.sql import functions as F

    key = [*view.entities, view.feature_ts]
    dup = features.groupBy(*key).count().where("count > 1").orderBy(F.desc("count")).limit(3).collect()
    if dup:
        examples = ", ".join("(" + ", ".join(str(r[k]) for k in key) + f") x{r['count']}" for r in dup)
        raise FeatureTableError(f"feature view {view.name!r}: duplicate ({', '.join(key)}) rows, "
                                f"e.g. {examples}; de-duplicate the feature job's output")


def point_in_time_join(spine, features, view: FeatureView, spine_ts: str = "ts", validate: bool = True):
    """Attach ``view``'s features to every row of ``spine`` as known at ``spine[spine_ts]``.

    Args:
        spine: DataFrame with the ``view.entities`` columns and ``spine_ts`` (timestamp); every row
            is kept, in no particular order. Rows with a null key get ``missing = true``.
        features: DataFrame with ``view.entities``, ``view.feature_ts``, ``view.created_ts`` and
            the feature columns. Rows with a null key or timestamp are ignored.
        view: the feature view (TTL, names).
        spine_ts: the spine's event-time column; a null there is an error.
        validate: check the feature table for duplicate (entity, feature_ts) rows first.

    Returns:
        ``spine`` plus ``<view>__<feature>`` for every feature, ``<view>__feature_ts`` and
        ``<view>__missing`` (boolean).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    for col in (*view.entities, spine_ts):
        if col not in spine.columns:
            raise FeatureTableError(f"spine has no column {col!r}; columns: {spine.columns}")
    needed = [*view.entities, view.feature_ts, view.created_ts, *(f.name for f in view.features)]
    absent = [c for c in needed if c not in features.columns]
    if absent:
        raise FeatureTableError(f"feature table for {view.name!r} lacks columns {absent}")
    if spine.where(F.col(spine_ts).isNull()).limit(1).count():
        raise FeatureTableError(f"spine has rows with a null {spine_ts!r}: an event without a time cannot be joined")
    if validate:
        check_unique(features, view)

    values = [f.name for f in view.features]
    spine_cols = spine.columns
    has_key = F.lit(True)
    for e in view.entities:
        has_key = has_key & F.col(e).isNotNull()
    key = F.struct(*[F.col(e) for e in view.entities])
    # Spine rows travel through the union whole (a struct), so no row id and no self-join is
    # needed: a row id would not survive a recomputation of a non-deterministic upstream.
    feature_rows = (
        features.where(has_key & F.col(view.feature_ts).isNotNull() & F.col(view.created_ts).isNotNull())
        .select(
            key.alias("__key"),
            F.greatest(view.feature_ts, view.created_ts).alias("__known_ts"),
            F.lit(0).alias("__order"),  # feature rows first on ties: known at t counts
            F.struct(F.col(view.feature_ts).alias("fts"), *[F.col(v).alias(v) for v in values]).alias("__value"),
        )
    )
    value_type = feature_rows.schema["__value"].dataType
    spine_type = spine.select(F.struct(*spine_cols).alias("s")).schema["s"].dataType
    feature_rows = feature_rows.withColumn("__spine", F.lit(None).cast(spine_type))
    events = spine.where(has_key).select(
        key.alias("__key"), F.col(spine_ts).alias("__known_ts"), F.lit(1).alias("__order"),
        F.lit(None).cast(value_type).alias("__value"), F.struct(*spine_cols).alias("__spine"))
    window = (Window.partitionBy("__key").orderBy("__known_ts", "__order")
              .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    best = F.col("__best")
    fresh = best.getField("fts") >= F.col("__known_ts") - F.expr(f"INTERVAL {int(view.ttl.total_seconds())} SECONDS")
    found = F.coalesce(best.isNotNull() & fresh, F.lit(False))
    joined = (feature_rows.unionByName(events)
              .withColumn("__best", F.max("__value").over(window))
              .where(F.col("__order") == 1)
              .select(*[F.col(f"__spine.`{c}`").alias(c) for c in spine_cols],
                      *[F.when(found, best.getField(v)).alias(view.column(v)) for v in values],
                      F.when(found, best.getField("fts")).alias(view.column("feature_ts")),
                      (~found).alias(view.missing_column)))
    keyless = spine.where(~has_key).select(
        *spine_cols,
        *[F.lit(None).cast(value_type[v].dataType).alias(view.column(v)) for v in values],
        F.lit(None).cast(value_type["fts"].dataType).alias(view.column("feature_ts")),
        F.lit(True).alias(view.missing_column))
    return joined.unionByName(keyless)
