"""The training DAG's funnel step, without Spark: skipped while the channel points nowhere."""
from __future__ import annotations

import datetime as dt


def test_funnel_step_is_skipped_before_the_first_publish(tmp_path):
    from pinrec.jobs.config import load_config
    from pinrec.jobs.orchestration.tasks import funnel_day

    cfg = load_config(overrides={"publish": {"store_uri": str(tmp_path / "serving")}})
    out = funnel_day(cfg, dt.date(2026, 1, 8))
    assert out == {"day": "2026-01-08", "skipped": "no bundle on channel homefeed/prod yet"}
