"""PinSage day after day (issue #24): the training DAG's graph and PinSage steps over a multi-day world,
warm-started versions against cold restarts, and bundles whose index and ranker share one version."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics

import pytest

from tests.support.repo import REPO

START = dt.date(2026, 1, 5)
DAYS = 7
# ~20x the tiny world's saves a day: ~250-300 held-out saves a day (a day's recall@10 known to ~±0.04)
WORLD = {"users": 400, "pins": 1600, "days": DAYS, "impressions_per_day": 40_000, "start_date": START.isoformat(),
         "fault_rate": 0.0, "duplicate_rate": 0.0}
EPOCHS = 4


def _config(root, warehouse: str, artifacts: str, warm: bool):
    from pinrec.jobs.config import load_config

    return load_config(overrides={
        "storage": {"landing": str(root / "landing"), "warehouse": str(root / warehouse),
                    "artifacts": str(root / artifacts), "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db"},
        "spark": {"master": "local[1]", "shuffle_partitions": 1, "jars_dir": str(REPO / "var" / "jars")},
        "synthetic": WORLD,
        "training": {"validation_days": 0},  # the graph's window needs 2 days: a retrain from the second day on
        # warm versions train 1 epoch; every cold restart (and the first version) trains EPOCHS
        "pinsage": {"epochs": EPOCHS, "warm_start_epochs": 1, "warm_start": warm, "progress": False,
                    "hard_negatives_from_epoch": 1},
    })


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.full
def test_warm_started_versions_reach_cold_quality_in_fewer_epochs_and_move_less(spark, tmp_path, capsys):
    from pinrec.jobs.features.features import build_features
    from pinrec.jobs.ingest.ingest import IngestPaths, ingest
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.orchestration.tasks import graph_day
    from pinrec.jobs.pinsage.pinsage import GRAPH_TABLES, train_pinsage

    warm_cfg = _config(tmp_path, "warehouse", "artifacts", warm=True)
    cold_cfg = _config(tmp_path, "cold_warehouse", "cold_artifacts", warm=False)
    generate(warm_cfg.synthetic, warm_cfg.storage.landing, seed=warm_cfg.seed)
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    # what pinrec_daily's ingest and features tasks call, for every day at once
    ingest(spark, IngestPaths(warm_cfg.storage.location("landing"), warm_cfg.storage.warehouse), days, warm_cfg.ingest)
    build_features(spark, Catalog(spark, warm_cfg.storage.warehouse), days, warm_cfg.features)
    os.makedirs(cold_cfg.storage.warehouse)
    for table in GRAPH_TABLES:  # the cold chain trains on the very same graph versions
        os.symlink(f"{warm_cfg.storage.warehouse}/{table}", f"{cold_cfg.storage.warehouse}/{table}")

    rows = []
    for day in days[1:]:  # what pinrec_training's graph and pinsage tasks call, day after day
        graph_day(warm_cfg, day)
        chains = {}
        for kind, cfg in (("warm", warm_cfg), ("cold", cold_cfg)):
            chains[kind] = train_pinsage(spark, cfg.storage.warehouse, cfg.pinsage, None,
                                         artifacts=cfg.storage.location("artifacts"))
        rows.append((day, chains["warm"], chains["cold"]))

    with capsys.disabled():
        print("\n| day | held-out | cold epochs | cold recall@10 | cold s | warm epochs | warm recall@10 | warm s | "
              "overlap@10 with the day before: cold | warm |")
        for day, warm, cold in rows:
            print(f"| {day} | {warm.edges_by_split.get('eval', 0)} | {cold.epochs} | "
                  f"{cold.stability.get('heldout_recall_at_10', float('nan')):.4f} | {cold.seconds:.1f} | {warm.epochs} | "
                  f"{warm.stability.get('heldout_recall_at_10', float('nan')):.4f} | {warm.seconds:.1f} | "
                  f"{cold.stability.get('overlap_at_10', float('nan')):.3f} | "
                  f"{warm.stability.get('overlap_at_10', float('nan')):.3f} |")

    first, later = rows[0], rows[1:]
    assert len(later) >= 5 and first[1].warm_start_from is None and first[1].epochs == EPOCHS
    previous = first[1].model_version
    for day, warm, cold in later:
        assert warm.warm_start_from == previous and warm.warm_start == f"warm start from {previous}", day
        assert (warm.epochs, cold.epochs, cold.warm_start_from) == (1, EPOCHS, None), day
        assert cold.warm_start == "cold start: pinsage.warm_start is off"
        assert warm.edges_by_split["eval"] >= 200, day  # the held-out day is not a handful of saves
        assert warm.stability["overlap_at_10"] > cold.stability["overlap_at_10"], day
        previous = warm.model_version

    def median(kind: int, key: str) -> float:
        return statistics.median(r[kind].stability[key] for r in later)

    # neighbourhoods: more of yesterday's kept than by a cold restart (measured 2026-12-05: medians 0.517 vs
    # 0.504, every day 0.003-0.052 more; with the job's default model, no id embedding, the gap is small)
    assert median(1, "overlap_at_10") > median(2, "overlap_at_10")
    # quality: one warm epoch reaches what EPOCHS cold epochs reach (measured: medians 0.134 vs 0.123), within
    # a day's noise (±0.04 at ~270 held-out saves)
    assert median(1, "heldout_recall_at_10") >= median(2, "heldout_recall_at_10") - 0.02
    # and both beat the embeddings of the day before on the new day's saves (what the retrain is for)
    assert median(1, "heldout_recall_at_10") > 0.0


@pytest.mark.spark
def test_a_warm_retrain_on_the_tiny_world_records_its_movement_and_bundles_stay_on_one_version(
        spark, tiny_world, tmp_path):
    import dataclasses
    import json

    from pinrec.jobs.config import replace
    from pinrec.jobs.index.pin_index import index_folder
    from pinrec.jobs.pinsage.pinsage import train_pinsage
    from pinrec.jobs.publish.bundle import publish_serving_bundle

    cfg, result = tiny_world
    old = result.index.embedding_version
    for part in ("warehouse", "artifacts"):  # copies: the job replaces pin_embeddings, which other tests read
        shutil.copytree(getattr(cfg.storage, part), tmp_path / part)
    cfg = replace(cfg, storage={"warehouse": str(tmp_path / "warehouse"), "artifacts": str(tmp_path / "artifacts"),
                                "mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
                  publish={"store_uri": str(tmp_path / "serving")})
    # the next day's retrain (another learning rate: not a rerun of the same inputs and config)
    pinsage = dataclasses.replace(cfg.pinsage, lr=cfg.pinsage.lr * 2, epochs=1)
    report = train_pinsage(spark, cfg.storage.warehouse, pinsage, None, artifacts=cfg.storage.location("artifacts"))
    assert report.warm_start_from == old and report.warm_start == f"warm start from {old}"
    assert report.model_version != old and 0.0 < report.stability["overlap_at_10"] <= 1.0
    assert report.stability["common_pins"] == report.pins

    artifacts = cfg.storage.location("artifacts")
    with pytest.raises(FileNotFoundError, match=f"no index at .* for embeddings {report.model_version}"):
        publish_serving_bundle(spark, cfg, register=False)
    with pytest.raises(ValueError, match=f"built over {old} but pin_embeddings holds {report.model_version}"):
        publish_serving_bundle(spark, cfg, index_dir=index_folder(artifacts, old), register=False)
    # an index over the new version, with the ranker still on the old one: refused too
    fresh = tmp_path / "artifacts" / "index" / report.model_version
    shutil.copytree(tmp_path / "artifacts" / "index" / old, fresh)
    meta = json.loads((fresh / "index.json").read_text())
    (fresh / "index.json").write_text(json.dumps({**meta, "embedding_version": report.model_version}))
    with pytest.raises(ValueError, match=f"uses embedding features of {old} but pin_embeddings holds "
                                         f"{report.model_version}"):
        publish_serving_bundle(spark, cfg, register=False)
