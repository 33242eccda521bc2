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
