"""A log landed by month goes through the steps after ingest as if it had landed daily, step cache included."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

DAY1, DAY2, DAY3 = dt.date(2003, 1, 6), dt.date(2003, 1, 7), dt.date(2003, 1, 8)


@pytest.mark.spark
@pytest.mark.full
def test_a_month_landed_log_gives_the_features_and_training_set_of_the_same_log_landed_daily(spark, tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.graph.graph import evaluation_start
    from pinrec.jobs.ingest.days import event_days, landed_partitions
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.orchestration.cached_training import PipelineSteps
    from pinrec.jobs.orchestration.step_cache import Cached, StepCache
    from tests.support.month_log import DAYS, MONTHS, land
    from tests.support.repo import REPO

    def config(name):
        root = tmp_path / name
        return load_config(overrides={
            "storage": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse"),
                        "artifacts": str(root / "artifacts")},
            "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
            "training": {"validation_days": 1, "test_days": 2}})

    def run(cfg):  # what the demo does from ingest to the training set
        steps = PipelineSteps(cfg, spark, StepCache(cfg.cache), echo=lambda line: None)
        landing = cfg.storage.location("landing")
        ingested = steps.ingest(landed_partitions(landing))
        days = event_days(landing, catalog=Catalog(spark, cfg.storage.warehouse))
        return steps, ingested, days, steps.features(days), steps.training_set(days)

    def table(cfg, name, order):
        frame = Catalog(spark, cfg.storage.warehouse).read(name).toPandas()
        frame = frame.map(lambda v: tuple(v) if isinstance(v, np.ndarray) else v)  # arrays (recent pins) compare
        return frame.drop(columns=[c for c in ("created_ts",) if c in frame]).sort_values(order, ignore_index=True)

    months, daily = config("months"), config("daily")
    assert land(tmp_path / "months" / "landing", by_month=True).partition == "month"
    assert land(tmp_path / "daily" / "landing", by_month=False).partition == "day"
    m_steps, (m_reports, _), m_days, (m_rows, _), m_set = run(months)
    _, (d_reports, _), d_days, (d_rows, _), d_set = run(daily)
    assert {r.table: r.rows_valid for r in m_reports} == {r.table: r.rows_valid for r in d_reports}
    assert m_days == d_days == DAYS and m_rows == d_rows and sum(m_rows.values()) > 0
    assert m_set.rows_by_split == d_set.rows_by_split
    assert m_set.rows_by_split == {"train": 10, "validation": 2, "test": 5}  # test: Mar 1, 4; validation: Feb 27
    assert evaluation_start(m_days, 2) == evaluation_start(d_days, 2) == evaluation_start(DAYS, 2)
    for name, order in (("features_user", ["user_id", "dt"]), ("features_pin", ["pin_id", "dt"]),
                        ("training_set", ["event_id"])):
        m_table = table(months, name, order)
        assert len(m_table) > 0, name
        pd.testing.assert_frame_equal(m_table, table(daily, name, order), obj=name)

    # An unchanged rerun reuses every month and day; a month rewritten recomputes its days and those after it only.
    again, (reports, reused), days, (rows, reused_days), training = run(months)
    assert days == DAYS
    assert (reports, reused, rows, reused_days) == ([], MONTHS, {}, DAYS) and isinstance(training, Cached)
    assert again.fingerprints["features"] == m_steps.fingerprints["features"]
    february = next((tmp_path / "months" / "landing" / "impressions" / "dt=2003-02-01").glob("*.jsonl"))
    february.write_text("".join(reversed(february.read_text().splitlines(keepends=True))))  # same rows, new bytes
    _, (reports, reused), _, (rows, reused_days), training = run(months)
    assert reused == MONTHS[:1] and {r.days for r in reports} == {tuple(MONTHS[1:])}
    assert reused_days == DAYS[:2] and rows and not isinstance(training, Cached)  # Feb 2 .. Mar 4 rebuilt
    assert training.rows_by_split == d_set.rows_by_split


def test_the_demo_lands_a_dataset_within_dataset_max_partitions(tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.dataset_info import partition_granularity
    from pinrec.jobs.orchestration.demo import fill_landing
    from tests.jobs.ingest.test_dataset_readers import write_fake_ml100k

    def land(name, bound):  # 4 ratings on 3 days of December 1997
        return fill_landing(load_config(overrides={
            "dataset": {"kind": "movielens-100k", "path": str(write_fake_ml100k(tmp_path / "ml")),
                        "max_partitions": bound}, "storage": {"landing": str(tmp_path / name)},
            "ranker": {"tasks": ["save"]}}))  # a log's impressions all have a closeup (config/movielens-100k.yaml)

    assert land("months", 2).partition == "month" and partition_granularity(tmp_path / "months") == "month"
    assert land("daily", 3).partition == "day" and len(land("daily", 3).rows["impressions"]) == 3


@pytest.mark.parametrize("labels, tasks, message", [
    ((12, 12, 12), ("save",), r"\['save'\] would have one label value: every one of the 12 impressions is a save"),
    ((12, 12, 0), ("save",), r"none of the 12 impressions is a save"),
    ((12, 12, 4), ("save", "closeup"), r"\['closeup'\] would have one label value: every landed impression"),
    ((24, 12, 12), ("save", "closeup"), None),  # sampled negatives: both tasks have both labels
    ((12, 12, 4), ("save",), None),
])
def test_a_dataset_the_ranker_cannot_learn_from_fails_right_after_landing(labels, tasks, message):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.landing import LandingSummary
    from pinrec.jobs.orchestration.cached_steps import check_pipeline_can_run

    cfg = load_config(overrides={"dataset": {"kind": "log", "path": "log.csv"}, "ranker": {"tasks": list(tasks)}})
    summary = LandingSummary(rows={"impressions": {DAY1: 3, DAY2: 3, DAY3: 1}},
                             labels=dict(zip(("impressions", "closeup", "save"), labels)))
    if message is None:
        check_pipeline_can_run(summary, cfg)
    else:
        with pytest.raises(ValueError, match=message):
            check_pipeline_can_run(summary, cfg)


def test_a_dataset_on_too_few_days_fails_right_after_landing():
    from pinrec.jobs.config import load_config
    from pinrec.jobs.ingest.landing import LandingSummary
    from pinrec.jobs.orchestration.cached_steps import check_pipeline_can_run

    fine = load_config(overrides={"dataset": {"kind": "log", "path": "log.csv"}, "ranker": {"tasks": ["save"]}})
    labels = {"impressions": 6, "closeup": 6, "save": 2}
    with pytest.raises(ValueError, match=r"every interaction is on one day \(dataset.timestamps=auto"):
        check_pipeline_can_run(LandingSummary(rows={"impressions": {DAY1: 6}}, labels=labels), fine)
    with pytest.raises(ValueError, match=r"2 day\(s\) with impressions cannot hold training.validation_days=1 \+ "
                                         r"training.test_days=1"):  # null: at least one each
        check_pipeline_can_run(LandingSummary(rows={"impressions": {DAY1: 3, DAY2: 3}}, labels=labels), fine)


def test_a_closeup_task_makes_the_landing_sample_negative_impressions():
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.cached_steps import landing_dataset

    def ds(tasks, **dataset):
        return landing_dataset(load_config(overrides={"dataset": {"kind": "log", "path": "log.csv", **dataset},
                                                      "ranker": {"tasks": tasks}}))

    assert ds(["save", "closeup"]).negative_impressions == 1  # every landed interaction has a closeup
    assert ds(["save"]).negative_impressions is None  # the data decides: 1 for an implicit log, else 0
    assert ds(["save", "closeup"], negative_impressions=0).negative_impressions == 0  # as set
    assert ds(["save"], negative_impressions=3).negative_impressions == 3
