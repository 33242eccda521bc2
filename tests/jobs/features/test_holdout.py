"""Tests of :mod:`pinrec.jobs.features.holdout`: the held-out days chosen from the data when the config
leaves them null, kept when it sets them."""
from __future__ import annotations

import datetime as dt

import pytest

from pinrec.jobs.config import PinrecConfig, TrainingSetConfig
from pinrec.jobs.features.holdout import holdout_days, resolved, with_holdout
from pinrec.jobs.features.training_set import split_days

START = dt.date(2024, 1, 1)


def counts(*volume: int) -> dict[dt.date, int]:
    return {START + dt.timedelta(days=i): n for i, n in enumerate(volume)}


def test_null_days_hold_the_fraction_of_impressions_and_leave_a_training_day():
    auto = TrainingSetConfig()
    assert (auto.validation_days, auto.test_days, auto.holdout_fraction) == (None, None, 0.1)
    assert holdout_days(counts(100, 100, 100, 100), auto) == (1, 1)  # the synthetic world's four equal days
    # busy early days, a quiet tail: the test days reach back until they hold 10 % (105 of 1,050)
    tail = counts(*[100] * 10, *[5] * 10)
    assert holdout_days(tail, auto) == (2, 11)
    assert holdout_days(tail, TrainingSetConfig(holdout_fraction=0.3)) == (4, 13)
    # set numbers are kept, a null one is chosen before the set one
    assert holdout_days(tail, TrainingSetConfig(validation_days=3, test_days=2)) == (3, 2)
    assert holdout_days(tail, TrainingSetConfig(test_days=2)) == (9, 2)  # 8 quiet days + a busy one
    assert holdout_days(tail, TrainingSetConfig(validation_days=3)) == (3, 11)
    assert holdout_days(counts(5, 0, 7), auto) == (1, 1)  # a day without impressions still counts as a day
    # a quiet tail never takes every day: a training and a validation day stay
    assert holdout_days(counts(100, 100, 5), auto) == (1, 1)
    assert holdout_days(counts(1000, 10, 10, 10, 10, 10), auto) == (1, 4)
    for few in (counts(9, 9), counts(9)):
        with pytest.raises(ValueError, match=r"cannot hold training.validation_days=1 \+ training.test_days=1"):
            holdout_days(few, auto)
    with pytest.raises(ValueError, match="holdout_fraction"):
        TrainingSetConfig(holdout_fraction=0.5)


def test_resolving_sets_both_numbers_once():
    given = TrainingSetConfig(validation_days=1, test_days=1)
    assert resolved(given, counts(1, 2, 3)) is given
    cfg = PinrecConfig()
    out = with_holdout(cfg, counts(*[100] * 10, *[5] * 10))
    assert (out.training.validation_days, out.training.test_days) == (2, 11) and out.seed == cfg.seed
    assert with_holdout(out, counts(1, 1, 1)) is out
    with pytest.raises(ValueError, match="resolve them from the days' impressions first"):
        split_days(list(counts(1, 1, 1)), TrainingSetConfig())
    assert split_days(list(counts(1, 1, 1)), resolved(TrainingSetConfig(), counts(1, 1, 1))) == {
        START: "train", START + dt.timedelta(days=1): "validation", START + dt.timedelta(days=2): "test"}
