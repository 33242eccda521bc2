"""Tests of :mod:`pinrec.jobs.retrieval.retrieval_eval`: a perfect oracle, popularity on a crafted log, the
item-item and latent-agreement rows, the report, the config checks, and (slow) the MovieLens 100K
baselines."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.retrieval.baselines import ItemEmbeddings
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_data import read_landing_interactions
from pinrec.jobs.retrieval.retrieval_eval import (
    RecentEmbeddingScorer,
    evaluate_retrieval,
    recent,
)
from tests.support.logs import (
    EDGES,
    THETA,
    angles,
    clustered_log,
    group_embeddings,
    log_of,
)

REPO = Path(__file__).resolve().parents[3]
ML100K = Path(os.environ.get("PINREC_ML100K", REPO.parent / "shared" / "datasets" / "ml-100k"))
LOO = "user-item leave-one-out"


def test_oracle_embedding_gets_perfect_scores_and_trains_on_the_split_only():
    log, seen_by_model = clustered_log(), []

    def model(train: pd.DataFrame) -> ItemEmbeddings:
        seen_by_model.append(train)
        return group_embeddings()

    report = evaluate_retrieval(log, {"oracle": model}, cfg=RetrievalEvalConfig(baselines=("popularity",)))
    assert report.metric(LOO, "oracle", "HR@10") == report.metric(LOO, "oracle", "NDCG@10") == 1.0
    assert report.metric(LOO, "oracle", "MRR") == 1.0
    popularity = report.metric(LOO, "popularity", "HR@10")
    assert popularity == 0.0 and report.lift_over_baselines("oracle")["HR@10"] == np.inf
    assert report.render().splitlines()[1].split()[0] == "popularity"
    held = set(map(tuple, report.negatives[["user_id", "pin_id"]].values.tolist()))
    (train,) = seen_by_model
    assert len(train) == len(log) - 24 and not held & set(map(tuple, train[["user_id", "pin_id"]].values.tolist()))


def test_popularity_on_a_crafted_log():
    # users 1-4 hold out pin 1 (4 training users, the most popular pin they have not seen);
    # users 5-8 hold out pin 10, never seen in training: its ties with every negative count against it
    rows = [(u, p, h) for u in range(1, 5) for p, h in ((2, 0), (3, 1), (1, 2))]
    rows += [(u, p, h) for u in range(5, 9) for p, h in ((1, 0), (2, 1), (10, 2))]
    cfg = RetrievalEvalConfig(k=5, num_negatives=5, baselines=("popularity",))
    identity = ItemEmbeddings(np.arange(1, 11), np.eye(10))  # a held-out pin is never a training pin: all ties
    report = evaluate_retrieval(log_of(rows), {"identity": identity}, cfg=cfg, pins=np.arange(1, 11))
    assert report.metric(LOO, "popularity", "HR@5") == 0.5
    assert report.metric(LOO, "popularity", "NDCG@5") == 0.5
    assert report.metric(LOO, "popularity", "MRR") == pytest.approx((4 + 4 / 6) / 8)
    assert report.metric(LOO, "identity", "HR@5") == 0.0
    lift = report.lift_over_baselines("identity")
    assert lift == pytest.approx({"HR@5": -1.0, "NDCG@5": -1.0, "MRR": (1 / 6) / (7 / 12) - 1})


def test_item_to_item_report_with_oracle_and_latent_agreement():
    truth = angles(THETA)
    cfg = RetrievalEvalConfig(k=1, num_negatives=1, baselines=(), latent_pairs=200, latent_queries=7)
    report = evaluate_retrieval(edges=EDGES, embeddings={"angles": truth}, truth=truth, cfg=cfg)
    assert report.metric("item-item same board", "angles", "HR@1") == pytest.approx(1 / 3)
    oracle_mrr = report.metric("item-item same board", "true latent (oracle)", "MRR")
    assert oracle_mrr == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert report.metric("latent agreement", "angles", "spearman") == pytest.approx(1.0)
    assert "true latent (oracle)" in report.render() and "spearman" in report.render()


def test_recent_items_and_their_position_half_life_build_the_user():
    # user 1 saved pins 1, 2, 3 (in that order, pin 3 tied in time with pin 2 but later in the log).
    train = log_of([(1, 1, 0), (1, 2, 1), (1, 3, 1), (2, 1, 0)])
    emb = ItemEmbeddings(np.array([1, 2, 3]), np.eye(3))
    assert recent(train, 2)["pin_id"].tolist() == [2, 3, 1] and recent(train, 0) is train
    plain = RecentEmbeddingScorer(emb, train)
    assert np.allclose(plain.user_vectors, [[1 / 3, 1 / 3, 1 / 3], [1, 0, 0]])
    last_two = RecentEmbeddingScorer(emb, train, recent_items=2)
    assert np.allclose(last_two.user_vectors[0], [0, 0.5, 0.5])
    halved = RecentEmbeddingScorer(emb, train, half_life_items=1.0)  # weights 1/4, 1/2, 1 from oldest
    assert np.allclose(halved.user_vectors[0], np.array([0.25, 0.5, 1.0]) / 1.75)
    assert np.allclose(halved.score(np.array([1, 2]), np.array([[3, 1], [2, 1]])), [[1 / 1.75, 0.25 / 1.75], [0, 1]])
    with pytest.raises(ValueError, match="half_life_items"):
        RecentEmbeddingScorer(emb, train, half_life_items=-1.0)


def test_recency_decides_the_held_out_pin_against_an_older_taste():
    # pins 1-5 are taste A, 6-8 taste B; users saved 1, 2, 3 (A) then 6, 7 (B) and hold out 8 (B)
    # against the unseen 4 and 5 (A): the plain mean leans to A, the latest items to B.
    emb = ItemEmbeddings(np.arange(1, 9), np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 3))
    log = log_of([(u, p, h) for u in range(1, 5) for h, p in enumerate((1, 2, 3, 6, 7, 8))])

    def hit(**recency) -> float:
        cfg = RetrievalEvalConfig(k=1, num_negatives=2, baselines=(), **recency)
        return evaluate_retrieval(log, {"e": emb}, cfg=cfg, pins=np.arange(1, 9)).metric(LOO, "e", "HR@1")
    assert hit() == 0.0
    assert hit(recent_items=2) == hit(recent_half_life=0.5) == 1.0  # weights 1/16 .. 1: B 1.5 vs A 0.44


@pytest.mark.parametrize("change", [{"k": 0}, {"k": 101}, {"baselines": ("svd",)}, {"source": "click"},
                                    {"half_life_days": -1.0}, {"bpr_learning_rate": 0.0}, {"recent_items": -1},
                                    {"recent_half_life": -1.0}])
def test_config_rejects_bad_values(change):
    with pytest.raises(ValueError):
        RetrievalEvalConfig(**change)



@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_report_written_locally_and_on_s3(where, request, tmp_path):
    """``write`` puts report.json and negatives.parquet into a local folder or an S3 location
    (SeaweedFS), readable back as written."""
    import io
    import json
    import uuid

    from pinrec.jobs.io.lake import Location
    from tests.support.s3 import BUCKET

    report = evaluate_retrieval(clustered_log(), cfg=RetrievalEvalConfig(baselines=("popularity",)))
    folder = Location(str(tmp_path / "eval")) if where == "local" else \
        Location(f"s3://{BUCKET}/eval-{uuid.uuid4().hex[:12]}/retrieval_eval", request.getfixturevalue("s3_server").options)
    assert report.write(folder) == folder
    assert [name for name, _ in folder.entries()] == ["negatives.parquet", "report.json"]
    body = json.loads((folder / "report.json").read_text())
    assert body["rows"][0]["model"] == "popularity" and body["config"]["baselines"] == ["popularity"]
    stored = pd.read_parquet(io.BytesIO((folder / "negatives.parquet").read_bytes()))
    assert stored["negatives"].map(list).tolist() == report.negatives["negatives"].map(list).tolist()

def test_nothing_to_evaluate_raises():
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_retrieval()


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason="MovieLens 100K not present")
def test_movielens_100k_baselines(tmp_path):
    """The measured run of the report: popularity is exact (no randomness); ALS beats BPR beats it."""
    from pinrec.jobs.ingest.dataset_readers import load_dataset

    load_dataset("movielens-100k", ML100K, tmp_path)
    report = evaluate_retrieval(read_landing_interactions(tmp_path), cfg=RetrievalEvalConfig(num_threads=1))
    assert len(report.negatives) == 943 and report.negatives["negatives"].map(len).eq(99).all()
    assert report.metric(LOO, "popularity", "HR@10") == pytest.approx(0.4083, abs=1e-4)
    assert report.metric(LOO, "popularity", "NDCG@10") == pytest.approx(0.2218, abs=1e-4)
    hr = {m: report.metric(LOO, m, "HR@10") for m in ("popularity", "als", "bpr")}
    assert hr["als"] > hr["bpr"] > hr["popularity"] and hr["als"] > 0.6
