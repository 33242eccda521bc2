"""export/serving/rerank.py: category cap and MMR on tiny inline data."""
from __future__ import annotations

import numpy as np
import pytest

from pinrec.export.serving.rerank import rerank

SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
IDS = np.array([5, 4, 3, 2, 1])
CATS = np.array([0, 0, 0, 1, 1])


def test_score_order_and_cap():
    assert rerank(SCORE, IDS, CATS, k=5).tolist() == [0, 1, 2, 3, 4]
    assert rerank(SCORE, IDS, CATS, k=5, category_cap=2).tolist() == [0, 1, 3, 4]
    tied = rerank(np.ones(3), np.array([9, 7, 8]), np.zeros(3, np.int64), k=3)
    assert tied.tolist() == [1, 2, 0]  # ties: smaller pin id first


def test_mmr_trades_relevance_for_diversity():
    emb = np.array([[1, 0], [1, 0.01], [0, 1], [1, 0], [0.7, 0.7]], np.float32)
    chosen = rerank(SCORE, IDS, np.zeros(5, np.int64), k=3, mmr_lambda=0.5, embed=lambda pos: emb[pos].copy())
    # 0 first (rel 1); then 2 (orthogonal to 0) beats the near-duplicate 1: 0.5*0.5 - 0.5*0 > 0.5*0.75 - 0.5*1
    assert chosen.tolist()[:2] == [0, 2]
    with pytest.raises(ValueError, match="needs the candidates' embeddings"):
        rerank(SCORE, IDS, CATS, k=3, mmr_lambda=0.5)
