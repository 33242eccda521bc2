"""DCN-v2 cross networks: explicit, bounded-degree feature crosses of the input vector."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class CrossNet(nn.Module):
    r"""The cross network of `"DCN V2: Improved Deep & Cross Network and Practical Lessons for
    Web-scale Learning to Rank Systems" <https://arxiv.org/abs/2008.13535>`_ (Wang et al., WWW 2021,
    eq. 1):

    .. math::
        \mathbf{x}_{l+1} = \mathbf{x}_0 \odot (\mathbf{W}_l \mathbf{x}_l + \mathbf{b}_l) + \mathbf{x}_l

    Layer :math:`l` holds every cross of the input features up to degree :math:`l + 1`. With
    ``rank`` set, :math:`\mathbf{W}_l = \mathbf{U}_l \mathbf{V}_l^\top` is low-rank
    (:math:`\mathbf{U}_l, \mathbf{V}_l \in \mathbb{R}^{D \times r}`, eq. 2), which costs
    :math:`2Dr` instead of :math:`D^2` multiply-adds per row and layer.

    Args:
        in_channels (int): D, size of :math:`\mathbf{x}_0`.
        num_layers (int, optional): L, number of cross layers. (default: :obj:`3`)
        rank (int, optional): r; :obj:`None` for full-rank :math:`\mathbf{W}_l`. (default: :obj:`None`)

    Shapes: (B, D) -> (B, D).
    """

    def __init__(self, in_channels: int, num_layers: int = 3, rank: int | None = None) -> None:
        super().__init__()
        if in_channels < 1 or num_layers < 1 or (rank is not None and rank < 1):
            raise ValueError(f"in_channels, num_layers and rank must be >= 1, got {in_channels}, {num_layers}, {rank}")
        self.in_channels, self.num_layers, self.rank = in_channels, num_layers, rank
        if rank is None:
            self.layers = nn.ModuleList(nn.Linear(in_channels, in_channels) for _ in range(num_layers))
        else:
            self.layers = nn.ModuleList(nn.Sequential(nn.Linear(in_channels, rank, bias=False),  # V^T
                                                      nn.Linear(rank, in_channels))  # U, b
                                        for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            for lin in (layer if isinstance(layer, nn.Sequential) else [layer]):
                nn.init.xavier_normal_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, num_layers={self.num_layers}, rank={self.rank})"


class CrossNetMix(nn.Module):
    r"""DCN-Mix, the mixture of low-rank cross experts of DCN V2 (Wang et al., WWW 2021, eq. 3):

    .. math::
        \mathbf{x}_{l+1} &= \sum_{i=1}^{K} G_i(\mathbf{x}_l)\, E_i(\mathbf{x}_l) + \mathbf{x}_l

        E_i(\mathbf{x}_l) &= \mathbf{x}_0 \odot \big(\mathbf{U}_l^i\, g(\mathbf{C}_l^i\,
            g(\mathbf{V}_l^{i\top} \mathbf{x}_l)) + \mathbf{b}_l\big),
        \qquad G(\mathbf{x}_l) = \mathrm{softmax}(\mathbf{W}^g_l \mathbf{x}_l)

    Each expert crosses features in its own rank-:math:`r` subspace (with a non-linear map
    :math:`g = \tanh` inside it); the gate mixes the experts per example. ``num_experts=1``
    is the low-rank :class:`CrossNet` with the extra :math:`g(\mathbf{C} \cdot)` map.

    Args:
        in_channels (int): D, size of :math:`\mathbf{x}_0`.
        num_layers (int, optional): L. (default: :obj:`2`)
        rank (int, optional): r. (default: :obj:`32`)
        num_experts (int, optional): K. (default: :obj:`4`)

    Shapes: (B, D) -> (B, D); experts are evaluated batched as (K, B, r) and (K, B, D) (one
    GEMM and two batched matrix products per layer).
    """

    def __init__(self, in_channels: int, num_layers: int = 2, rank: int = 32, num_experts: int = 4) -> None:
        super().__init__()
        if min(in_channels, num_layers, rank, num_experts) < 1:
            raise ValueError(f"in_channels, num_layers, rank and num_experts must be >= 1, got "
                             f"{in_channels}, {num_layers}, {rank}, {num_experts}")
        self.in_channels, self.num_layers, self.rank, self.num_experts = in_channels, num_layers, rank, num_experts
        shape = (num_layers, num_experts)
        self.V = nn.Parameter(torch.empty(*shape, in_channels, rank))
        self.C = nn.Parameter(torch.empty(*shape, rank, rank))
        self.U = nn.Parameter(torch.empty(*shape, rank, in_channels))
        self.bias = nn.Parameter(torch.empty(num_layers, in_channels))
        self.gates = nn.ModuleList(nn.Linear(in_channels, num_experts, bias=False) for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.V, self.C, self.U):
            for l in range(self.num_layers):
                for i in range(self.num_experts):
                    nn.init.xavier_normal_(p.data[l, i])
        nn.init.zeros_(self.bias)
        for gate in self.gates:
            gate.reset_parameters()

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        k, r = self.num_experts, self.rank
        for l, gate in enumerate(self.gates):
            v = torch.tanh(x @ self.V[l].permute(1, 0, 2).reshape(-1, k * r))  # (B, K r)
            v = torch.tanh(torch.matmul(v.view(-1, k, r).transpose(0, 1), self.C[l]))  # (K, B, r)
            experts = x0 * (torch.matmul(v, self.U[l]) + self.bias[l])  # (K, B, D)
            weights = torch.softmax(gate(x), dim=-1).T.unsqueeze(-1)  # (K, B, 1)
            x = (weights * experts).sum(0) + x
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, num_layers={self.num_layers}, rank={self.rank}, "
                f"num_experts={self.num_experts})")
