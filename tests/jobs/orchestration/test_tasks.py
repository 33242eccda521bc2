"""The training DAG's steps: the funnel step without Spark (skipped while the channel points nowhere); the
training window and day over a landing by month."""
from __future__ import annotations

import datetime as dt

import pytest


def test_funnel_step_is_skipped_before_the_first_publish(tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.tasks import funnel_day

    cfg = load_config(overrides={"publish": {"store_uri": str(tmp_path / "serving")}})
    out = funnel_day(cfg, dt.date(2026, 1, 8))
    assert out == {"day": "2026-01-08", "skipped": "no bundle on channel homefeed/prod yet"}


def _month_config(tmp_path):
    from pinrec.jobs.config import load_config
    from tests.support.repo import REPO

    return lambda **training: load_config(overrides={
        "storage": {"landing": str(tmp_path / "months"), "warehouse": str(tmp_path / "warehouse")},
        "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
        "training": {"validation_days": 1, "test_days": 1, **training}})


@pytest.mark.spark
def test_the_training_window_and_day_count_the_days_of_a_month_landing_not_its_months(spark, tmp_path):
    from pinrec.jobs.orchestration.tasks import (
        NotEnoughHistoryError,
        training_day,
        training_window,
    )
    from tests.support.month_log import DAYS, land, write_impressions_as_ingested

    land(tmp_path / "months", by_month=True)  # 7 days in 3 month partitions
    write_impressions_as_ingested(spark, tmp_path / "months", str(tmp_path / "warehouse"))
    config = _month_config(tmp_path)
    assert training_day(config(), None) == dt.date(2003, 3, 4)  # the newest day with events, not March 1st
    assert training_day(config(), "2003-02-27") == dt.date(2003, 2, 27)
    with pytest.raises(ValueError, match="training day 2003-03-05 is after the last landed day 2003-03-04"):
        training_day(config(), "2003-03-05")
    assert training_window(config(), dt.date(2003, 3, 4)) == DAYS
    assert training_window(config(window_days=10), dt.date(2003, 3, 4)) == DAYS[4:]  # Feb 23 .. Mar 4
    assert training_window(config(window_days=30), dt.date(2003, 2, 27)) == DAYS[:5]
    with pytest.raises(NotEnoughHistoryError, match="ending 2003-03-04 holds 2 landed day"):
        training_window(config(window_days=4), dt.date(2003, 3, 4))  # Mar 1 .. Mar 4


@pytest.mark.parametrize("config_file, overrides, message", [
    (None, [3], r"overrides must be a list of 'section.key=value' strings, got \[3\]"),
    (None, "seed=3", r"overrides must be a list .*got 'seed=3'"),
    (["a.yaml"], [], r"the run's config must be a path to a YAML file, got \['a.yaml'\]"),
])
def test_dag_params_of_the_wrong_type_are_config_errors(config_file, overrides, message):
    from pinrec.jobs.config import ConfigError
    from pinrec.jobs.orchestration.tasks import config_from_params

    with pytest.raises(ConfigError, match=message):
        config_from_params(config_file, overrides)


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    from pinrec.jobs.orchestration import (
        daily_tasks,
        publish_tasks,
        task_context,
        tasks,
        training_tasks,
    )

    # every public name tasks.py defined before the split, and the module that defines it now
    home = {
        "config_from_params": task_context,
        "NotEnoughHistoryError": daily_tasks, "ingest_day": daily_tasks, "features_day": daily_tasks,
        "training_window": daily_tasks, "window_config": daily_tasks, "training_set_window": daily_tasks,
        "training_day": training_tasks, "graph_day": training_tasks, "pinsage_embeddings": training_tasks,
        "cf_factors": training_tasks, "pin_index": training_tasks, "two_tower_model": training_tasks,
        "ranker_model": training_tasks, "retrieval_settings": training_tasks,
        "with_retrieval_settings": training_tasks,
        "funnel_day": publish_tasks, "publish_day": publish_tasks, "run_report": publish_tasks,
        "online_features": publish_tasks,
    }
    assert sorted(tasks.__all__) == sorted(home)
    for name, module in home.items():
        assert getattr(tasks, name) is getattr(module, name), name
        assert module.__dict__[name].__module__ == module.__name__, name
    # the logger keeps the name it had before the split
    assert {m.log.name for m in (task_context, daily_tasks, training_tasks, publish_tasks)} == {tasks.__name__}
