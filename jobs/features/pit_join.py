"""Point-in-time ("as of") join of a spine of events with feature views, in Spark, without leakage.

For each spine row (entity ``k``, time ``t``) attach the feature row of ``k`` with the greatest
``feature_ts`` among those that were *known* at ``t`` (``feature_ts <= t`` and ``created_ts <= t``)
provided it is still fresh (``feature_ts >= t - ttl``); otherwise nulls and ``missing = true``.
Duplicate ``(k, feature_ts)`` rows (only with ``validate=False``) are versions of one value: of
those known at ``t`` the greatest ``created_ts`` wins (a rewrite replaces the value once written,
never before); rows equal in ``created_ts`` too, the greatest feature values in Spark's ordering
(``max`` of their struct, nulls lowest).

The window path (a sort-merge as-of join, linear in rows, no range join): union spine and feature rows,
each feature row stamped with the time it became known, ``known_ts = max(feature_ts, created_ts)``;
within each entity, ordered by that time (feature rows before spine rows on ties, since ``<=``),
a running ``max`` over ``struct(feature_ts, created_ts, values)`` is the freshest known row at
every point.
The running max (not the last row) matters: a late-written old value must not shadow a newer one
that was already known. The window frame is ``ROWS UNBOUNDED PRECEDING .. CURRENT ROW``; Spark
buffers one entity's rows at a time in a spillable buffer, so a hot (skewed) entity costs a sort
and disk, not memory per row. The naive alternative — a range join on ``feature_ts <= t`` plus
``row_number()``, as Feast's Spark offline store does — is quadratic in the rows of a hot key.

Several views (:func:`point_in_time_join_many`) are joined in groups of views that share their
first entity column (``user`` and ``(user, category)``): one shuffle of the spine per group,
partitioned by that column, and one window per view on it (hash partitioning by ``user_id``
clusters ``(user_id, category)`` too, so Spark adds no second shuffle). Spine columns travel flat,
not re-shuffled per view; groups adding fewer columns go first, so the widest spine is shuffled
least. Spine rows with a null first entity are spread by a hash of the row (``__pit_salt``)
instead of all landing in one window group.

That window formulation (``shuffle_join="window"``) is the general one. Two faster paths take the
views whose column types they handle (integral or string keys, ``timestamp`` times):

* a view whose feature table Spark estimates at most ``broadcast_max_bytes`` is collected, indexed
  and looked up in place, without moving the spine (:mod:`pinrec.jobs.features.pit_broadcast`,
  like Spark's broadcast hash join for a small side);
* a larger one (``shuffle_join="interval"``, the default) becomes validity intervals (the same
  running ``max``, over its feature rows only) that the spine meets in a shuffled hash join, without
  sorting the spine (:mod:`pinrec.jobs.features.pit_interval`).
"""
from __future__ import annotations

import datetime as dt

from pinrec.jobs.io.timestamps import from_spark
from pinrec.schemas.features import FeatureView

ORDER, KNOWN, SALT = "__pit_order", "__pit_known_ts", "__pit_salt"
FTS, CTS = "__pit_fts", "__pit_cts"  # struct fields: no clash with a feature's name
SALT_BUCKETS = 1024
#: Feature tables Spark estimates at most this size take the broadcast path (0 turns it off).
BROADCAST_MAX_BYTES = 128 * 2**20
#: What joins a view too large to broadcast after the shuffle (see :func:`point_in_time_join`).
SHUFFLE_JOINS = ("interval", "window")
#: The types a spine time, ``feature_ts`` and ``created_ts`` may have.
TIME_TYPES = ("timestamp", "timestamp_ntz", "date")


class FeatureTableError(ValueError):
    """The feature table or spine breaks the join's contract."""


def check_unique(features, view: FeatureView) -> None:
    """Raise when a feature table holds two rows for one (entity, feature_ts): the join would have
    to pick one arbitrarily."""
    from pyspark.sql import functions as F

    key = [*view.entities, view.feature_ts]
    valid = F.lit(True)
    for c in (*view.entities, view.feature_ts, view.created_ts):  # the rows every join path ignores are not checked
        valid = valid & F.col(c).isNotNull()
    dup = features.where(valid).groupBy(*key).count().where("count > 1").orderBy(F.desc("count")).limit(3).collect()
    if dup:
        examples = ", ".join("(" + ", ".join(str(from_spark(r[k]) if isinstance(r[k], dt.datetime) else r[k])
                                             for k in key) + f") x{r['count']}" for r in dup)
        raise FeatureTableError(f"feature view {view.name!r}: duplicate ({', '.join(key)}) rows, "
                                f"e.g. {examples}; de-duplicate the feature job's output")


def _key_kind(t) -> str:
    from pyspark.sql.types import CharType, IntegralType, StringType, VarcharType

    return "integral" if isinstance(t, IntegralType) else \
        "string" if isinstance(t, (StringType, CharType, VarcharType)) else t.simpleString()


def _is_time(t) -> bool:
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    return isinstance(t, (TimestampType, TimestampNTZType, DateType))


def check_types(spine_schema, features_schema, view: FeatureView) -> None:
    """Raise unless ``view``'s keys are of one kind in spine and feature table (integral of any
    width, string, or else the same type) and its times are :data:`TIME_TYPES`: from the schemas,
    no job. Otherwise the window path's union would cast one side (under ANSI "007" meets 7, "abc"
    fails mid-job naming neither view nor column)."""
    for e in view.entities:
        s, f = spine_schema[e].dataType, features_schema[e].dataType
        if _key_kind(s) != _key_kind(f):
            raise FeatureTableError(f"feature view {view.name!r}: key column {e!r} is {s.simpleString()} in the "
                                    f"spine but {f.simpleString()} in the feature table; both must be integral, "
                                    f"both string, or the same type")
    for c in dict.fromkeys((view.feature_ts, view.created_ts)):
        if not _is_time(features_schema[c].dataType):
            raise FeatureTableError(f"feature view {view.name!r}: time column {c!r} is "
                                    f"{features_schema[c].dataType.simpleString()}; use {', '.join(TIME_TYPES)}")


def point_in_time_join(spine, features, view: FeatureView, spine_ts: str = "ts", validate: bool = True,
                       broadcast_max_bytes: float = BROADCAST_MAX_BYTES, shuffle_join: str = "interval"):
    """Attach ``view``'s features to every row of ``spine`` as known at ``spine[spine_ts]``.

    Args:
        spine: DataFrame with the ``view.entities`` columns and ``spine_ts`` (timestamp,
            timestamp_ntz or date); every row is kept, in no particular order. Rows with a null key
            get ``missing = true``.
        features: DataFrame with ``view.entities`` (each of the spine's kind: integral, string, or
            else the same type), ``view.feature_ts``, ``view.created_ts`` (timestamp, timestamp_ntz
            or date) and the feature columns. Rows with a null key or timestamp are ignored.
            Other types: :class:`FeatureTableError` naming the view and column, before any job.
        view: the feature view (TTL, names).
        spine_ts: the spine's event-time column; a null there is an error.
        validate: check the feature table for duplicate (entity, feature_ts) rows first and
            refuse them; False: skip the check (it costs a shuffle); duplicates are then resolved as
            the module docstring says.
        broadcast_max_bytes: a feature table estimated at most this large is collected and
            looked up in place (:mod:`pinrec.jobs.features.pit_broadcast`); 0: always a shuffle (``shuffle_join``),
            ``inf``: always the lookup where the column types allow it.
        shuffle_join: how a view too large to broadcast meets the shuffled spine: ``"interval"``
            (:mod:`pinrec.jobs.features.pit_interval`: the feature rows as validity intervals, one
            hash join, where the column types allow it) or ``"window"`` (the running ``max`` above
            over spine and feature rows together, any types).

    Returns:
        ``spine`` plus ``<view>__<feature>`` for every feature, ``<view>__feature_ts`` and
        ``<view>__missing`` (boolean).
    """
    return point_in_time_join_many(spine, [(features, view)], spine_ts, validate, broadcast_max_bytes, shuffle_join)


def point_in_time_join_many(spine, joins, spine_ts: str = "ts", validate: bool = True,
                            broadcast_max_bytes: float = BROADCAST_MAX_BYTES, shuffle_join: str = "interval"):
    """:func:`point_in_time_join` of ``spine`` with several views at once: ``joins`` is a sequence
    of ``(features, view)``. Same result as chaining :func:`point_in_time_join` over them (columns
    in the order given), with one shuffle of the spine per distinct first entity column instead
    of one per view (none for a view small enough to broadcast)."""
    from pyspark.sql import functions as F

    from .pit_broadcast import broadcast_join, supported
    from .pit_interval import interval_join

    if shuffle_join not in SHUFFLE_JOINS:
        raise ValueError(f"shuffle_join must be one of {SHUFFLE_JOINS}, got {shuffle_join!r}")
    joins = list(joins)
    if not joins:
        raise ValueError("point_in_time_join_many needs at least one (features, view) pair")
    names = [v.name for _, v in joins]
    if len(set(names)) != len(names):
        raise ValueError(f"feature view names must be unique, got {names}")
    added = [c for _, v in joins for c in _output_columns(v)]
    # the paths' helper columns all start with __pit_: reserved
    clash = [c for c in spine.columns if c in added or c.startswith("__pit_")]
    if clash:
        raise FeatureTableError(f"spine already has columns {clash} that the join would add (or its reserved prefix __pit_)")
    for features, view in joins:
        for col in (*view.entities, spine_ts):
            if col not in spine.columns:
                raise FeatureTableError(f"spine has no column {col!r}; columns: {spine.columns}")
        needed = [*view.entities, view.feature_ts, view.created_ts, *(f.name for f in view.features)]
        absent = [c for c in needed if c not in features.columns]
        if absent:
            raise FeatureTableError(f"feature table for {view.name!r} lacks columns {absent}")
        check_types(spine.schema, features.schema, view)
    if not _is_time(spine.schema[spine_ts].dataType):
        raise FeatureTableError(f"spine time column {spine_ts!r} is {spine.schema[spine_ts].dataType.simpleString()}; "
                                f"use {', '.join(TIME_TYPES)}")
    # a column Spark knows cannot be null (a literal cut-off) needs no job to prove it
    if spine.schema[spine_ts].nullable and spine.where(F.col(spine_ts).isNull()).limit(1).count():
        raise FeatureTableError(f"spine has rows with a null {spine_ts!r}: an event without a time cannot be joined")
    if validate:
        for features, view in joins:
            check_unique(features, view)

    small, groups = [], {}
    for features, view in joins:
        if (broadcast_max_bytes > 0 and estimated_bytes(features) <= broadcast_max_bytes
                and supported(spine.schema, features.schema, view, spine_ts)):
            small.append((features, view))
        else:
            groups.setdefault(view.entities[0], []).append((features, view))
    out = broadcast_join(spine, small, spine_ts) if small else spine
    for members in sorted(groups.values(), key=lambda m: sum(len(_output_columns(v)) for _, v in m)):
        fits = [shuffle_join == "interval" and supported(spine.schema, f.schema, v, spine_ts) for f, v in members]
        if any(fits):
            out = interval_join(out, [m for m, ok in zip(members, fits) if ok], spine_ts)
        windowed = [m for m, ok in zip(members, fits) if not ok]
        if windowed:
            out = _join_group(out, windowed, spine_ts)
    types = {f.name: f.dataType for f in spine.schema.fields}
    return out.select(*[_col(c).cast(types[c]).alias(c) for c in spine.columns], *added)


def estimated_bytes(df) -> float:
    """Spark's size estimate of ``df`` (what its broadcast-join choice uses); inf if unknown."""
    from py4j.protocol import Py4JError

    try:
        return float(str(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    except (AttributeError, ValueError, Py4JError):  # no JVM plan (Spark Connect): never broadcast
        return float("inf")


def _col(name: str):
    """A column by its exact name (dots and backticks in spine column names are not paths)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _output_columns(view: FeatureView) -> list[str]:
    return [*(view.column(f.name) for f in view.features), view.column("feature_ts"), view.missing_column]


def _join_group(spine, members, spine_ts: str):
    """Join the views in ``members`` (all with the same first entity) in one shuffle of ``spine``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lead = members[0][1].entities[0]
    cols = spine.columns
    types = {f.name: f.dataType for f in spine.schema.fields}
    values = [f"__pit_v{i}" for i in range(len(members))]
    structs, feature_parts = [], []
    for features, view in members:
        has_key = F.lit(True)
        for e in view.entities:
            has_key = has_key & F.col(e).isNotNull()
        structs.append(F.struct(F.col(view.feature_ts).alias(FTS), F.col(view.created_ts).alias(CTS),
                                *[F.col(f.name) for f in view.features]))
        feature_parts.append(features.where(
            has_key & F.col(view.feature_ts).isNotNull() & F.col(view.created_ts).isNotNull()))
    value_types = [p.select(s.alias("v")).schema["v"].dataType for p, s in zip(feature_parts, structs)]

    def nulls(skip: int = -1):
        return [(structs[j] if j == skip else F.lit(None).cast(value_types[j])).alias(values[j])
                for j in range(len(members))]

    # Null first keys are never joined: spread them over SALT_BUCKETS groups (feature rows and
    # keyed spine rows all have salt 0), so they cannot pile up in one window group.
    hashable = [_col(c) for c in cols if "map<" not in types[c].simpleString()]  # Spark cannot hash maps
    spread = F.abs(F.xxhash64(*hashable) % SALT_BUCKETS) + 1 if hashable else F.lit(1)
    salt = F.when(_col(lead).isNull(), spread).otherwise(F.lit(0))
    parts = [spine.select(*map(_col, cols), _col(spine_ts).alias(KNOWN), F.lit(1).alias(ORDER), salt.alias(SALT), *nulls())]
    for i, ((_, view), rows) in enumerate(zip(members, feature_parts)):
        parts.append(rows.select(
            *[(_col(c) if c in view.entities else F.lit(None).cast(types[c])).alias(c) for c in cols],
            F.greatest(view.feature_ts, view.created_ts).alias(KNOWN),
            F.lit(0).alias(ORDER),  # feature rows first on ties: known at t counts
            F.lit(0).alias(SALT), *nulls(i)))
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    union = union.repartition(_col(lead))  # one shuffle: clusters every (lead, ...) window below
    outputs = []
    for (_, view), value in zip(members, values):
        window = (Window.partitionBy(*map(_col, view.entities), SALT).orderBy(KNOWN, ORDER)
                  .rowsBetween(Window.unboundedPreceding, Window.currentRow))
        best = F.max(value).over(window)
        union = union.withColumn(value, best)
        b = F.col(value)
        fresh = b.getField(FTS) >= F.col(KNOWN) - F.expr(f"INTERVAL {int(view.ttl.total_seconds())} SECONDS")
        found = F.coalesce(b.isNotNull() & fresh, F.lit(False))
        outputs += [*[F.when(found, b.getField(f.name)).alias(view.column(f.name)) for f in view.features],
                    F.when(found, b.getField(FTS)).alias(view.column("feature_ts")),
                    (~found).alias(view.missing_column)]
    return union.where(F.col(ORDER) == 1).select(*map(_col, cols), *outputs)
