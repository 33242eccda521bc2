"""The two-tower model: shapes, unit norms, masked pooling."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.two_tower import (
    CategoricalEmbeddings,
    HistoryPool,
    PinTower,
    TwoTower,
    UserTower,
)

torch.set_num_threads(1)


def _user_inputs(b: int = 5, length: int = 4, e: int = 6):
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(b, length, generator=g) > 0.3).float()
    mask[0] = 0  # a user without any save
    return (torch.randint(0, 3, (b, 2), generator=g), torch.randn(b, 7, generator=g),
            torch.randn(b, length, e, generator=g), mask, torch.randn(b, length, e, generator=g),
            torch.ones(b, length))


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_towers_give_unit_vectors_of_d(pooling):
    torch.manual_seed(0)
    user = UserTower([3, 4], 7, 6, 4, out_channels=5, hidden_channels=16, category_dim=3, pooling=pooling)
    pin = PinTower([9], 2, 6, out_channels=5, hidden_channels=16)
    u, p = TwoTower(user, pin)(_user_inputs(), (torch.randint(0, 9, (3, 1)), torch.randn(3, 2), torch.randn(3, 6)))
    assert u.shape == (5, 5) and p.shape == (3, 5)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(p.norm(dim=1), torch.ones(3))


def test_history_pool_ignores_padding_and_pools_empty_lists_to_zero():
    torch.manual_seed(0)
    pool = HistoryPool(3, 4, "attention", 8)
    h = torch.randn(2, 4, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    out = pool(h, mask)
    changed = h.clone()
    changed[0, 2:] = 100.0  # padded slots: whatever they hold does not count
    torch.testing.assert_close(pool(changed, mask), out)
    assert torch.equal(out[1], torch.zeros(3))
    # the pooled vector is a convex combination of the two real slots
    w = torch.linalg.lstsq(h[0, :2].T, out[0].detach().unsqueeze(1)).solution.squeeze()
    assert torch.all(w >= -1e-5) and abs(float(w.sum()) - 1.0) < 1e-4


def test_mean_pool_weights_by_recency():
    pool = HistoryPool(1, 3, "mean", half_life=1.0)
    h = torch.tensor([[[4.0], [2.0], [1.0]]])
    # weights 1, 0.5, 0.25 (normalised by 1.75): (4 + 1 + 0.25) / 1.75 = 3
    torch.testing.assert_close(pool(h, torch.ones(1, 3)), torch.tensor([[3.0]]))


def test_bad_shapes_and_arguments_raise():
    with pytest.raises(ValueError, match="pooling"):
        HistoryPool(3, 4, "max")
    with pytest.raises(ValueError, match=r"history must be \(B, 4, 3\)"):
        HistoryPool(3, 4)(torch.zeros(2, 5, 3), torch.ones(2, 5))
    with pytest.raises(ValueError, match="share D"):
        TwoTower(UserTower([2], 1, 3, 2, out_channels=4), PinTower([2], 1, 3, out_channels=5))
    with pytest.raises(ValueError, match="cardinalities"):
        CategoricalEmbeddings([0], 3)
    assert CategoricalEmbeddings([], 3)(torch.zeros(4, 0, dtype=torch.long)).shape == (4, 0)
