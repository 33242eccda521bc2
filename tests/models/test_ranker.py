"""The Ranker: shapes, embedding offsets, the position tower on/off, structures, config checks."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.dcn import CrossNet, CrossNetMix
from pinrec.models.ranker import Ranker, RankerConfig

torch.set_num_threads(1)
CARDS = (5, 3, 7)


def inputs(b: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (b,), generator=gen) for c in CARDS], 1)
    return cat, torch.randn(b, 4, generator=gen), torch.randint(0, 11, (b,), generator=gen)


def test_shapes_and_parts():
    torch.manual_seed(0)
    m = Ranker(CARDS, 4, num_positions=11).eval()
    cat, dense, pos = inputs()
    assert m(cat, dense).shape == (6, 2) and m(cat, dense, pos).shape == (6, 2)
    assert m.in_channels == 3 * 8 + 4 and m.tasks == ("save", "closeup")
    assert isinstance(m.cross, CrossNet) and m.cross.rank == 16
    assert "D0=28" in repr(m)


def test_each_column_has_its_own_rows():
    m = Ranker(CARDS, 4, num_positions=11)
    cat = torch.tensor([[4, 0, 6]])
    x0 = m.features(cat, torch.zeros(1, 4))
    w = m.embedding.weight
    torch.testing.assert_close(x0[0, :24], torch.cat([w[4], w[5 + 0], w[5 + 3 + 6]]))
    assert w.shape == (15, 8)


def test_position_tower_adds_a_bias_only_when_given():
    torch.manual_seed(0)
    m = Ranker(CARDS, 4, num_positions=11).eval()
    cat, dense, pos = inputs()
    torch.testing.assert_close(m(cat, dense, pos) - m(cat, dense), m.position_tower(pos))
    # the bias depends on the position only: same items, other positions -> same position-free score
    torch.testing.assert_close(m(cat, dense), m(cat, dense))
    assert not torch.allclose(m(cat, dense, pos), m(cat, dense, (pos + 1) % 11))


def test_position_dropout_only_in_training():
    torch.manual_seed(0)
    m = Ranker(CARDS, 4, num_positions=11, config=RankerConfig(position_dropout=0.5))
    cat, dense, _ = inputs(400)
    pos = torch.full((400,), 7)
    m.train()
    with torch.no_grad():
        delta = m(cat, dense, pos) - m(cat, dense)
    dropped = torch.isclose(delta, m.position_tower(torch.zeros(1, dtype=torch.long))).all(1)
    assert 0.4 < dropped.float().mean() < 0.6
    m.eval()
    torch.testing.assert_close(m(cat, dense, pos) - m(cat, dense), m.position_tower(pos))


@pytest.mark.parametrize("config", [RankerConfig(structure="parallel"), RankerConfig(cross_rank=0),
                                    RankerConfig(cross_experts=3, cross_rank=4, tasks=("a", "b", "c"))])
def test_variants_train(config):
    torch.manual_seed(0)
    m = Ranker(CARDS, 4, num_positions=11, config=config)
    cat, dense, pos = inputs()
    out = m(cat, dense, pos)
    assert out.shape == (6, len(config.tasks))
    out.sum().backward()
    assert m.embedding.weight.grad is not None
    if config.cross_experts > 1:
        assert isinstance(m.cross, CrossNetMix)


def test_dense_only_and_categorical_only():
    assert Ranker((), 3, 2)(torch.zeros(2, 0, dtype=torch.long), torch.randn(2, 3)).shape == (2, 2)
    assert Ranker((4,), 0, 2)(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 0)).shape == (2, 2)
    with pytest.raises(ValueError, match="at least one"):
        Ranker((), 0, 2)


@pytest.mark.parametrize("kwargs", [{"tasks": ()}, {"tasks": ("a", "a")}, {"structure": "tree"},
                                    {"cross_experts": 2, "cross_rank": 0}, {"deep_channels": ()},
                                    {"dropout": 1.0}, {"embedding_dim": 0}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="ranker"):
        RankerConfig(**kwargs)
