"""ALS for the cf channel: the held-out split and recall, the choice of settings, the final fit (inline logs)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.cf.cf_model import fit_cf, holdout_days, holdout_recall, holdout_split
from pinrec.jobs.cf.config import CfConfig
from pinrec.schemas.config_base import ConfigError

CUTOFF = dt.datetime(2026, 1, 4)  # naive = UTC, as the pipeline's cut-offs
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def log_of(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "pin_id", "ts"])


def planted(users: int = 40, per_group: int = 30, seen: int = 10, held: int = 3, seed: int = 0) -> pd.DataFrame:
    """Two taste groups with disjoint pins (group g: pins 100g .. 100g + per_group - 1); every user
    engages with ``seen`` group pins on days 1-2 and ``held`` more on day 3 (the held-out day)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        pins = 100 * (u % 2) + rng.choice(per_group, seen + held, replace=False)
        for i, p in enumerate(pins):
            day = 2 if i >= seen else i % 2
            rows.append((u, int(p), T0 + pd.Timedelta(days=day, hours=i)))
    return log_of(rows)


def test_the_held_out_slice_is_the_last_validation_days_before_the_cutoff():
    log = log_of([(1, 10, T0), (1, 11, T0 + pd.Timedelta(days=2, hours=23)), (2, 12, T0 + pd.Timedelta(days=3) -
                                                                                pd.Timedelta(microseconds=1))])
    train, held = holdout_split(log, dt.datetime(2026, 1, 4), 2)  # held out: from 2026-01-02 00:00 UTC
    assert train["pin_id"].tolist() == [10] and held["pin_id"].tolist() == [11, 12]


def test_null_validation_days_are_the_fewest_last_days_holding_the_fraction():
    cutoff = dt.datetime(2026, 1, 11)
    # ten days back from the cut-off: 1 row on each of the last 5 days, 10 rows on each of the 5 before
    rows = [(1, 10 + i, pd.Timestamp(cutoff) - pd.Timedelta(days=age, hours=1))
            for i, age in enumerate([0, 1, 2, 3, 4] + [a for a in range(5, 10) for _ in range(10)])]
    log = log_of(rows)  # 55 rows: 10 % is 5.5, reached after the sixth day back
    assert holdout_days(log, cutoff, 0.1) == 6 and holdout_days(log, cutoff, 0.05) == 3
    assert holdout_days(log, cutoff, 0.49) == 8  # 28 rows by then
    one_day = log_of([(1, 10, pd.Timestamp(cutoff) - pd.Timedelta(hours=h)) for h in (1, 2, 3)])
    assert holdout_days(one_day, cutoff, 0.1) == 1  # nothing left to train on: fit_cf measures nothing
    fit = fit_cf(log, cutoff, CfConfig(iterations=2, search_factors=(2,), search_regularization=(0.1,),
                                       search_alpha=(1.0,)))
    assert fit.validation_days == 6
    assert fit_cf(log, cutoff, CfConfig(validation_days=2, iterations=2)).validation_days == 2


def test_holdout_recall_counts_the_top_k_without_the_users_own_pins():
    users, items = np.array([1, 2]), np.array([10, 20, 30, 40])
    scores = np.array([[9.0, 1.0, 5.0, 3.0], [0.0, 9.0, 1.0, 2.0]])
    train = log_of([(1, 10, T0), (2, 20, T0)])
    held = log_of([(1, 20, T0), (1, 30, T0), (2, 40, T0), (2, 99, T0),  # 99: no factor, not counted
                   (2, 20, T0), (3, 10, T0)])  # 20: user 2's own training pin; user 3: no factor
    # user 1: top-2 of {20: 1, 30: 5, 40: 3} is {30, 40}: 1 of its 2 held-out pins; user 2: {40, 30}: 1 of 1
    assert holdout_recall(lambda pos: scores[pos], users, items, train, held, 2) == (0.75, 2)
    assert holdout_recall(lambda pos: scores[pos], users, items, train, held, 1) == (0.75, 2)  # 30 for 1; 40 for 2
    assert holdout_recall(lambda pos: scores[pos], users, items, train, held.iloc[3:4], 2)[1] == 0


def test_the_best_setting_on_the_held_out_day_is_refitted_on_everything():
    cfg = CfConfig(validation_k=10, search_factors=(2, 8), search_regularization=(0.1,), search_alpha=(1.0, 20.0),
                   iterations=10)
    log = planted()
    fit = fit_cf(log, CUTOFF, cfg)
    assert [(r["factors"], r["alpha"]) for r in fit.validation] == [(2, 1.0), (2, 20.0), (8, 1.0), (8, 20.0)]
    best = max(fit.validation, key=lambda r: r["recall"])
    assert fit.params == {k: best[k] for k in ("factors", "regularization", "alpha")}
    assert fit.validation_users == 40 and fit.interactions == len(log)
    # the taste groups are what ALS finds and popularity cannot: a top 10 of the 20 unseen pins of the
    # user's group recalls ~1/2 (measured 0.57), popularity 0.18
    assert best["recall"] > 0.3 and best["recall"] > 1.5 * fit.popularity_recall
    f = fit.factors  # the final fit: every user and pin of the whole log, held-out day included
    assert f.user_ids.tolist() == list(range(40)) and set(f.pin_ids) == set(log["pin_id"])
    assert f.user_factors.shape == (40, fit.params["factors"]) == (40, f.item_factors.shape[1])
    top = f.pin_ids[np.argsort(-(f.item_factors @ f.user_factors[3]))[:10]]
    assert all(100 <= p < 200 for p in top)  # user 3 is in group 1


def test_without_a_held_out_slice_the_configured_settings_are_used():
    cfg = CfConfig(factors=4, regularization=0.5, alpha=3.0, validation_days=0, iterations=5)
    fit = fit_cf(planted(), CUTOFF, cfg)
    assert fit.params == {"factors": 4, "regularization": 0.5, "alpha": 3.0}
    assert fit.validation == () and fit.popularity_recall is None and fit.validation_users == 0
    # a slice with no user seen before it: nothing measured, the configured settings again
    fresh = log_of([(1, 10, T0), (2, 11, T0 + pd.Timedelta(days=2, hours=1))])
    fit = fit_cf(fresh, CUTOFF, dataclasses.replace(cfg, validation_days=1))
    assert fit.params == cfg.params() and fit.validation == ()


def test_engagement_at_or_after_the_cutoff_and_an_empty_log_are_refused():
    with pytest.raises(ValueError, match=r"holds 1 row\(s\) at or after the cut-off 2026-01-04"):
        fit_cf(log_of([(1, 10, T0), (1, 11, pd.Timestamp(CUTOFF, tz="UTC"))]), CUTOFF, CfConfig())
    with pytest.raises(ValueError, match="no engagement before the cut-off"):
        fit_cf(log_of([]), CUTOFF, CfConfig())


def test_config_grid_and_validation():
    cfg = CfConfig(search_factors=(8, 16), search_regularization=(), search_alpha=(2.0,))
    assert cfg.grid() == [{"factors": 8, "regularization": 0.01, "alpha": 2.0},
                          {"factors": 16, "regularization": 0.01, "alpha": 2.0}]
    assert CfConfig(validation_days=0).grid() == [CfConfig().params()]
    with pytest.raises(ConfigError, match="search_factors repeats"):
        CfConfig(search_factors=(8, 8))
    with pytest.raises(ConfigError, match="cf.actions"):
        CfConfig(actions=())
    with pytest.raises(ConfigError, match="cf.factors"):
        CfConfig(factors=0)
    with pytest.raises(ConfigError, match="actions"):
        CfConfig(actions=("click",))
