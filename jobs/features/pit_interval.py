"""Interval point-in-time join: a large feature view becomes validity intervals, then one hash join.

The same rule as :mod:`pinrec.jobs.features.pit_join` (of the rows of key ``k`` known at ``t``, i.e.
``known_ts = max(feature_ts, created_ts) <= t``, the freshest by ``(feature_ts, created_ts)``, if
``feature_ts >= t - ttl``), for feature tables too large to broadcast, without sorting the spine:

1. feature side only (a window over the feature rows, not over the spine): within each key, rows
   ordered by ``known_ts``, the running ``max`` of ``struct(feature_ts, created_ts, values)`` is the
   freshest row known from that row's ``known_ts`` until the next row's (the window path's
   expression, so duplicates with ``validate=False`` resolve the same way); it holds on the interval
   ``[known_ts, min(next known_ts, feature_ts + ttl + 1 us))``. Rows tied in ``known_ts`` give empty
   intervals but the last, which holds their max; empty intervals are dropped, so a key's intervals are
   disjoint;
2. each interval is listed once per time bucket it overlaps (``bucket = floor(t / width)``, ``width``
   half the view's TTL, :func:`bucket_width`; an interval never outlives its row's TTL, so it spans
   at most three buckets); a first-entity value with more than ``ROWS_PER_BUCKET`` rows per
   bucket over its history (a hot key) gets buckets 4^level times narrower on both sides
   (:func:`levels`: one small aggregate per view; one job at planning checks whether there are
   any, and without them the join has no level lookups);
3. the spine, left outer hash join on (first entity, bucket) with the other entity columns equal and
   ``start <= t < end`` (a shuffled hash join: the intervals are the build side, the spine streams
   through it, unsorted). A spine row matches at most one interval; none: ``missing``. Views sharing
   their first entity column and TTL (``user`` and ``(user, category)``) share one shuffle of the spine: the
   other entity columns are compared in the join condition, not as join keys, so every join of the
   group needs the partitioning the first produced.

Cost: one shuffle of the spine per first entity column (and TTL), no sort and no window over the spine, no
Python; a hot key's spine rows stream (nothing is buffered per key); a key updated much more often
than every half TTL makes each probe scan its intervals in that bucket (and, for a composite key,
those of the first entity's other values). Types: those
:func:`pinrec.jobs.features.pit_broadcast.supported` accepts (integral or string keys,
``timestamp`` times); other views take the window path.
"""
from __future__ import annotations

BUCKETS_PER_TTL = 2
#: a key with more feature rows than this per bucket (on average over its history) gets buckets
#: 4^level times narrower, so a probe scans about this many intervals, not a hot key's thousands
ROWS_PER_BUCKET, MAX_LEVEL = 8, 15
START, END, BUCKET, T_US = "__pit_start", "__pit_end", "__pit_bucket", "__pit_t_us"
SPINE_BUCKET, VALUE, NEXT = "__pit_spine_bucket", "__pit_value", "__pit_next"
KEY, LEVEL = "__pit_level_key", "__pit_level"
FTS, CTS = "__pit_fts", "__pit_cts"  # struct fields: no clash with a feature's name


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _bucket(micros, width):
    """``floor(micros / width)`` exactly, negative times included (integer arithmetic); ``width``
    a long column."""
    from pyspark.sql import functions as F

    # an exact multiple of width over width: exact in a double below 2^53 us (the year 2255)
    return ((micros - F.pmod(micros, width)) / width).cast("long")


def _width(width: int):
    """The bucket width of a row's key at its ``LEVEL``: ``width / 4^level``, at least 1 microsecond."""
    from pyspark.sql import functions as F

    return F.expr(f"greatest(shiftright(CAST({int(width)} AS BIGINT), 2 * {LEVEL}), 1L)")


def levels(members, width: int, key_type):
    """Per first-entity value, the bucket level its densest view needs (only levels > 0: the hot
    keys, a small table): rows per bucket of ``width`` over the key's span of known times, above
    ``ROWS_PER_BUCKET``, raise the level by one per factor of 4."""
    from pyspark.sql import functions as F

    parts = []
    for features, view in members:
        valid = F.lit(True)
        for c in (*view.entities, view.feature_ts, view.created_ts):
            valid = valid & F.col(c).isNotNull()
        known = F.unix_micros(F.greatest(view.feature_ts, view.created_ts))
        stats = features.where(valid).groupBy(_col(view.entities[0]).cast(key_type).alias(KEY)).agg(
            F.count(F.lit(1)).alias("n"), (F.max(known) - F.min(known)).alias("span"))
        density = F.col("n") * F.lit(float(width)) / F.greatest(F.col("span").cast("double"), F.lit(float(width)))
        level = F.least(F.lit(MAX_LEVEL), F.ceil(F.log(4.0, density / ROWS_PER_BUCKET))).cast("int")
        parts.append(stats.where(density > ROWS_PER_BUCKET).select(KEY, level.alias(LEVEL)))
    table = parts[0]
    for p in parts[1:]:
        table = table.unionByName(p)
    return table.groupBy(KEY).agg(F.max(LEVEL).alias(LEVEL)) if len(parts) > 1 else table


def _with_level(df, lead: str, hot):
    """``df`` plus ``LEVEL`` (0 unless its ``lead`` value is in ``hot``), by a broadcast join;
    ``hot`` None: 0 everywhere."""
    from pyspark.sql import functions as F

    if hot is None:
        return df.select("*", F.lit(0).alias(LEVEL))
    joined = df.join(F.broadcast(hot), _col(lead) == F.col(KEY), "left_outer")
    return joined.select(*map(_col, df.columns), F.coalesce(F.col(LEVEL), F.lit(0)).alias(LEVEL))


def intervals(features, view, width: int, hot):
    """``view``'s feature rows as validity intervals: one row per (key, interval, bucket) with the
    entity columns, ``START``/``END`` (microseconds, end exclusive), ``BUCKET`` and the freshest
    row's ``feature_ts`` and features (:func:`_value_columns`). Buckets are ``width`` microseconds wide, 4^level
    times narrower for the first-entity values in ``hot`` (:func:`levels`; None: none)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ttl_us = int(view.ttl.total_seconds() * 1_000_000)
    valid = F.lit(True)
    for c in (*view.entities, view.feature_ts, view.created_ts):
        valid = valid & F.col(c).isNotNull()
    known = F.unix_micros(F.greatest(view.feature_ts, view.created_ts))
    value = F.struct(F.col(view.feature_ts).alias(FTS), F.col(view.created_ts).alias(CTS),
                     *[F.col(f.name) for f in view.features])
    order = Window.partitionBy(*map(_col, view.entities)).orderBy(START)
    rows = features.where(valid).select(*map(_col, view.entities), known.alias(START), value.alias(VALUE))
    rows = rows.select(*map(_col, view.entities), START,
                       F.max(VALUE).over(order.rowsBetween(Window.unboundedPreceding, Window.currentRow)).alias(VALUE),
                       F.lead(START).over(order).alias(NEXT))
    stale = F.unix_micros(F.col(VALUE).getField(FTS)) + F.lit(ttl_us + 1)  # first t it is too old for
    end = F.least(F.coalesce(F.col(NEXT), stale), stale)
    # flat value columns before the explode: Spark 4.2's nested-column pruning through a Generate
    # loses fields it extracted (INTERNAL_ERROR_ATTRIBUTE_NOT_FOUND _extract_<feature>)
    rows = rows.select(*map(_col, view.entities), START, end.alias(END),
                       *[F.col(VALUE).getField(n).alias(v) for n, v in zip(_fields(view), _value_columns(view))])
    rows = rows.where(F.col(END) > F.col(START))
    rows = _with_level(rows, view.entities[0], hot)
    w = _width(width)
    buckets = F.sequence(_bucket(F.col(START), w), _bucket(F.col(END) - 1, w))
    return rows.select(*map(_col, view.entities), START, END, *_value_columns(view), F.explode(buckets).alias(BUCKET))


def _fields(view) -> list[str]:
    return [FTS, *(f.name for f in view.features)]


def _value_columns(view) -> list[str]:
    """The flat names of ``_fields(view)`` on the build side."""
    return [f"{VALUE}_{i}" for i in range(len(view.features) + 1)]


def bucket_width(view) -> int:
    """Microseconds per time bucket of ``view``: half its TTL (at least 1)."""
    return max(int(view.ttl.total_seconds() * 1_000_000) // BUCKETS_PER_TTL, 1)


def interval_join(spine, members, spine_ts: str):
    """Attach the columns of every ``(features, view)`` of ``members`` (one first entity column) to
    every row of ``spine`` (kept, in no particular order): one shuffle of the spine per distinct
    bucket width (TTL) among them, each view hash-joined on (first entity, bucket), its other entity
    columns compared in the join condition."""
    by_width: dict[int, list] = {}
    for features, view in members:
        by_width.setdefault(bucket_width(view), []).append((features, view))
    out = spine
    for width, group in by_width.items():
        out = _join_width(out, group, spine_ts, width)
    return out


def _join_width(spine, members, spine_ts: str, width: int):
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType, LongType

    cols = spine.columns
    lead_name = members[0][1].entities[0]
    lead_type = spine.schema[lead_name].dataType
    # integral keys as bigint: a feature id wider than the spine's key type must not overflow the cast
    hot = levels(members, width, LongType() if isinstance(lead_type, IntegralType) else lead_type)
    if hot.isEmpty():  # one small job: without hot keys the join needs no level lookups at all
        hot = None
    t_us = F.unix_micros(_col(spine_ts))
    out = _with_level(spine, lead_name, hot)
    out = out.select(*map(_col, cols), t_us.alias(T_US), _bucket(t_us, _width(width)).alias(SPINE_BUCKET))
    added = []
    for features, view in members:
        names = {c: f"__pit_iv_{i}" for i, c in enumerate(view.entities)}  # the build side's key columns
        values = dict(zip(_fields(view), _value_columns(view)))
        table = intervals(features, view, width, hot).select(*[_col(c).alias(n) for c, n in names.items()],
                                                         START, END, BUCKET, *values.values())
        lead, *rest = names.items()
        on = [_col(lead[0]) == F.col(lead[1]), F.col(SPINE_BUCKET) == F.col(BUCKET)]
        # the other entity columns as a condition Spark does not take for a join key: keys equal
        # to the spine's shuffle keep its partitioning for the group's next view (no reshuffle)
        on += [F.coalesce(_col(c) == F.col(n), F.lit(False)) for c, n in rest]
        on += [F.col(START) <= F.col(T_US), F.col(T_US) < F.col(END)]
        joined = out.join(table.hint("shuffle_hash"), on, "left_outer")
        found = F.col(START).isNotNull()
        view_cols = [*[F.when(found, F.col(values[f.name])).alias(view.column(f.name)) for f in view.features],
                     F.when(found, F.col(values[FTS])).alias(view.column("feature_ts")),
                     (~found).alias(view.missing_column)]
        out = joined.select(*map(_col, [*cols, *added]), T_US, SPINE_BUCKET, *view_cols)
        added += [view.column(f.name) for f in view.features] + [view.column("feature_ts"), view.missing_column]
    return out.select(*map(_col, [*cols, *added]))
