"""The tiny synthetic world the DAG tests run on: one override list, so they cannot drift apart."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.support.repo import REPO

# Small enough for a 2-core CI machine; every model step still runs end to end.
TRAINING = ["pinsage.epochs=1", "pinsage.progress=false", "ranker_train.epochs=2", "ranker_train.progress=false",
            "ranker_train.device=cpu", "ranker_job.baselines=[logreg]", "ranker_job.int8=false",
            "ranker_job.evaluation=full",
            "ranker_job.no_position_twin=false", "blessing.min_auc=0.0", "two_tower.epochs=2",
            "two_tower.temperatures=[0.1]", "two_tower.progress=false", "two_tower.device=cpu"]


def tiny_world_overrides(root: Path, start: dt.date, days: int, impressions_per_day: int = 1500,
                         training: bool = True) -> list[str]:
    """``--set`` overrides of a 40-user, 200-pin world of ``days`` days from ``start``, with every
    store under ``root`` and Spark on one local core; ``training`` adds the fast model settings."""
    return [f"storage.landing={root / 'landing'}", f"storage.warehouse={root / 'warehouse'}",
            f"storage.artifacts={root / 'artifacts'}", f"storage.mlflow_tracking_uri=sqlite:///{root}/mlflow.db",
            f"publish.store_uri={root / 'serving'}",
            "spark.master=local[1]", "spark.shuffle_partitions=1", f"spark.jars_dir={REPO / 'var' / 'jars'}",
            "synthetic.users=40", "synthetic.pins=200", f"synthetic.days={days}",
            f"synthetic.impressions_per_day={impressions_per_day}", f"synthetic.start_date={start.isoformat()}",
            *(TRAINING if training else [])]
