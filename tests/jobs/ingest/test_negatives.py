"""Tests of :mod:`pinrec.jobs.ingest.negatives` and of sampled negative impressions in a landing: what is
drawn, how it lands (slates, positions, foreign keys), the auto rule, and evaluation reading the log's
own interactions back."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.datasets import InteractionLog, resolve_negatives, to_landing
from pinrec.jobs.ingest.negatives import sample_negative_impressions
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_data import evaluate_storage
from tests.jobs.ingest.test_datasets import assert_fk_order, read_table
from tests.support.logs import ts


def implicit_log(users: int = 30, items: int = 60, per_user: int = 8, seed: int = 0) -> InteractionLog:
    """A play log without ratings over 3 days; item i becomes available on day i % 3 (created_at)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for k, item in enumerate(rng.choice(items, per_user, replace=False)):
            day = max(int(item) % 3, k % 3)  # never before the item exists
            rows.append((u + 1, int(item), ts("2021-03-01") + pd.Timedelta(days=day, hours=int(rng.integers(24)))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(rating=1.0)
    return InteractionLog(
        users=pd.DataFrame({"user_id": np.arange(1, users + 1), "created_at": pd.NaT, "country": "ZZ",
                            "gender": "U", "age": pd.NA, "occupation": None}),
        items=pd.DataFrame({"item_id": np.arange(items), "category": [f"c{i % 4}" for i in range(items)],
                            "title": None, "created_at": [ts("2021-03-01") + pd.Timedelta(days=i % 3)
                                                          for i in range(items)]}),
        interactions=inter, source="p")


def test_negatives_are_fresh_distinct_available_and_seeded():
    log = implicit_log()
    pins = log.items.rename(columns={"item_id": "pin_id"}).assign(available=lambda f: f["created_at"])
    inter = log.interactions.sort_values("ts", ignore_index=True)
    draw = sample_negative_impressions(inter, pins, 3, seed=5)
    neg = draw.negatives
    assert len(neg) == 3 * len(inter) and draw.short == 0
    assert (neg.groupby("slate").size() == 3).all()
    own = set(zip(inter["user_id"], inter["item_id"]))
    assert not own & set(zip(neg["user_id"], neg["item_id"]))  # never a pin the user interacted with
    assert not neg.duplicated(["user_id", "item_id"]).any()  # shown to a user once
    assert (neg["user_id"].to_numpy() == inter["user_id"].to_numpy()[neg["slate"]]).all()
    assert (neg["ts"].to_numpy() == inter["ts"].to_numpy()[neg["slate"]]).all()
    available = pins.set_index("pin_id")["available"]
    assert (available.reindex(neg["item_id"]).to_numpy() <= neg["ts"].to_numpy()).all()
    pd.testing.assert_frame_equal(neg, sample_negative_impressions(inter, pins, 3, seed=5).negatives)
    assert not neg.equals(sample_negative_impressions(inter, pins, 3, seed=6).negatives)


def test_negatives_follow_popularity_known_by_then_and_run_short_when_the_catalogue_does():
    # day 1: users 100..139 each engage pin 0; day 2: users 1..400 each engage pin 41
    inter = pd.concat([pd.DataFrame({"user_id": np.arange(100, 140), "item_id": 0, "ts": ts("2021-01-01 12:00")}),
                       pd.DataFrame({"user_id": np.arange(1, 401), "item_id": 41, "ts": ts("2021-01-02 12:00")})],
                      ignore_index=True)
    pins = pd.DataFrame({"pin_id": np.arange(42), "available": ts("2020-01-01")})
    neg = sample_negative_impressions(inter, pins, 1, seed=0).negatives
    later = neg[neg["ts"] > ts("2021-01-02")]  # day 2: pin 0 weighs 1 + 40, pins 1..40 weigh 1 each
    share = (later["item_id"] == 0).mean()
    assert 0.40 < share < 0.62, share
    first = neg[neg["ts"] < ts("2021-01-02")]  # day 1: nothing engaged yet, pin 41's later 400 do not count
    assert len(first) == 40 and (first["item_id"] == 41).sum() <= 5
    one = pd.DataFrame({"user_id": [1, 1], "item_id": [0, 1], "ts": ts("2021-01-01")})
    draw = sample_negative_impressions(one, pins.iloc[:3], 2, seed=0)  # only pin 2 is left for user 1
    assert draw.negatives["item_id"].tolist() == [2] and draw.short == 2
    with pytest.raises(ValueError, match="per_interaction must be >= 0"):
        sample_negative_impressions(one, pins, -1)


def test_auto_rule():
    assert resolve_negatives(None, saves=10, interactions=10) == 1  # implicit: every interaction a save
    assert resolve_negatives(None, saves=4, interactions=10) == 0  # ratings below the threshold exist
    assert resolve_negatives(3, saves=4, interactions=10) == 3
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="dataset.negative_impressions"):
            resolve_negatives(bad, 1, 1)


def test_an_implicit_log_lands_with_negative_slates(tmp_path):
    log = implicit_log()
    summary = to_landing(log, tmp_path, save_threshold=1.0)  # auto: every interaction a save, so one negative each
    n = len(log.interactions)
    assert summary.negatives == 1 and summary.labels == {"impressions": 2 * n, "closeup": n, "save": n}
    imp = read_table(tmp_path, "impressions")
    acts = read_table(tmp_path, "actions")
    assert len(imp) == 2 * n and imp["event_id"].is_unique
    shown = imp[imp["event_id"].str.startswith("p-n-")]
    assert len(shown) == n and not shown["event_id"].isin(acts["impression_id"]).any()
    assert set(acts["impression_id"]) == set(imp["event_id"]) - set(shown["event_id"])
    # positions: 1..m within each session, and the engaged pin is not always first in its slate
    for _, session in imp.groupby("session_id"):
        assert sorted(session["position"]) == list(range(1, len(session) + 1))
    engaged = imp[~imp["event_id"].isin(shown["event_id"])]
    assert abs(engaged["position"].mean() - shown["position"].mean()) < 1.5
    assert_fk_order(tmp_path)


def test_an_explicit_log_lands_unchanged_unless_asked(tmp_path):
    log = implicit_log()
    rated = InteractionLog(log.users, log.items, log.interactions.assign(
        rating=np.where(np.arange(len(log.interactions)) % 2, 5.0, 2.0)), source="p")
    auto, none = to_landing(rated, tmp_path / "auto"), to_landing(rated, tmp_path / "zero", negatives=0)
    assert auto.negatives == 0 and auto.rows == none.rows
    pd.testing.assert_frame_equal(read_table(tmp_path / "auto", "impressions"),
                                  read_table(tmp_path / "zero", "impressions"))
    two = to_landing(rated, tmp_path / "two", negatives=2)
    assert two.labels["impressions"] == 3 * len(rated.interactions)
    assert_fk_order(tmp_path / "two")


def test_retrieval_evaluation_reads_the_logs_own_interactions(tmp_path):
    from pinrec.jobs.ingest.dataset_info import write_dataset_info

    log, cfg = implicit_log(), RetrievalEvalConfig(k=5, num_negatives=10, baselines=("popularity",))
    reports = {}
    for n in (0, 2):
        summary = to_landing(log, tmp_path / str(n), save_threshold=1.0, negatives=n)
        write_dataset_info(tmp_path / str(n), {"kind": "log", "timestamps": "column",
                                               "negative_impressions": summary.negatives})
        reports[n] = evaluate_storage(cfg, tmp_path / str(n))
    assert [r.metrics for r in reports[2].rows] == [r.metrics for r in reports[0].rows]
    assert reports[2].rows[0].queries == log.interactions["user_id"].nunique()
    assert "sampled negative" in reports[2].notes["source"] and "source" not in reports[0].notes


def test_a_log_file_without_ratings_lands_with_negatives_by_default(tmp_path):
    from pinrec.jobs.ingest.dataset_info import read_dataset_info
    from pinrec.jobs.ingest.log_reader import LogSpec, load_log

    inter = implicit_log().interactions
    path = tmp_path / "plays.csv"
    inter.assign(ts=inter["ts"].astype("int64") // 10**9)[["user_id", "item_id", "ts"]].to_csv(path, index=False)
    summary = load_log(path, tmp_path / "landing", LogSpec(timestamp="ts"))
    # without created_at a pin is available from its first interaction: the first slates have few to draw from
    assert summary.negatives == 1 and 2 * len(inter) - 3 <= summary.labels["impressions"] < 2 * len(inter)
    assert read_dataset_info(tmp_path / "landing")["negative_impressions"] == 1
    assert load_log(path, tmp_path / "none", LogSpec(timestamp="ts"), negatives=0).labels["impressions"] == len(inter)


def test_popularity_is_recounted_over_at_most_periods_whole_days():
    from pinrec.jobs.ingest.negatives import PERIODS, _periods

    day = 86_400 * 10**9
    times = np.repeat(np.arange(200) * day, np.arange(200) % 7 + 1) + 3_600 * 10**9  # 200 days, uneven volume
    period = _periods(times)
    assert period.max() + 1 <= PERIODS and (np.diff(period) >= 0).all()
    assert all(len(set(period[times // day == d])) == 1 for d in range(200))  # a day is never split
    few = np.arange(5) * day
    assert _periods(few).tolist() == [0, 1, 2, 3, 4]  # up to PERIODS days: one period per day
