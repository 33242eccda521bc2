"""How many of the last days the training set holds out for validation and for test.

``training.validation_days`` / ``training.test_days`` given: those. Null (the default): chosen from the data,
so that a config carries from one dataset to another: the test days are the fewest last days that hold at
least ``training.holdout_fraction`` of the range's impressions, the validation days likewise the fewest
days before them, and at least one day is always left to train on. The synthetic world (four days of
equal volume) gets one day each, as before; MovieLens-100K (ratings on 213 days, fewer towards the end)
would get 23 test and 29 validation days at 10 % (``config/movielens-100k.yaml`` keeps its 21 and 14).

Every step that splits by day (the training set, the graph's evaluation edges, CF's cut-off, the DAG's
window) resolves the same counts the same way; the orchestrators resolve once per run
(:func:`with_holdout`) so that the steps agree and their fingerprints hold numbers, not nulls.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

from pinrec.jobs.config import PinrecConfig, TrainingSetConfig

__all__ = ["count_impressions", "holdout_days", "resolve_for", "resolved", "with_holdout"]


def _fewest(counts: list[int], target: float) -> int:
    """The fewest last entries of ``counts`` whose sum reaches ``target`` (all of them if none does)."""
    total = 0
    for taken, n in enumerate(reversed(counts), 1):
        total += n
        if total >= target:
            return taken
    return len(counts)


def holdout_days(counts: Mapping[dt.date, int], cfg: TrainingSetConfig) -> tuple[int, int]:
    """``(validation_days, test_days)`` for the days of ``counts`` (impressions per day): the configured
    numbers, or where null the data's (module docstring). Raises ValueError when nothing is left to
    train on, naming the settings."""
    days = sorted(counts)
    volume = [int(counts[d]) for d in days]
    target, n = cfg.holdout_fraction * sum(volume), len(volume)
    # a null number: at least one day, and never so many that no validation or training day is left
    spare = n - 1 - (cfg.validation_days if cfg.validation_days is not None else 1)
    test = cfg.test_days if cfg.test_days is not None else max(min(_fewest(volume, target), spare), 1)
    rest = volume[:max(n - test, 0)]
    validation = (cfg.validation_days if cfg.validation_days is not None
                  else max(min(_fewest(rest, target), len(rest) - 1), 1))
    if n <= validation + test:
        raise ValueError(f"{len(days)} day(s) with impressions cannot hold training.validation_days={validation} + "
                         f"training.test_days={test} and still leave a training day "
                         f"(null: chosen from the data, at least one day each)")
    return validation, test


def resolved(cfg: TrainingSetConfig, counts: Mapping[dt.date, int]) -> TrainingSetConfig:
    """``cfg`` with both numbers set (:func:`holdout_days`); unchanged when both are given."""
    if cfg.validation_days is not None and cfg.test_days is not None:
        return cfg
    validation, test = holdout_days(counts, cfg)
    return dataclasses.replace(cfg, validation_days=validation, test_days=test)


def with_holdout(cfg: PinrecConfig, counts: Mapping[dt.date, int]) -> PinrecConfig:
    """The whole config with ``training``'s held-out days resolved (:func:`resolved`)."""
    training = resolved(cfg.training, counts)
    return cfg if training is cfg.training else dataclasses.replace(cfg, training=training)


def count_impressions(catalog, days: list[dt.date]) -> dict[dt.date, int]:
    """Impressions per day of ``days`` in the warehouse (one Spark job; a day without any counts 0)."""
    from pyspark.sql import functions as F

    rows = (catalog.read("impressions").where(F.col("dt").isin(list(days)))
            .groupBy("dt").count().collect())
    found = {r["dt"]: int(r["count"]) for r in rows}
    return {d: found.get(d, 0) for d in days}


def resolve_for(cfg: PinrecConfig, catalog, days: list[dt.date]) -> PinrecConfig:
    """``cfg`` with the held-out days of the range ``days`` resolved from the warehouse's impressions
    (``catalog``: a :class:`~pinrec.jobs.io.catalog.Catalog` or a function returning one, called only
    when a number is null)."""
    if cfg.training.validation_days is not None and cfg.training.test_days is not None:
        return cfg
    return with_holdout(cfg, count_impressions(catalog if not callable(catalog) else catalog(), days))
