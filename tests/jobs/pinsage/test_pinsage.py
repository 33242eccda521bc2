"""The PinSage job: graph tables -> tensors, training with MLflow logging, the pin_embeddings table."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
import torch

from pinrec.jobs.pinsage.pinsage import graph_inputs, model_hash
from pinrec.models.pinsage_trainer import PinSageTrainConfig

T0 = dt.datetime(2026, 1, 1)


def test_graph_inputs_orders_standardises_and_splits():
    pins = pa.table({"pin_id": pa.array([30, 10, 20], pa.int64()), "pin_idx": pa.array([2, 0, 1], pa.int32()),
                     "features": pa.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]], pa.list_(pa.float32()))})
    edges = pa.table({"pin_idx": pa.array([0, 1, 2, 2], pa.int32()), "board_idx": pa.array([0, 0, 1, 0], pa.int32()),
                      "split": ["train", "train", "eval", "train"]})
    out = graph_inputs(edges, pins, num_boards=2)
    assert out.pin_ids.tolist() == [10, 20, 30]
    torch.testing.assert_close(out.features, torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]))  # z-scores
    assert out.edges_by_split == {"eval": 1, "train": 3}
    assert out.train_graph.num_edges == 3 and out.full_graph.num_edges == 4
    assert out.train_graph.pin_boards.tolist() == [0, 0, 0]  # the eval edge (pin 2, board 1) is held out
    with pytest.raises(ValueError, match="dense"):
        graph_inputs(edges, pins.set_column(1, "pin_idx", pa.array([3, 0, 1], pa.int32())), num_boards=2)
    with pytest.raises(ValueError, match="one length"):
        graph_inputs(edges, pins.set_column(2, "features", pa.array([[1.0], [2.0, 0.0], [0.0, 1.0]])), 2)
    for bad in ([[1.0, 5.0], [3.0, float("inf")], [2.0, 5.0]], [[1.0, 5.0], [3.0, None], [2.0, 5.0]]):
        # one inf or null element made the whole column NaN: NaN embeddings were written to pin_embeddings
        with pytest.raises(ValueError, match=r"features hold 1 value\(s\) that are NaN, inf or null, e.g. feature 1 "
                                             r"of pin_id 10"):
            graph_inputs(edges, pins.set_column(2, "features", pa.array(bad, pa.list_(pa.float32()))), 2)
    assert out.train_graph.edge_time is None  # no saved_at column: board positives only
    saved = pa.array([T0 + dt.timedelta(hours=h) for h in (3, 1, 9, 2)], pa.timestamp("us", tz="UTC"))
    timed = graph_inputs(edges.append_column("saved_at", saved), pins, num_boards=2)
    hour = 3_600_000_000
    t0 = int(T0.replace(tzinfo=dt.UTC).timestamp() * 1e6)
    # board 0 holds pins 0 (3 h), 1 (1 h), 2 (2 h): in time order 1, 2, 0
    assert timed.train_graph.board_time_pins[:3].tolist() == [1, 2, 0]
    assert sorted(timed.full_graph.edge_time.tolist()) == [t0 + h * hour for h in (1, 2, 3, 9)]


def test_model_hash_depends_on_weights_and_config():
    state = {"w": torch.ones(2)}
    cfg = PinSageTrainConfig()
    assert model_hash(state, cfg) == model_hash({"w": torch.ones(2)}, PinSageTrainConfig())
    assert model_hash(state, cfg).startswith("pinsage-") and len(model_hash(state, cfg)) == 24
    assert model_hash({"w": torch.zeros(2)}, cfg) != model_hash(state, cfg)
    assert model_hash(state, PinSageTrainConfig(seed=1)) != model_hash(state, cfg)


def write_world(spark, root: str) -> None:
    """24 pins in two communities (pins 0-11 on boards 0-2, 12-23 on boards 3-5); the last save of
    each community is after eval_from. Written as the warehouse tables pinrec.jobs.graph.graph reads."""
    pins = [(p, T0, "art" if p < 12 else "food", [float(p % 3), 1.0]) for p in range(24)]
    boards = [(b, "art" if b < 3 else "food") for b in range(6)]
    edges = [(p, (p % 3) + 3 * (p >= 12), T0 + dt.timedelta(hours=p)) for p in range(24)]
    edges += [(p, ((p + 1) % 3) + 3 * (p >= 12), T0 + dt.timedelta(hours=30 + p)) for p in range(0, 24, 2)]
    frames = {
        "pins": spark.createDataFrame(pins, "pin_id bigint, created_at timestamp, category string, "
                                            "content_embedding array<float>"),
        "boards": spark.createDataFrame(boards, "board_id bigint, topic string"),
        "pin_board_edges": spark.createDataFrame(edges, "pin_id bigint, board_id bigint, saved_at timestamp"),
        "features_pin": spark.createDataFrame([], "pin_id bigint, feature_ts timestamp, created_ts timestamp, "
                                                  "closeup_rate_30d double, save_rate_30d double, "
                                                  "impressions_30d bigint, board_count bigint"),
    }
    for name, df in frames.items():
        df.write.format("delta").mode("overwrite").save(f"{root}/{name}")


@pytest.mark.spark
@pytest.mark.slow
def test_train_pinsage_writes_embeddings_and_logs_to_mlflow(spark, tmp_path):
    from delta.tables import DeltaTable
    from mlflow import MlflowClient

    from pinrec.jobs.graph.graph import write_graph
    from pinrec.jobs.pinsage.pinsage import train_pinsage

    root, uri = str(tmp_path / "warehouse"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ValueError, match="run `pinrec graph` first"):
        train_pinsage(spark, root, PinSageTrainConfig(), None)
    write_world(spark, root)
    write_graph(spark, root, cutoff=T0 + dt.timedelta(days=3), eval_from=T0 + dt.timedelta(hours=36))
    cfg = PinSageTrainConfig(epochs=3, batch_size=8, lr=0.01, margin=0.5, num_negatives=4, hard_negatives_from_epoch=1,
                             max_hard_negatives=2, hard_negative_band=(2, 8), hard_negative_walks=20,
                             num_neighbors=3, num_walks=10, walk_length=2, hidden_channels=8, out_channels=4,
                             progress=False, seed=3)
    artifacts = tmp_path / "artifacts"
    report = train_pinsage(spark, root, cfg, uri, artifacts=str(artifacts))

    assert report.warm_start_from is None and report.warm_start == "cold start: no previous version"
    assert report.stability == {} and (artifacts / "pinsage" / report.model_version / "model.pt").is_file()
    assert report.pins == 24 and report.boards == 6 and report.epochs == 3
    assert report.edges_by_split == {"eval": 9, "train": 27}  # second saves at hours 30..52: 9 from hour 36
    assert report.input_versions == {"graph_edges": 0, "graph_pin_nodes": 0, "graph_board_nodes": 0}
    rows = spark.read.format("delta").load(f"{root}/pin_embeddings").orderBy("pin_id").collect()
    assert [r["pin_id"] for r in rows] == list(range(24))
    assert {r["model_version"] for r in rows} == {report.model_version}
    emb = torch.tensor([r["embedding"] for r in rows])
    assert emb.shape == (24, 4)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(24))
    meta = json.loads(DeltaTable.forPath(spark, f"{root}/pin_embeddings").history(1).collect()[0]["userMetadata"])
    assert meta["model_version"] == report.model_version and meta["input_versions"] == report.input_versions
    assert meta["train_config"]["epochs"] == 3 and meta["mlflow_run_id"] == report.run_id
    assert meta["feature_names"][:2] == ["category=art", "category=food"]

    client = MlflowClient(uri)
    run = client.get_run(report.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["pinsage.epochs"] == "3" and run.data.params["input_versions.graph_edges"] == "0"
    assert run.data.tags["model_version"] == report.model_version
    losses = [m.value for m in sorted(client.get_metric_history(report.run_id, "loss"), key=lambda m: m.step)]
    assert losses == pytest.approx(list(report.losses))
    assert {a.path for a in client.list_artifacts(report.run_id)} >= {"loss_curve.json", "pin_embeddings.json"}

    # same inputs and seed: same model (a rerun starts where the version it reruns started: cold); replaced
    again = train_pinsage(spark, root, cfg, None, artifacts=str(artifacts))
    assert again.model_version == report.model_version and again.delta_version == report.delta_version + 1
    assert again.warm_start == f"cold start: a rerun of {report.model_version} on the same inputs, which started cold"
    assert spark.read.format("delta").load(f"{root}/pin_embeddings").count() == 24
    assert again.stability["overlap_at_10"] == 1.0 and again.stability["common_pins"] == 24
    assert again.stability["procrustes_cosine"] == pytest.approx(1.0)

    # the next day's graph: a new version, warm-started from the previous one, its movement measured
    write_graph(spark, root, cutoff=T0 + dt.timedelta(days=3), eval_from=T0 + dt.timedelta(hours=44))
    nxt = train_pinsage(spark, root, cfg, None, artifacts=str(artifacts))
    assert nxt.warm_start_from == report.model_version and nxt.warm_start == f"warm start from {report.model_version}"
    assert nxt.model_version != report.model_version
    assert set(nxt.stability) == {"common_pins", "overlap_at_10", "procrustes_cosine", "heldout_recall_at_10",
                                  "heldout_recall_at_10_previous"}
    assert 0.0 <= nxt.stability["overlap_at_10"] <= 1.0 and -1.0 <= nxt.stability["procrustes_cosine"] <= 1.0
    meta = json.loads(DeltaTable.forPath(spark, f"{root}/pin_embeddings").history(1).collect()[0]["userMetadata"])
    assert meta["warm_start_from"] == report.model_version and meta["stability"] == nxt.stability


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.full  # 30-50 s; make test runs torchrun in every trainer's two-process gloo test
def test_the_job_under_torchrun_trains_on_both_ranks(spark, tiny_world, tmp_path):
    import re
    import shutil

    from tests.support.repo import REPO, torchrun

    cfg, _ = tiny_world
    warehouse = tmp_path / "warehouse"  # a copy: the job replaces pin_embeddings, which other tests read
    shutil.copytree(cfg.storage.warehouse, warehouse)
    overrides = [f"storage.warehouse={warehouse}", f"storage.mlflow_tracking_uri=sqlite:///{tmp_path}/m.db",
                 "spark.master=local[1]", "spark.shuffle_partitions=1", f"spark.jars_dir={REPO / 'var' / 'jars'}",
                 "pinsage.epochs=2", "pinsage.progress=false", "pinsage.hard_negatives_from_epoch=1",
                 f"storage.artifacts={tmp_path / 'artifacts'}"]  # not the shared world's: it keeps a model version
    stdout = torchrun("-m", "pinrec.jobs.orchestration.cli", "pinsage", *(a for o in overrides for a in ("--set", o)), timeout=900,
                      env={"SPARK_LOCAL_IP": "127.0.0.1"})
    follower = re.search(r"\[pinsage\] rank 1: trained with rank 0 \(2 epoch\(s\), model (pinsage-\w+)\)", stdout)
    assert follower, stdout[-2000:]
    assert stdout.count("[pinsage] pin_embeddings ") == 1  # only rank 0 reports and writes
    versions = {r[0] for r in spark.read.format("delta").load(f"{warehouse}/pin_embeddings")
                .select("model_version").distinct().collect()}
    assert versions == {follower.group(1)}  # both ranks ended with the same weights
