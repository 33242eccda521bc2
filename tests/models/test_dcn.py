"""DCN-v2 cross networks: the layer formula, low rank = a factorised full rank, DCN-Mix, degrees."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.dcn import CrossNet, CrossNetMix

torch.set_num_threads(1)


def test_full_rank_layer_is_the_formula():
    torch.manual_seed(0)
    net = CrossNet(4, num_layers=2)
    x0 = torch.randn(3, 4)
    x1 = x0 * (x0 @ net.layers[0].weight.T + net.layers[0].bias) + x0
    x2 = x0 * (x1 @ net.layers[1].weight.T + net.layers[1].bias) + x1
    torch.testing.assert_close(net(x0), x2)
    assert net(x0).shape == (3, 4)


def test_low_rank_equals_full_rank_with_w_equal_uv():
    torch.manual_seed(0)
    low = CrossNet(6, num_layers=3, rank=2)
    full = CrossNet(6, num_layers=3)
    with torch.no_grad():
        for lo, fu in zip(low.layers, full.layers):
            v, u = lo[0], lo[1]
            u.bias.normal_()
            fu.weight.copy_(u.weight @ v.weight)  # (D, r) @ (r, D)
            fu.bias.copy_(u.bias)
    x0 = torch.randn(5, 6)
    torch.testing.assert_close(low(x0), full(x0), rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in low.parameters()) == 3 * (2 * 6 * 2 + 6)


def test_one_layer_without_bias_is_a_degree_two_polynomial():
    torch.manual_seed(0)
    net = CrossNet(3, num_layers=1)
    x = torch.randn(4, 3)
    t = 1.7
    # x0 * (W x0) scales with t^2, the residual with t
    torch.testing.assert_close(net(t * x) - t * x, t ** 2 * (net(x) - x), rtol=1e-5, atol=1e-6)


def test_mix_with_one_expert_is_the_formula():
    torch.manual_seed(0)
    net = CrossNetMix(5, num_layers=1, rank=3, num_experts=1)
    with torch.no_grad():
        net.bias.normal_()
    x0 = torch.randn(4, 5)
    v = torch.tanh(x0 @ net.V[0, 0])
    v = torch.tanh(v @ net.C[0, 0])
    expected = x0 * (v @ net.U[0, 0] + net.bias[0]) + x0  # the softmax of one gate is 1
    torch.testing.assert_close(net(x0), expected)


def test_identical_experts_mix_to_one_expert():
    torch.manual_seed(0)
    one = CrossNetMix(5, num_layers=2, rank=3, num_experts=1)
    many = CrossNetMix(5, num_layers=2, rank=3, num_experts=4)
    with torch.no_grad():
        for name in ("V", "C", "U"):
            getattr(many, name).copy_(getattr(one, name).expand_as(getattr(many, name)))
        many.bias.copy_(one.bias)
    x0 = torch.randn(6, 5)
    torch.testing.assert_close(many(x0), one(x0), rtol=1e-5, atol=1e-6)
    assert "num_experts=4" in repr(many) and "rank=3" in repr(many)


def test_gradients_reach_every_parameter():
    net = CrossNetMix(4, num_layers=2, rank=2, num_experts=3)
    net(torch.randn(8, 4)).pow(2).sum().backward()
    # the bias starts at 0, so the first layer's output already depends on every V, C, U and gate
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("args", [(0, 1, None), (4, 0, None), (4, 2, 0)])
def test_bad_sizes_raise(args):
    with pytest.raises(ValueError):
        CrossNet(*args)
    with pytest.raises(ValueError):
        CrossNetMix(4, num_layers=1, rank=2, num_experts=0)
