from __future__ import annotations

import pandas as pd
import pytest

from tests.jobs.ranking.training_frames import training_frame


@pytest.fixture(scope="module")
def tiny_training_set() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training set, truth) of :func:`~tests.jobs.ranking.training_frames.training_frame`, 120 rows per split."""
    return training_frame()
