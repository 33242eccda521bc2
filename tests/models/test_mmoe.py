"""MMoE: equal to a per-expert / per-task reference, gates are distributions, towers are separate."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.mmoe import MLP, GroupedLinear, MMoE

torch.set_num_threads(1)


def reference(m: MMoE, x: torch.Tensor) -> torch.Tensor:
    """MMoE written out expert by expert and task by task (Ma et al., eq. 5-6)."""
    k, h1 = m.num_experts, m.expert_channels[0]
    w, b = m.expert_in.weight.view(k, h1, -1), m.expert_in.bias.view(k, h1)
    experts = []
    for i in range(k):
        e = torch.relu(x @ w[i].T + b[i])
        for layer in m.expert_layers:
            e = torch.relu(e @ layer.weight[i] + layer.bias[i])
        experts.append(e)
    gw, gb = m.gate.weight.view(m.num_tasks, k, -1), m.gate.bias.view(m.num_tasks, k)
    out = []
    for t in range(m.num_tasks):
        g = torch.softmax(x @ gw[t].T + gb[t], dim=-1)
        h = sum(g[:, i:i + 1] * experts[i] for i in range(k))
        for j, tower in enumerate(m.towers):
            h = h @ tower.weight[t] + tower.bias[t]
            if j < len(m.towers) - 1:
                h = torch.relu(h)
        out.append(h[:, 0])
    return torch.stack(out, 1)


@pytest.mark.parametrize("experts, towers", [((8,), (4,)), ((8, 6), ()), ((5,), (4, 3))])
def test_matches_the_reference(experts, towers):
    torch.manual_seed(0)
    m = MMoE(7, num_tasks=3, num_experts=4, expert_channels=experts, tower_channels=towers)
    x = torch.randn(10, 7)
    out = m(x)
    assert out.shape == (10, 3)
    torch.testing.assert_close(out, reference(m, x), rtol=1e-5, atol=1e-6)


def test_gates_are_distributions_over_experts():
    m = MMoE(4, num_tasks=2, num_experts=3)
    g = m.gates(torch.randn(5, 4))
    assert g.shape == (5, 2, 3)
    torch.testing.assert_close(g.sum(-1), torch.ones(5, 2))


def test_a_task_loss_leaves_the_other_tower_alone():
    m = MMoE(4, num_tasks=2, num_experts=3, tower_channels=(4,))
    m(torch.randn(6, 4))[:, 0].sum().backward()
    for tower in m.towers:
        assert tower.weight.grad[0].abs().sum() > 0
        assert tower.weight.grad[1].abs().sum() == 0
    assert m.expert_in.weight.grad.abs().sum() > 0


def test_grouped_linear_and_mlp():
    torch.manual_seed(0)
    g = GroupedLinear(3, 4, 2)
    x = torch.randn(3, 5, 4)
    want = torch.stack([x[i] @ g.weight[i] + g.bias[i] for i in range(3)])
    torch.testing.assert_close(g(x), want)
    mlp = MLP(4, (8, 6), out_channels=2, dropout=0.1)
    assert mlp(torch.randn(3, 4)).shape == (3, 2) and mlp.out_channels == 2
    assert MLP(4).out_channels == 4
    with pytest.raises(ValueError):
        MLP(4, (0,))
    with pytest.raises(ValueError):
        MMoE(4, num_tasks=0)
