"""A tiny in-memory training set for the ranker job's steps (every column the encoder reads, three
splits, sessions of ten impressions, labels planted from one feature and a position bias, and the
synthetic world's truth for its events: the oracle) and small configs that train in a second."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pinrec.export.encoding import training_set_spec
from pinrec.jobs.ranking.config import RankerJobConfig
from pinrec.jobs.ranking.ranker_configs import RankerConfigs
from pinrec.jobs.ranking.ranker_inputs import needed_columns

TASKS = ("save", "closeup")
SPLITS = ("train", "validation", "test")


def training_frame(rows_per_split: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training set, truth): ``rows_per_split`` rows in each split (a multiple of 10, one session per
    ten rows), ``closeup ~ exam(position) * p_closeup``, ``save ~ closeup * p_save`` with ``p_closeup``
    rising in ``pin__closeup_rate_30d``; negatives kept at rate 1 (``sample_weight`` 1)."""
    rng = np.random.default_rng(seed)
    n = rows_per_split * len(SPLITS)
    frame: dict[str, object] = {}
    for name in needed_columns(training_set_spec(), TASKS):
        if name in ("surface", "device", "country", "category", "user__top_category"):
            frame[name] = rng.choice(["a", "b", "c"], n)
        elif name in ("hour", "day_of_week"):
            frame[name] = rng.integers(0, 7, n).astype(str)
        elif name.endswith("__missing"):
            frame[name] = rng.random(n) < 0.1
        elif name not in (*TASKS, "position", "event_id", "session_id", "split", "sample_weight"):
            frame[name] = rng.gamma(1.0, 2.0, n)
    position = np.tile(np.arange(1, 11), n // 10)
    exam = position ** -0.7
    p_closeup = 1 / (1 + np.exp(-(frame["pin__closeup_rate_30d"] - 2.0)))
    p_save = np.full(n, 0.4)
    closeup = rng.random(n) < exam * p_closeup
    save = closeup & (rng.random(n) < p_save)
    event_id = [f"imp-{i:05d}" for i in range(n)]
    frame |= {"position": position, "save": save.astype(np.int32), "closeup": closeup.astype(np.int32),
              "event_id": event_id, "session_id": [f"s-{i // 10:04d}" for i in range(n)],
              "split": np.repeat(SPLITS, rows_per_split), "sample_weight": np.ones(n)}
    truth = pd.DataFrame({"event_id": event_id, "p_closeup": p_closeup, "p_save": p_save, "exam_prob": exam})
    return pd.DataFrame(frame), truth


def small_configs(**job) -> RankerConfigs:
    """A small ranker (two experts, 4-dim embeddings) trained for 3 epochs of batches of 16 on the CPU; ``job``
    overrides :class:`RankerJobConfig` (default: no baselines, one debiasing seed pair, 20 resamples)."""
    from pinrec.models.config import CalibrationConfig, RankerConfig, RankerTrainConfig

    model = RankerConfig(embedding_dim=4, deep_channels=(16,), expert_channels=(8,), tower_channels=(8,),
                         mmoe_experts=2)
    train = RankerTrainConfig(epochs=3, batch_size=16, lr=0.01, patience=2, progress=False, device="cpu")
    return RankerConfigs(model, train, CalibrationConfig(),
                         RankerJobConfig(**{"baselines": (), "debias_seeds": 1, "bootstrap_resamples": 20, "evaluation": "full",
                                            **job}))
