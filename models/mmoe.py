"""Multi-gate Mixture-of-Experts: shared experts, one softmax gate and one tower per task."""
from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn


class MLP(nn.Sequential):
    r"""``Linear -> ReLU (-> Dropout)`` per hidden size, then an optional output ``Linear``.

    Args:
        in_channels (int): input size.
        hidden_channels (tuple[int, ...]): sizes of the hidden layers (may be empty).
        out_channels (int, optional): size of a final linear layer without activation;
            :obj:`None` for none. (default: :obj:`None`)
        dropout (float, optional): dropout after each hidden activation. (default: :obj:`0.0`)

    Shapes: (*, in_channels) -> (*, out_channels or hidden_channels[-1] or in_channels).
    """

    def __init__(self, in_channels: int, hidden_channels: tuple[int, ...] = (), out_channels: int | None = None,
                 dropout: float = 0.0) -> None:
        if in_channels < 1 or any(h < 1 for h in hidden_channels) or (out_channels is not None and out_channels < 1):
            raise ValueError(f"MLP sizes must be >= 1, got {in_channels}, {hidden_channels}, {out_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        size = in_channels
        for h in hidden_channels:
            layers += [nn.Linear(size, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            size = h
        if out_channels is not None:
            layers.append(nn.Linear(size, out_channels))
            size = out_channels
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, size

    def reset_parameters(self) -> None:
        for m in self:
            if isinstance(m, nn.Linear):
                m.reset_parameters()


class GroupedLinear(nn.Module):
    r"""G independent linear maps applied to G slices at once: :math:`y_g = x_g W_g + b_g`, as one
    batched matrix product (ONNX ``MatMul``).

    Args:
        groups (int): G. in_channels (int): D_in. out_channels (int): D_out.

    Shapes: (G, B, D_in) -> (G, B, D_out).
    """

    def __init__(self, groups: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if min(groups, in_channels, out_channels) < 1:
            raise ValueError(f"groups, in_channels and out_channels must be >= 1, got {groups}, {in_channels}, "
                             f"{out_channels}")
        self.groups, self.in_channels, self.out_channels = groups, in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(groups, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(groups, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels)  # nn.Linear's default, per group
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight) + self.bias.unsqueeze(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(groups={self.groups}, {self.in_channels}, {self.out_channels})"


class MMoE(nn.Module):
    r"""Multi-gate Mixture-of-Experts of `"Modeling Task Relationships in Multi-task Learning with
    Multi-gate Mixture-of-Experts" <https://doi.org/10.1145/3219819.3220007>`_ (Ma et al., KDD 2018, eq. 5-6):

    .. math::
        y_t = h^t\big(f^t(\mathbf{x})\big), \qquad
        f^t(\mathbf{x}) = \sum_{i=1}^{K} g^t(\mathbf{x})_i\, f_i(\mathbf{x}), \qquad
        g^t(\mathbf{x}) = \mathrm{softmax}(\mathbf{W}_{g^t} \mathbf{x})

    K shared expert MLPs :math:`f_i`, one gate :math:`g^t` and one tower :math:`h^t` per task.
    Experts, gates and towers are each evaluated as one batched op (a few large kernels instead of
    many small ones, which matters for CPU serving).

    Args:
        in_channels (int): D, input size.
        num_tasks (int): T.
        num_experts (int, optional): K. (default: :obj:`4`)
        expert_channels (tuple[int, ...], optional): hidden sizes of each expert (ReLU after each);
            the last one is H. (default: :obj:`(64,)`)
        tower_channels (tuple[int, ...], optional): hidden sizes of each tower before its
            1-unit output. (default: :obj:`(32,)`)
        dropout (float, optional): dropout on the expert outputs. (default: :obj:`0.0`)

    Shapes: (B, D) -> logits (B, T); ``gates(x)`` gives the (B, T, K) mixing weights.
    """

    def __init__(self, in_channels: int, num_tasks: int, num_experts: int = 4,
                 expert_channels: tuple[int, ...] = (64,), tower_channels: tuple[int, ...] = (32,),
                 dropout: float = 0.0) -> None:
        super().__init__()
        if min(in_channels, num_tasks, num_experts) < 1 or not expert_channels:
            raise ValueError(f"in_channels, num_tasks, num_experts must be >= 1 and expert_channels non-empty, got "
                             f"{in_channels}, {num_tasks}, {num_experts}, {expert_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.num_tasks, self.num_experts = in_channels, num_tasks, num_experts
        self.expert_channels, self.tower_channels = tuple(expert_channels), tuple(tower_channels)
        self.expert_in = nn.Linear(in_channels, num_experts * expert_channels[0])  # first layer of all experts
        self.expert_layers = nn.ModuleList(GroupedLinear(num_experts, a, b)
                                           for a, b in pairwise(expert_channels))
        self.gate = nn.Linear(in_channels, num_tasks * num_experts)  # all task gates
        sizes = (expert_channels[-1], *tower_channels, 1)
        self.towers = nn.ModuleList(GroupedLinear(num_tasks, a, b) for a, b in pairwise(sizes))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.expert_in, self.gate, *self.expert_layers, *self.towers):
            m.reset_parameters()

    def gates(self, x: Tensor) -> Tensor:
        return torch.softmax(self.gate(x).view(-1, self.num_tasks, self.num_experts), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.expert_in(x)).view(-1, self.num_experts, self.expert_channels[0])  # (B, K, H1)
        if len(self.expert_layers):
            h = h.transpose(0, 1)  # (K, B, H1)
            for layer in self.expert_layers:
                h = torch.relu(layer(h))
            h = h.transpose(0, 1)
        h = self.dropout(h)
        out = torch.matmul(self.gates(x), h).transpose(0, 1)  # (B, T, K) @ (B, K, H) -> (T, B, H)
        for i, tower in enumerate(self.towers):
            out = tower(out)
            if i < len(self.towers) - 1:
                out = torch.relu(out)
        return out.squeeze(-1).transpose(0, 1)  # (B, T)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, num_tasks={self.num_tasks}, "
                f"num_experts={self.num_experts}, expert_channels={self.expert_channels}, "
                f"tower_channels={self.tower_channels})")
