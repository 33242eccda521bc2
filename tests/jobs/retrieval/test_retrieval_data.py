"""Tests of :mod:`pinrec.jobs.retrieval.retrieval_data`: interactions and content embeddings read back from an
adapter's landing files, the synthetic generator's true latents, and the storage evaluation
without Spark."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.datasets import InteractionLog, to_landing
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_data import (
    evaluate_storage,
    read_content_embeddings,
    read_landing_interactions,
    read_true_latents,
)
from tests.support.logs import tiny_log


def test_landing_loader_reads_an_adapters_output(tmp_path):
    log = tiny_log()
    to_landing(log, tmp_path)
    got = read_landing_interactions(tmp_path).sort_values(["user_id", "pin_id"], ignore_index=True)
    want = log.interactions.rename(columns={"item_id": "pin_id"}).sort_values(["user_id", "pin_id"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want[["user_id", "pin_id", "ts"]], check_dtype=False)
    saves = read_landing_interactions(tmp_path, source="save")
    assert sorted(map(tuple, saves[["user_id", "pin_id"]].values.tolist())) == [(1, 10), (1, 12), (1, 13), (2, 11)]
    with pytest.raises(ValueError, match="source"):
        read_landing_interactions(tmp_path, source="click")


def test_true_latents_of_the_synthetic_generator(tmp_path):
    from pinrec.jobs.config import SyntheticConfig
    from pinrec.jobs.ingest.synthetic import generate

    generate(SyntheticConfig(users=10, pins=40, days=1, impressions_per_day=50, fresh_pins_per_day=0,
                             new_users_per_day=0, latent_dim=6), tmp_path, seed=1)
    truth = read_true_latents(tmp_path)
    assert truth.vectors.shape == (40, 6)
    np.testing.assert_allclose(np.linalg.norm(truth.vectors, axis=1), 1.0, rtol=1e-5)


def test_content_embeddings_and_storage_evaluation_without_spark(tmp_path):
    log = tiny_log()
    to_landing(log, tmp_path / "plain")
    with pytest.raises(ValueError, match="content_embedding"):
        read_content_embeddings(tmp_path / "plain")
    flags = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], None, [0.0, 1.0]]  # item 13 has none
    to_landing(InteractionLog(log.users, log.items.assign(content_embedding=flags), log.interactions,
                              log.categories, log.source), tmp_path / "content")
    content = read_content_embeddings(tmp_path / "content")
    assert content.ids.tolist() == [10, 11, 12, 14]
    np.testing.assert_allclose(content.vectors, [[1, 0], [0, 1], [1, 0], [0, 1]])
    report = evaluate_storage(RetrievalEvalConfig(k=1, num_negatives=1, baselines=("popularity",)),
                              tmp_path / "content")
    assert [(r.task, r.model, r.queries) for r in report.rows] == [
        ("user-item leave-one-out", "popularity", 3), ("user-item leave-one-out", "content", 3)]


def test_eval_before_load_says_so(tmp_path):
    from pinrec.jobs.retrieval.retrieval_data import check_loaded

    with pytest.raises(FileNotFoundError, match="run `pinrec load-dataset`.*before `pinrec eval-retrieval`"):
        evaluate_storage(RetrievalEvalConfig(), tmp_path / "landing")
    with pytest.raises(FileNotFoundError, match="holds no dataset yet"):
        check_loaded(tmp_path)


def test_ncf_negatives_any_count_own_pins_dropped(tmp_path):
    from pinrec.jobs.retrieval.retrieval_data import read_ncf_negatives
    from pinrec.jobs.retrieval.retrieval_eval import evaluate_retrieval
    from pinrec.jobs.retrieval.retrieval_protocols import leave_one_out

    path = tmp_path / "test.negative"
    # user 1 holds out pin 11 (not its latest), with its own training pin 10 among 3 negatives; user 2: 1 negative
    path.write_text("(1,11)\t10\t20\t21\n(2,20)\t22\n")
    given = read_ncf_negatives(path)
    assert given["negatives"].tolist() == [[10, 20, 21], [22]]
    t = pd.Timestamp("2020-01-01", tz="UTC")
    log = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3, 3], "pin_id": [10, 11, 12, 20, 21, 22, 10],
                        "ts": [t, t + pd.Timedelta(1, "s"), t + pd.Timedelta(2, "s"), t, t, t, t]})
    split = leave_one_out(log, negatives=given)
    assert split.test[["user_id", "pin_id"]].values.tolist() == [[1, 11], [2, 20]]
    assert split.test["negatives"].tolist() == [[20, 21], [22]]
    assert split.notes == {"negatives_users": 2, "negatives_users_skipped_one_pin": 0, "negatives_given": 4,
                           "negatives_dropped_own_pins": 1}
    _, candidates = split.candidates()
    assert candidates.tolist() == [[11, 20, 21], [20, 22, 20]] and split.padding().tolist() == [
        [False, False, False], [False, False, True]]
    report = evaluate_retrieval(log, cfg=RetrievalEvalConfig(k=1, num_negatives=1, baselines=("popularity",)),
                                negatives=given)
    # training users per pin: 10 -> 2, 12 -> 1, 21 -> 1, 22 -> 1, 11 and 20 -> 0. User 1: 11 (0) vs 20 (0), 21 (1):
    # rank 2 (ties count against it); user 2: 20 (0) vs 22 (1): rank 1, the padding never outranks it
    assert report.notes["negatives_dropped_own_pins"] == 1 and report.rows[0].queries == 2
    assert report.metric("user-item leave-one-out", "popularity", "MRR") == pytest.approx((1 / 3 + 1 / 2) / 2)
    path.write_text("(1,99)\t20\n")
    with pytest.raises(ValueError, match="do not match this log"):
        leave_one_out(log, negatives=read_ncf_negatives(path))
