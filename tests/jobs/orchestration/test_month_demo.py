"""The whole demo on an interaction log that lands by month: every step runs and the bundle serves."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.support.repo import REPO

START = dt.datetime(2003, 1, 6, tzinfo=dt.UTC)
SPAN_DAYS = 130  # Jan 6 .. May 15, 2003: five calendar months, more days than dataset.max_partitions
LAST_DAY = dt.date(2003, 5, 16)


def write_log(folder, implicit: bool = False):
    """A seeded log of 60 users rating 48 items of 4 categories over :data:`SPAN_DAYS` days (each user
    prefers one category: ratings >= 4 there, i.e. saves), and its item-metadata file. ``implicit``: the
    log of the saves alone, without the rating column (a play or click log)."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    items = [(i, f"c{i % 4}") for i in range(1, 49)]
    (folder / "items.csv").write_text("item,genre\n" + "".join(f"{i},{c}\n" for i, c in items))
    rows = []
    for user in range(1, 61):
        liked = user % 4
        rated = rng.choice(48, size=rng.integers(15, 30), replace=False) + 1
        for item in rated:
            seconds = int(rng.integers(0, SPAN_DAYS * 86_400))
            ts = (START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rating = int(rng.integers(4, 6)) if item % 4 == liked else int(rng.integers(1, 4))
            rows.append((ts, user, int(item), rating))
        if user <= 4:  # the log's last day, mid-May (the funnel's replayed day): four saves
            fresh = next(i for i in range(1, 49) if i % 4 == liked and i not in rated)
            rows.append((LAST_DAY.strftime("%Y-%m-%dT12:00:00Z"), user, fresh, 5))
    rows.sort()
    if implicit:
        (folder / "log.csv").write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for t, u, i, r in rows if r >= 4))
    else:
        (folder / "log.csv").write_text("user,item,ts,rating\n" + "".join(f"{u},{i},{t},{r}\n" for t, u, i, r in rows))
    return folder


def log_config(data, root, ranker: dict | None = None, **dataset):
    """The demo's config for the log in ``data``, everything under ``root``; ``ranker``: ranker and calibration
    sections (default: the save task alone, as config/movielens-100k.yaml)."""
    from pinrec.jobs.config import load_config

    # as config/movielens-100k.yaml: every rating is a closeup, so the ranker learns the save (rating >= 4) only
    ranker = {"ranker": {"tasks": ["save"]}, "calibration": {"score_weights": [1.0]}} if ranker is None else ranker
    return load_config(overrides={**ranker,
        "storage": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse"),
                    "artifacts": str(root / "artifacts"), "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db"},
        "publish": {"store_uri": str(root / "serving")},
        "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
        "dataset": {"kind": "log", "path": str(data / "log.csv"), "user_column": "user", "item_column": "item",
                    "timestamp_column": "ts", "rating_column": "rating", "items": str(data / "items.csv"),
                    "category_column": "genre", "max_partitions": 6, **dataset},
        "training": {"maturity_s": 60, "negative_rate": 1.0, "validation_days": 14, "test_days": 14},
        "pinsage": {"epochs": 1, "progress": False},
        "two_tower": {"epochs": 2, "temperatures": [0.1], "progress": False, "device": "cpu"},
        "ranker_train": {"epochs": 2, "batch_size": 256, "progress": False, "device": "cpu"},
        # a few dozen test saves: AUC is noise; over 130 days pins age (age drift 2.7) and a ranker of two epochs
        # scores the snapshot's day far from its training days (score PSI 5.8): the drift gate (tested on its own
        # in tests/jobs/orchestration/test_demo.py) would keep this bundle off the channel
        "blessing": {"min_auc": 0.0, "max_feature_drift": 10.0, "max_score_psi": 10.0},
    })


@pytest.mark.spark
def test_the_landing_step_lands_a_configured_log_and_reuses_it_until_the_log_or_its_item_file_changes(spark, tmp_path):
    from pinrec.jobs.orchestration.cached_steps import Steps
    from pinrec.jobs.orchestration.step_cache import Cached, StepCache

    data = write_log(tmp_path / "data")
    cfg = log_config(data, tmp_path / "run")

    def landing():
        return Steps(cfg, spark, StepCache(cfg.cache), echo=lambda line: None).landing()

    first = landing()
    assert not isinstance(first, Cached) and first.partition == "month" and len(first.rows["impressions"]) == 5
    again = landing()
    assert isinstance(again, Cached) and again.output.partition == "month" and again.output.rows == first.rows
    assert again.output.labels == first.labels and again.output.labels["closeup"] == first.labels["impressions"]
    items = data / "items.csv"
    items.write_text(items.read_text().replace(",c3\n", ",c2\n"))  # the item file is an input too
    relanded = landing()
    assert not isinstance(relanded, Cached) and relanded.rows == first.rows
    pins = (tmp_path / "run" / "landing" / "pins")
    assert "c3" not in "".join(f.read_text() for f in pins.rglob("*.jsonl"))


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.full
def test_the_demo_runs_every_step_on_a_month_landed_log_and_serves_its_bundle(spark, tmp_path):
    from pinrec.export.serving.loader import load
    from pinrec.jobs.ingest.dataset_info import partition_granularity
    from pinrec.jobs.orchestration.demo import run_demo

    data = write_log(tmp_path / "data")
    cfg = log_config(data, tmp_path / "run")
    result = run_demo(cfg, echo=lambda line: None)

    landing = cfg.storage.location("landing")
    assert result.landing.partition == "month" and partition_granularity(landing) == "month"
    months = {d.strftime("%Y-%m") for d in result.landing.rows["impressions"]}
    assert months == {"2003-01", "2003-02", "2003-03", "2003-04", "2003-05"}
    lines = (data / "log.csv").read_text().splitlines()[1:]
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert rows["impressions"] == len(lines) and rows["pins"] == 48 and rows["users"] == 60
    assert sum(r.rows_quarantined for r in result.reports) == 0
    # each event went to its own day: the training set spans the log's days, not its months' first days
    days = {t.name: t.days for t in result.warehouse.tables}
    assert days["impressions"] > 5 * 20
    assert all(n > 0 for n in result.training_set.rows_by_split.values())
    ran = set(result.steps)
    assert {"ingest", "features", "training set", "graph", "pinsage", "two-tower", "cf", "ranker",
            "index"} <= ran and any(s.startswith("publish") for s in ran)
    assert result.bundle.blessed and result.bundle.promoted
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    assert bundle.version == result.bundle.version and bundle.ntotal == 48
    funnel = result.bundle.funnel  # the newest event day replayed (not its month's first day)
    assert funnel.day == LAST_DAY.isoformat() and funnel.users >= 1
    assert bundle.manifest.metrics.funnel == funnel.metrics
    known = [items for user, items in result.recommendations.items() if user >= 0]
    assert known and all(0 < len(items) <= 10 for items in known)
    assert result.report is not None and result.report.is_file()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.full
def test_the_demo_runs_on_an_implicit_log_with_the_default_ranker_tasks(spark, tmp_path):
    """A log without ratings (every interaction a save) lands with one sampled negative impression per
    interaction, so both default tasks (save, closeup) have both labels and every step runs."""
    from pinrec.jobs.orchestration.demo import run_demo

    data = write_log(tmp_path / "data", implicit=True)
    cfg = log_config(data, tmp_path / "run", ranker={}, rating_column=None)
    assert cfg.ranker.tasks == ("save", "closeup")
    result = run_demo(cfg, echo=lambda line: None)
    interactions = len((data / "log.csv").read_text().splitlines()) - 1
    assert result.landing.negatives == 1 and result.landing.labels["closeup"] == interactions
    rows = {t.name: t.rows for t in result.warehouse.tables}
    assert interactions < rows["impressions"] <= 2 * interactions
    assert sum(r.rows_quarantined for r in result.reports) == 0
    assert {"ingest", "training set", "pinsage", "two-tower", "cf", "ranker", "index"} <= set(result.steps)
    assert result.bundle.blessed and result.bundle.promoted
    from pinrec.export.serving.loader import load

    auc = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel).manifest.metrics.auc
    assert set(auc) == {"save", "closeup"} and all(value > 0.5 for value in auc.values()), auc
