"""Training examples for PinSage: positive pairs, random negatives and curriculum hard negatives.

Following `"Graph Convolutional Neural Networks for Web-Scale Recommender Systems"
<https://arxiv.org/abs/1806.01973>`_ (Ying et al., KDD 2018, section 3.3):

* a positive pair :math:`(q, i)` is two pins that belong together: saved to the same board
  (:class:`BoardPairSampler`), to the same board close in time (:class:`SequencePairSampler`) or
  visited often by random walks from :math:`q` (:class:`WalkPairSampler`); or, with a query made
  of several pins, a board's latest pins and the pin saved next (:class:`HistoryPairSampler`);
* negatives are pins drawn uniformly, shared by the whole batch;
* hard negatives (:class:`HardNegativeSampler`) are pins ranked in a middle band of the query's
  personalised-PageRank scores, estimated by random walks with restart: related to the query, but
  less than the positive (the paper takes ranks 2000-5000 out of billions of pins; scale the band to
  the graph), added from a given epoch on in a curriculum (:func:`hard_negatives_at`).

Every sampler takes an explicit ``torch.Generator`` (the walkers own theirs), so a seeded trainer
draws the same examples on every run.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pinrec.models.random_walk import ImportanceNeighborSampler, PinBoardGraph


def _check_batch(index: Tensor, size: int, name: str) -> None:
    if index.dim() != 1 or index.dtype != torch.long:
        raise ValueError(f"{name} must be a 1-D int64 tensor, got {tuple(index.shape)} {index.dtype}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ValueError(f"{name} must lie in [0, {size})")


class BoardPairSampler:
    r"""Positive pairs from co-saves: the query is the pin of an edge (pin, board) and the positive a
    uniformly drawn *other* pin of the same board.

    The anchors are the edges whose board holds at least two pins (a board with one pin has no pair);
    an epoch is one pass over them, so a pin on many boards is a query as often as it was saved.

    Args:
        graph (PinBoardGraph): the (training) graph.

    Shapes: ``sampler(anchor, generator)`` maps anchor indices (B,) in ``[0, len(sampler))`` to
    ``(query, positive)``, both (B,) int64 pin indices with ``query != positive``.
    """

    def __init__(self, graph: PinBoardGraph) -> None:
        self.graph = graph
        pins = torch.repeat_interleave(torch.arange(graph.num_pins, device=graph.device), graph.pin_ptr.diff())
        size = graph.board_ptr.diff()
        keep = size[graph.pin_boards] >= 2
        self.anchor_pins, self.anchor_boards = pins[keep], graph.pin_boards[keep]

    def __len__(self) -> int:
        return self.anchor_pins.numel()

    def __call__(self, anchor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_batch(anchor, len(self), "anchor")
        g = self.graph
        query, board = self.anchor_pins[anchor], self.anchor_boards[anchor]
        start, size = g.board_ptr[board], g.board_ptr[board + 1] - g.board_ptr[board]
        u = torch.rand(anchor.shape, generator=generator, device=anchor.device, dtype=torch.float64)
        offset = torch.minimum((u * (size - 1)).long(), size - 2)  # uniform over the size - 1 others
        positive = g.board_pins[start + offset]
        # The query's own slot maps to the last slot, which the draw above never picks.
        positive = torch.where(positive == query, g.board_pins[start + size - 1], positive)
        return query, positive

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.graph}, anchors={len(self)})"


def _time_slots(graph: PinBoardGraph, who: str) -> tuple[Tensor, Tensor, Tensor]:
    """The slots of ``graph.board_time_pins``: per board its size (M,), and per slot (E',) its
    board and its index. Raises unless the graph was built with ``edge_time``."""
    if graph.edge_time is None:
        raise ValueError(f"{who} needs a graph built with edge_time (boards in time order)")
    size = graph.board_ptr.diff()
    board = torch.repeat_interleave(torch.arange(graph.num_boards, device=graph.device), size)
    return size, board, torch.arange(graph.num_edges, device=graph.device)


class SequencePairSampler:
    r"""Positive pairs from time-near co-saves: the query is the pin of an edge (pin, board) and the
    positive a uniformly drawn other pin of the same board saved within ``window`` saves of it
    (before or after) in the board's time order.

    On a user x item log (users as boards) a user's items are far from equally related: a
    MovieLens user rates hundreds of movies over months, so "any two movies of a user" is a weak,
    popularity-dominated signal, while movies rated close together share a taste of the moment
    (the item-to-item analogue of the windowed co-occurrence of item2vec / word2vec).

    Args:
        graph (PinBoardGraph): the (training) graph, built with ``edge_time`` so that every board
            lists its pins in time order.
        window (int, optional): W, the largest distance in saves between query and positive.
            (default: :obj:`20`)

    The anchors are the edges of the boards holding at least two pins, in the boards' time order.
    Shapes: ``sampler(anchor, generator)`` maps (B,) anchors to ``(query, positive)``, both (B,)
    int64 with ``query != positive``.
    """

    def __init__(self, graph: PinBoardGraph, window: int = 20) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.graph, self.window = graph, window
        size, board, slot = _time_slots(graph, "SequencePairSampler")
        keep = size[board] >= 2
        self.anchor_slots = slot[keep]  # positions in board_time_pins
        start, end = graph.board_ptr[board[keep]], graph.board_ptr[board[keep] + 1]
        self.lo = torch.maximum(self.anchor_slots - window, start)  # first slot of the window
        self.hi = torch.minimum(self.anchor_slots + window, end - 1)  # last slot of the window

    def __len__(self) -> int:
        return self.anchor_slots.numel()

    def __call__(self, anchor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_batch(anchor, len(self), "anchor")
        slot, lo, hi = self.anchor_slots[anchor], self.lo[anchor], self.hi[anchor]
        others = hi - lo  # slots in the window besides the anchor's own, >= 1
        u = torch.rand(anchor.shape, generator=generator, device=anchor.device, dtype=torch.float64)
        offset = torch.minimum((u * others).long(), others - 1)
        pick = lo + offset
        pick = pick + (pick >= slot).long()  # skip the anchor's own slot
        pins = self.graph.board_time_pins
        return pins[slot], pins[pick]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.graph}, window={self.window}, anchors={len(self)})"


class HistoryPairSampler:
    r"""Next-item examples from boards in time order: the query is the ``length`` pins saved to a
    board just before a pin (most recent last, ``-1`` padding on the left when fewer came before)
    and the positive that pin.

    Trained with the query embedded as the mean of its pins' embeddings, the pin embeddings are
    fitted to exactly how a user is represented at retrieval time (the mean of their latest pins,
    ``retrieval_eval.recent_items``) and to what is asked of it (their next pin), instead of to
    a pairwise surrogate.

    Args:
        graph (PinBoardGraph): the (training) graph, built with ``edge_time``.
        length (int, optional): L, the pins of the query. (default: :obj:`5`)

    The anchors are the slots of every board's time order that have a slot before them.
    Shapes: ``sampler(anchor, generator)`` maps (B,) anchors to ``(history, positive)``: (B, L)
    int64 pin indices or ``-1``, at least one real pin per row, and (B,) int64.
    """

    def __init__(self, graph: PinBoardGraph, length: int = 5) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.graph, self.length = graph, length
        _, board, slot = _time_slots(graph, "HistoryPairSampler")
        keep = slot > graph.board_ptr[board]  # not the board's first slot
        self.anchor_slots, self.start = slot[keep], graph.board_ptr[board[keep]]

    def __len__(self) -> int:
        return self.anchor_slots.numel()

    def __call__(self, anchor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_batch(anchor, len(self), "anchor")
        slot, start = self.anchor_slots[anchor], self.start[anchor]
        back = torch.arange(self.length, 0, -1, device=slot.device)  # L, ..., 1 slots back
        prev = slot.unsqueeze(1) - back.unsqueeze(0)
        real = prev >= start.unsqueeze(1)
        pins = self.graph.board_time_pins
        history = torch.where(real, pins[prev.clamp_min(0)], torch.full_like(prev, -1))
        return history, pins[slot]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.graph}, length={self.length}, anchors={len(self)})"


class WalkPairSampler:
    r"""Positive pairs from random-walk co-visits (the paper's choice): the positive of query
    :math:`q` is drawn from :math:`q`'s importance neighbourhood with probability proportional
    to its visit count.

    Args:
        walker (ImportanceNeighborSampler): gives the neighbourhoods (its own generator drives the
            walks).

    The anchors are the pins that have at least one other pin on one of their boards.
    Shapes: ``sampler(anchor, generator)`` maps (B,) anchors to ``(query, positive)``, both (B,).
    """

    def __init__(self, walker: ImportanceNeighborSampler) -> None:
        self.walker = walker
        g = walker.graph
        pins = torch.repeat_interleave(torch.arange(g.num_pins, device=g.device), g.pin_ptr.diff())
        shared = g.board_ptr.diff()[g.pin_boards] >= 2
        self.anchor_pins = torch.unique(pins[shared])

    def __len__(self) -> int:
        return self.anchor_pins.numel()

    def __call__(self, anchor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_batch(anchor, len(self), "anchor")
        query = self.anchor_pins[anchor]
        hood = self.walker(query)
        # A walk may (rarely) reach nobody: fall back to uniform over the slots, i.e. the query itself.
        weights = torch.where(hood.mask.any(1, keepdim=True), hood.weights, torch.ones_like(hood.weights))
        pick = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        return query, hood.neighbors.gather(1, pick.unsqueeze(1)).squeeze(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.walker}, anchors={len(self)})"


def random_negatives(num_pins: int, num: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """(num,) pins drawn uniformly with replacement, shared by a batch (the paper's easy negatives)."""
    if num_pins < 1 or num < 0:
        raise ValueError(f"num_pins must be >= 1 and num >= 0, got {num_pins} and {num}")
    return torch.randint(0, num_pins, (num,), generator=generator, device=device)


def hard_negatives_at(epoch: int, from_epoch: int, max_hard: int) -> int:
    """The curriculum: no hard negatives before ``from_epoch`` (0-based), then one more per epoch
    (the paper adds :math:`n - 1` in epoch :math:`n`), at most ``max_hard`` per query."""
    return 0 if epoch < from_epoch else min(epoch - from_epoch + 1, max_hard)


class HardNegativeSampler:
    r"""Hard negatives: pins ranked in ``[lo, hi)`` by the query's personalised-PageRank score.

    The scores are visit counts of ``walker``'s random walks with restart from the query (rank 0 =
    the most visited pin other than the query; ties to the lower pin index); ``walker`` must keep
    ``num_neighbors >= hi`` pins. Each hard negative is drawn uniformly from the ranked pins in the
    band. A query whose walks reach fewer than ``lo + 1`` pins has no band: it gets uniform random pins
    instead, and :attr:`last_fallback` reports the share of such queries in the last call.

    Args:
        walker (ImportanceNeighborSampler): the PageRank estimator (many walks, a few steps).
        band (tuple[int, int]): ``(lo, hi)``, the ranks kept, ``0 <= lo < hi <= walker.num_neighbors``.

    Shapes: ``sampler(query, num, generator)`` maps (B,) int64 to (B, num) int64 pin indices.
    """

    def __init__(self, walker: ImportanceNeighborSampler, band: tuple[int, int]) -> None:
        lo, hi = band
        if not 0 <= lo < hi:
            raise ValueError(f"band must satisfy 0 <= lo < hi, got {band}")
        if walker.num_neighbors < hi:
            raise ValueError(f"the walker keeps {walker.num_neighbors} ranked pins; band {band} needs {hi}")
        self.walker, self.band = walker, (lo, hi)
        self.last_fallback = 0.0

    def __call__(self, query: Tensor, num: int, generator: torch.Generator) -> Tensor:
        g = self.walker.graph
        _check_batch(query, g.num_pins, "query")
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        lo, hi = self.band
        hood = self.walker(query)
        in_band = hood.mask[:, lo:hi].to(torch.float)
        has_band = in_band.sum(1) > 0
        self.last_fallback = 1.0 - has_band.float().mean().item() if query.numel() else 0.0
        weights = torch.where(has_band.unsqueeze(1), in_band, torch.ones_like(in_band))
        pick = torch.multinomial(weights, num, replacement=True, generator=generator)
        ranked = hood.neighbors[:, lo:hi].gather(1, pick)
        uniform = torch.randint(0, g.num_pins, ranked.shape, generator=generator, device=query.device)
        return torch.where(has_band.unsqueeze(1), ranked, uniform)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.walker}, band={self.band})"
