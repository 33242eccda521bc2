"""The max-margin loss: hand-computed values, shared vs per-query negatives, shape checks."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.losses import max_margin_loss


def test_hinge_values():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # scores 1 and 0
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])  # query 0: 0, -1; query 1: 1, 0
    # hinges with margin 0.5: query 0: max(0, 0-1+.5)=0, max(0, -1-1+.5)=0; query 1: 1.5, 0.5
    assert max_margin_loss(query, positive, negatives, margin=0.5).item() == pytest.approx(2.0 / 4)


def test_shared_negatives_equal_per_query_negatives():
    torch.manual_seed(0)
    query, positive, negatives = torch.randn(3, 4), torch.randn(3, 4), torch.randn(5, 4)
    shared = max_margin_loss(query, positive, negatives)
    per_query = max_margin_loss(query, positive, negatives.expand(3, 5, 4))
    torch.testing.assert_close(shared, per_query)


@pytest.mark.parametrize("positive, negatives", [
    (torch.zeros(3, 4), torch.zeros(5, 4)),
    (torch.zeros(2, 4), torch.zeros(5, 3)),
    (torch.zeros(2, 4), torch.zeros(3, 5, 4)),
])
def test_bad_shapes_raise(positive, negatives):
    with pytest.raises(ValueError):
        max_margin_loss(torch.zeros(2, 4), positive, negatives)
