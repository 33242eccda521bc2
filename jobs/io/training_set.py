"""The training set as its newest build defines it: the rows its readers use, and their ``split``.

A build (:func:`pinrec.jobs.features.training_set.build_training_set`) replaces only its own days'
partitions and labels them train / validation / test relative to those days; other days keep the
label an earlier build gave them. A build over older days after one over newer days (a backfill, a
CLI ``--start/--end``) would then leave a test day before train days and two test periods in the
table. So every reader (the ranker, the two-tower model, drift monitoring, the funnel's check) reads
it through :func:`current_training_set`, which goes by the newest commit that wrote days (the
``wrote_days`` :meth:`~pinrec.jobs.io.catalog.Catalog.write` records):

* its days keep the split it gave them;
* earlier days are ``train``: they precede its validation and test days, whatever an older build
  called them (rows, labels and features are as point-in-time as ever; only the label is stale);
* later days (left by a build over a later range), and days in its range it did not write, are left
  out: they would follow its test days.

A table no commit wrote with ``days=`` is read as it is.
"""
from __future__ import annotations

import datetime as dt

TABLE = "training_set"


def defining_days(catalog, version: int) -> list[dt.date] | None:
    """The days written by the newest commit of the training set at or before ``version`` that
    wrote days (its ``wrote_days``); None when no commit did. Reads commit files only (no job)."""
    meta = catalog.user_metadata(TABLE, version)
    if "wrote_days" not in meta:  # e.g. a maintenance commit on top: look further back
        meta = next((c.user_metadata for c in catalog.history(TABLE)
                     if c.version <= version and "wrote_days" in c.user_metadata), {})
    days = meta.get("wrote_days")
    return None if days is None else sorted(dt.date.fromisoformat(d) for d in days)


def current_training_set(catalog):
    """The ``training_set`` table at the catalog's pinned version (recorded in its reads, as any
    read), as its newest build defines it (module docstring): the same columns; rows of later days
    left out; ``split`` of earlier days ``train``."""
    from pyspark.sql import functions as F

    df = catalog.read(TABLE)
    days = defining_days(catalog, catalog.reads[TABLE])
    if not days:
        return df
    earlier = F.col("dt") < F.lit(days[0])
    return (df.where(earlier | F.col("dt").isin(days))
            .withColumn("split", F.when(earlier, F.lit("train")).otherwise(F.col("split"))))
