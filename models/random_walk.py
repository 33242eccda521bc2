"""Random-walk importance neighbourhoods on the Pin–Board graph, in plain torch (no torch-cluster)."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


class Neighborhood(NamedTuple):
    """Top-T importance neighbourhoods of B query pins.

    neighbors: (B, T) int64 pin indices, the query itself where ``mask`` is False;
    weights: (B, T) float, normalised visit counts (each row sums to 1, or 0 when no pin was reached);
    mask: (B, T) bool, True for a real neighbour.
    """

    neighbors: Tensor
    weights: Tensor
    mask: Tensor


Sampler = Callable[[Tensor], Neighborhood]
"""Anything that maps query pins (B,) to their :class:`Neighborhood`."""


def _csr(row: Tensor, col: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """(ptr, col) of a CSR matrix; a stable sort keeps each row's columns in their input order."""
    order = torch.sort(row, stable=True).indices
    ptr = torch.zeros(num_rows + 1, dtype=torch.long, device=row.device)
    ptr[1:] = torch.cumsum(torch.bincount(row, minlength=num_rows), 0)
    return ptr, col[order]


class PinBoardGraph:
    r"""The bipartite Pin–Board graph in CSR form, both ways.

    Args:
        pin_idx (Tensor): (E,) int64 pin end of each edge, in ``[0, num_pins)``.
        board_idx (Tensor): (E,) int64 board end of each edge, in ``[0, num_boards)``.
        num_pins (int): N, number of pins (pins without edges are allowed).
        num_boards (int): M, number of boards.
        edge_time (Tensor, optional): (E,) int64 time of each edge (e.g. ns since the epoch). When
            given, a duplicate edge keeps its earliest time, ``edge_time`` (E',) is kept aligned
            with ``pin_boards``, and ``board_time_pins`` (E',) lists each board's pins (between
            the same ``board_ptr`` offsets) in time order, ties to the lower pin, for the samplers
            of time-near pins (:class:`~pinrec.models.pair_sampler.SequencePairSampler`). (default: :obj:`None`)

    Duplicate edges are dropped. Attributes: ``pin_ptr`` (N + 1,) / ``pin_boards`` (E',) list the
    boards of each pin; ``board_ptr`` (M + 1,) / ``board_pins`` (E',) the pins of each board.
    Raises ``ValueError`` on a bad shape, dtype or index.
    """

    def __init__(self, pin_idx: Tensor, board_idx: Tensor, num_pins: int, num_boards: int,
                 edge_time: Tensor | None = None) -> None:
        if num_pins < 0 or num_boards < 0:
            raise ValueError(f"num_pins and num_boards must be >= 0, got {num_pins} and {num_boards}")
        for name, idx, size in (("pin_idx", pin_idx, num_pins), ("board_idx", board_idx, num_boards)):
            if idx.dim() != 1 or idx.dtype != torch.long:
                raise ValueError(f"{name} must be a 1-D int64 tensor, got {tuple(idx.shape)} {idx.dtype}")
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
                raise ValueError(f"{name} must lie in [0, {size}), got [{int(idx.min())}, {int(idx.max())}]")
        if pin_idx.shape != board_idx.shape:
            raise ValueError(f"pin_idx {tuple(pin_idx.shape)} and board_idx {tuple(board_idx.shape)} differ in shape")
        if edge_time is not None and (edge_time.shape != pin_idx.shape or edge_time.dtype != torch.long):
            raise ValueError(f"edge_time must be an int64 tensor shaped like pin_idx {tuple(pin_idx.shape)}, "
                             f"got {tuple(edge_time.shape)} {edge_time.dtype}")
        self.num_pins, self.num_boards = num_pins, num_boards
        key, inverse = torch.unique(pin_idx * max(num_boards, 1) + board_idx, return_inverse=True)  # (pin, board)
        pins, boards = key // max(num_boards, 1), key % max(num_boards, 1)
        self.pin_ptr, self.pin_boards = _csr(pins, boards, num_pins)
        self.board_ptr, self.board_pins = _csr(boards, pins, num_boards)
        self.edge_time: Tensor | None = None
        self.board_time_pins: Tensor | None = None
        if edge_time is not None:  # earliest time of each (pin, board); each board's pins by (time, pin)
            first = torch.full((key.numel(),), torch.iinfo(torch.long).max, dtype=torch.long, device=key.device)
            self.edge_time = first.scatter_reduce(0, inverse, edge_time, reduce="amin")
            by_time = torch.sort(self.edge_time, stable=True).indices  # key order breaks ties by pin
            self.board_time_pins = _csr(boards[by_time], pins[by_time], num_boards)[1]

    @property
    def num_edges(self) -> int:
        return self.pin_boards.numel()

    @property
    def device(self) -> torch.device:
        return self.pin_ptr.device

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_pins={self.num_pins}, num_boards={self.num_boards}, "
                f"num_edges={self.num_edges})")


def _step(ptr: Tensor, col: Tensor, node: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One uniform hop from each node; returns (next node, whether the node had any edge)."""
    start, deg = ptr[node], ptr[node + 1] - ptr[node]
    u = torch.rand(node.shape, generator=generator, device=node.device, dtype=torch.float64)
    offset = torch.minimum((u * deg).long(), deg - 1).clamp_min(0)
    return col[(start + offset).clamp_max(col.numel() - 1)], deg > 0


class ImportanceNeighborSampler:
    r"""The importance-based neighbourhoods of PinSage, from
    `"Graph Convolutional Neural Networks for Web-Scale Recommender Systems"
    <https://arxiv.org/abs/1806.01973>`_ (Ying et al., KDD 2018).

    From each query pin :math:`q`, ``num_walks`` random walks take ``walk_length`` steps
    pin :math:`\to` board :math:`\to` pin; before each step a walk jumps back to :math:`q` with
    probability ``restart_prob``. The neighbourhood :math:`N(q)` is the ``num_neighbors`` pins
    (other than :math:`q`) visited most often, weighted by their normalised visit counts
    :math:`\alpha`; ties go to the lower pin index. Vectorised over all walks of the batch.

    Args:
        graph (PinBoardGraph): the graph to walk on.
        num_neighbors (int, optional): T, neighbours kept per pin. (default: :obj:`10`)
        num_walks (int, optional): walks per query pin. (default: :obj:`100`)
        walk_length (int, optional): pin-to-pin steps per walk. (default: :obj:`3`)
        restart_prob (float, optional): probability of jumping back to the query before each step.
            (default: :obj:`0.5`)
        seed (int, optional): seed of the sampler's own ``torch.Generator``; successive calls
            continue its stream. (default: :obj:`None`, non-deterministic)

    Shapes: ``sampler(pin_idx)`` maps (B,) int64 to a :class:`Neighborhood` of (B, T) tensors.
    """

    def __init__(self, graph: PinBoardGraph, num_neighbors: int = 10, num_walks: int = 100,
                 walk_length: int = 3, restart_prob: float = 0.5, seed: int | None = None) -> None:
        if min(num_neighbors, num_walks, walk_length) < 1:
            raise ValueError("num_neighbors, num_walks and walk_length must be >= 1")
        if not 0.0 <= restart_prob < 1.0:
            raise ValueError(f"restart_prob must lie in [0, 1), got {restart_prob}")
        self.graph = graph
        self.num_neighbors, self.num_walks = num_neighbors, num_walks
        self.walk_length, self.restart_prob = walk_length, restart_prob
        self.generator = torch.Generator(device=graph.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __call__(self, pin_idx: Tensor) -> Neighborhood:
        g, n, t, gen = self.graph, self.graph.num_pins, self.num_neighbors, self.generator
        if pin_idx.dim() != 1 or pin_idx.dtype != torch.long:
            raise ValueError(f"pin_idx must be a 1-D int64 tensor, got {tuple(pin_idx.shape)} {pin_idx.dtype}")
        if pin_idx.numel() and (int(pin_idx.min()) < 0 or int(pin_idx.max()) >= n):
            raise ValueError(f"pin_idx must lie in [0, {n})")
        b = pin_idx.numel()
        neighbors = pin_idx.unsqueeze(1).repeat(1, t)
        weights = torch.zeros(b, t, device=pin_idx.device)
        mask = torch.zeros(b, t, dtype=torch.bool, device=pin_idx.device)
        if b == 0 or g.num_edges == 0:
            return Neighborhood(neighbors, weights, mask)

        start = pin_idx.repeat_interleave(self.num_walks)
        row = torch.arange(b, device=pin_idx.device).repeat_interleave(self.num_walks)
        cur, visits = start, []
        for _ in range(self.walk_length):
            restart = torch.rand(cur.shape, generator=gen, device=cur.device) < self.restart_prob
            cur = torch.where(restart, start, cur)
            board, moved = _step(g.pin_ptr, g.pin_boards, cur, gen)
            cur = torch.where(moved, _step(g.board_ptr, g.board_pins, board, gen)[0], start)
            visits.append((row * n + cur)[moved & (cur != start)])

        key, counts = torch.unique(torch.cat(visits), return_counts=True)  # sorted: row-major, pin ascending
        if key.numel() == 0:
            return Neighborhood(neighbors, weights, mask)
        rows, pins = key // n, key % n
        order = torch.sort(rows * (int(counts.max()) + 1) - counts, stable=True).indices  # row asc, count desc
        rows, pins, counts = rows[order], pins[order], counts[order]
        per_row = torch.bincount(rows, minlength=b)
        rank = torch.arange(rows.numel(), device=rows.device) - (torch.cumsum(per_row, 0) - per_row)[rows]
        keep = rank < t
        rows, rank = rows[keep], rank[keep]
        neighbors[rows, rank] = pins[keep]
        weights[rows, rank] = counts[keep].to(weights.dtype)
        mask[rows, rank] = True
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1.0)
        return Neighborhood(neighbors, weights, mask)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.graph}, num_neighbors={self.num_neighbors}, "
                f"num_walks={self.num_walks}, walk_length={self.walk_length}, restart_prob={self.restart_prob})")


class FixedNeighborhoods:
    r"""Neighbourhoods sampled once per pin and then looked up, as PinSage does for inference:
    every pin keeps one neighbourhood, shared by all the computations that need it.

    Args:
        neighborhood (Neighborhood): (N, T) neighbourhoods of all N pins, row ``i`` for pin ``i``.
    """

    def __init__(self, neighborhood: Neighborhood) -> None:
        self.neighborhood = neighborhood

    @classmethod
    def from_sampler(cls, sampler: Sampler, num_pins: int, batch_size: int = 1024,
                     device: torch.device | str = "cpu") -> FixedNeighborhoods:
        """Samples the neighbourhoods of pins ``0..num_pins-1`` in batches of ``batch_size``."""
        if num_pins < 1 or batch_size < 1:
            raise ValueError(f"num_pins and batch_size must be >= 1, got {num_pins} and {batch_size}")
        parts = [sampler(idx) for idx in torch.arange(num_pins, device=device).split(batch_size)]
        return cls(Neighborhood(*(torch.cat(p) for p in zip(*parts))))

    def __call__(self, pin_idx: Tensor) -> Neighborhood:
        return Neighborhood(*(part[pin_idx] for part in self.neighborhood))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_pins={self.neighborhood.neighbors.size(0)})"
