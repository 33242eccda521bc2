"""The cf job: its artifact folder (exact index + factors the serving channel reads), the newest
folder publish takes, and the pipeline's cf channel on the tiny world."""
from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest

from pinrec.export.serving.cf_channel import CfChannel
from pinrec.jobs.cf.cf import META_FILE, cf_version, fetch_cf, newest_cf, write_files
from pinrec.jobs.cf.cf_model import CfFactors, CfFit
from pinrec.jobs.io.lake import Location


def a_fit(seed: int = 0, users: int = 5, pins: int = 40, factors: int = 6) -> CfFit:
    rng = np.random.default_rng(seed)
    f = CfFactors(np.arange(users, dtype=np.int64) * 10, rng.standard_normal((users, factors)).astype(np.float32),
                  np.sort(rng.choice(10_000, pins, replace=False)).astype(np.int64),
                  rng.standard_normal((pins, factors)).astype(np.float32))
    return CfFit(f, {"factors": factors, "regularization": 0.1, "alpha": 10.0}, (), None, 0, 123)


def test_the_written_files_serve_the_brute_force_top_k(tmp_path):
    fit = a_fit()
    write_files(fit, tmp_path)
    channel = CfChannel(*(str(tmp_path / n) for n in ("cf_items.faiss", "cf_items.parquet", "cf_users.parquet")))
    f = fit.factors
    for pos, user in enumerate(f.user_ids.tolist()):
        want = f.pin_ids[np.argsort(-(f.item_factors @ f.user_factors[pos]))][:15]
        assert channel.search(user, 15).tolist() == want.tolist()
        np.testing.assert_array_equal(channel.factor(user), f.user_factors[pos])
    assert channel.search(11, 15).size == 0 and channel.factor(None) is None  # no factor: nothing


def test_the_version_hashes_cutoff_settings_inputs_and_factors():
    cutoff = dt.datetime(2026, 1, 4)
    v = cf_version(a_fit(), cutoff, {"actions": 3})
    assert v.startswith("cf-") and v == cf_version(a_fit(), cutoff, {"actions": 3})
    assert len({v, cf_version(a_fit(1), cutoff, {"actions": 3}), cf_version(a_fit(), cutoff, {"actions": 4}),
                cf_version(a_fit(), cutoff + dt.timedelta(days=1), {"actions": 3})}) == 4


def test_newest_cf_is_the_folder_whose_cf_json_was_written_last(tmp_path):
    assert newest_cf(tmp_path) is None
    for name, mtime in (("cf-bbbb", 200), ("cf-aaaa", 300), ("cf-cccc", 100)):
        folder = tmp_path / "cf" / name
        folder.mkdir(parents=True)
        write_files(a_fit(), folder)
        (folder / META_FILE).write_text(json.dumps({"version": name, "mlflow_run_id": "r", "input_versions": {}}))
        os.utime(folder / META_FILE, (mtime, mtime))
    (tmp_path / "cf" / "cf-dddd.partial").mkdir()  # no cf.json: incomplete, never taken
    newest = newest_cf(tmp_path)
    assert newest.name == "cf-aaaa"
    paths, meta = fetch_cf(newest, tmp_path / "unused")
    assert [os.path.basename(p) for p in paths] == ["cf_items.faiss", "cf_items.parquet", "cf_users.parquet",
                                                    "cf.json"] and meta["version"] == "cf-aaaa"
    os.remove(tmp_path / "cf" / "cf-bbbb" / "cf_users.parquet")
    with pytest.raises(FileNotFoundError, match=r"lacks \['cf_users.parquet'\]: rerun `pinrec cf`"):
        fetch_cf(Location(str(tmp_path / "cf" / "cf-bbbb")), tmp_path / "unused")


@pytest.mark.spark
def test_the_pipeline_trains_cf_before_the_test_day_and_its_bundle_serves_it(spark, tiny_world):
    import mlflow
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender
    from pinrec.jobs.io.catalog import Catalog

    cfg, result = tiny_world
    cf = result.cf
    # engagement = the saves and closeups before the start of the test day (the graph's eval_from)
    actions = Catalog(spark, cfg.storage.warehouse).read("actions", version=cf.input_versions["actions"])
    last_day = max(r["dt"] for r in actions.select("dt").distinct().collect())
    cutoff = dt.datetime.combine(last_day, dt.time())
    assert cf.cutoff == cutoff.isoformat()
    assert cf.interactions == actions.where(F.col("type").isin("save", "closeup") & (F.col("ts") < F.lit(cutoff))).count()
    assert len(cf.validation) == len(cfg.cf.grid()) and cf.recall is not None and cf.validation_users > 0
    assert cf.recall == max(r["recall"] for r in cf.validation)
    run = mlflow.MlflowClient(cfg.storage.mlflow_tracking_uri).get_run(cf.run_id)
    assert run.data.tags["cf_version"] == cf.version and run.data.metrics["chosen_recall"] == pytest.approx(cf.recall)

    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    extras = {e.path for e in bundle.manifest.of_role("extra")}
    assert {"extra/cf_items.faiss", "extra/cf_items.parquet", "extra/cf_users.parquet", "extra/cf.json"} <= extras
    lineage = bundle.manifest.lineage
    assert lineage.mlflow_run_ids["cf"] == cf.run_id and lineage.delta_versions["cf:actions"] == cf.input_versions["actions"]
    users = pq.read_table(os.path.join(bundle.root, "extra", "cf_users.parquet")).column("user_id").to_numpy()
    assert len(users) == cf.users

    rec = Recommender(bundle, cfg.recommend)
    assert "cf" in rec.channels
    active = int(users[0])
    assert rec.candidates(active).of("cf").size > 0
    out = rec.recommend(active, {"surface": "home_feed"}, k=50)
    assert any("cf" in r.channels for r in out)
    assert rec.candidates(-1).of("cf").size == 0  # unknown user: no factor
