r"""PinSage's batches: seeded random streams, each rank's anchors, a batch's embeddings, one loss step.

A mixin of :class:`~pinrec.models.pinsage_loop.PinSageTrainer`; the training of `"Graph
Convolutional Neural Networks for Web-Scale Recommender Systems" <https://arxiv.org/abs/1806.01973>`_
(Ying et al., KDD 2018, section 3.3):

* an epoch is one pass over the positive-pair anchors (:mod:`pinrec.models.pair_sampler`), shuffled; each
  batch of B pairs gets ``num_negatives`` uniform negatives shared by the batch and, from epoch
  ``hard_negatives_from_epoch`` on, ``hard_negatives_at(epoch)`` hard negatives per query from the
  ``hard_negative_band`` of its personalised-PageRank ranking; loss :func:`pinrec.models.losses.max_margin_loss`
  over the (B, K + H) negatives (with ``positives="next"`` the query is the weighted mean of the
  embeddings of a board's latest pins and the positive the pin saved next) (or, with ``loss="softmax"``,
  :func:`~pinrec.models.losses.ranking_loss`'s sampled softmax;
  ``in_batch_negatives`` adds the other queries' positives), Adam; with neighbourhoods re-sampled once
  per epoch (``neighborhood_refresh="epoch"``) a batch whose receptive field is larger than the graph is
  embedded layer by layer over all pins, same values, fewer operations;
* determinism: every random stream (shuffle, pairs, negatives, walks) is re-seeded at the start of
  each epoch from ``(seed, epoch, rank)`` (:func:`stream_seed`), so resuming from a checkpoint gives
  the same model as training straight through;
* distributed: every rank takes a disjoint, equally long share of each epoch's anchors.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pinrec.models.config import PinSageTrainConfig
from pinrec.models.losses import max_margin_loss, ranking_loss
from pinrec.models.pair_sampler import (
    BoardPairSampler,
    HardNegativeSampler,
    HistoryPairSampler,
    SequencePairSampler,
    WalkPairSampler,
    random_negatives,
)
from pinrec.models.pinsage import PinSage, neighborhood_edges
from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    PinBoardGraph,
)


def stream_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A distinct, reproducible seed per (seed, epoch, rank, stream)."""
    return (((seed * 1_000_003 + epoch) * 10_007 + rank) * 101 + stream) % (2**63 - 1)


class PinSageBatches:
    """The per-epoch batches of a PinSage trainer; the trainer sets ``cfg``, ``rank``, ``world_size``,
    ``device``, ``graph``, the samplers (``neighbor_sampler``, ``pairs``, ``hard``), ``generator``,
    ``model``, ``optimizer`` and ``_history_weights`` ((L,) weights of a ``"next"`` query's pins)."""

    cfg: PinSageTrainConfig
    rank: int
    world_size: int
    device: torch.device
    graph: PinBoardGraph
    neighbor_sampler: ImportanceNeighborSampler
    pairs: BoardPairSampler | SequencePairSampler | HistoryPairSampler | WalkPairSampler
    hard: HardNegativeSampler
    generator: torch.Generator
    model: PinSage
    optimizer: torch.optim.Optimizer
    _history_weights: Tensor

    # ----------------------------------------------------------------------------------- training
    def _reseed(self, epoch: int) -> None:
        streams = [self.generator, self.neighbor_sampler.generator, self.hard.walker.generator]
        if isinstance(self.pairs, WalkPairSampler):
            streams.append(self.pairs.walker.generator)
        for i, gen in enumerate(streams):
            gen.manual_seed(stream_seed(self.cfg.seed, epoch, self.rank, i + 1))

    def _epoch_anchors(self, epoch: int) -> Tensor:
        """This rank's anchors: one shuffle shared by all ranks, cut into equal strided shares."""
        shuffle = torch.Generator().manual_seed(stream_seed(self.cfg.seed, epoch, 0, 0))
        order = torch.randperm(len(self.pairs), generator=shuffle)
        usable = order.numel() - order.numel() % self.world_size
        return order[:usable][self.rank::self.world_size].to(self.device)

    def _embed_batch(self, pins: Tensor, net: torch.nn.Module) -> Tensor:
        """(P, D) embeddings of the batch's unique pins, with gradients. With fixed neighbourhoods
        (``neighborhood_refresh="epoch"``) on one process, when computing every pin layer by layer
        (N * L * T messages) is cheaper than the batch's receptive field (P * (T + ... + T^L)
        messages), it does that and picks the batch's rows: the same values as ``net(pins)``, far
        fewer operations on a small graph whose batches touch most pins."""
        model, hood = self.model, self.model.sampler
        if not isinstance(hood, FixedNeighborhoods) or self.world_size > 1:
            return net(pins)
        t, layers = hood.neighborhood.neighbors.size(1), model.num_layers
        if model.num_pins * layers * t >= pins.numel() * sum(t ** (i + 1) for i in range(layers)):
            return net(pins)
        edge_index, edge_weight = neighborhood_edges(hood.neighborhood.weights, hood.neighborhood.neighbors)
        h = model._input(torch.arange(model.num_pins, device=pins.device))
        for conv in model.convs:
            h = conv(h, edge_index, edge_weight)
        return model._output(h[pins])

    def _step(self, anchor: Tensor, num_hard: int, net: torch.nn.Module) -> Tensor:
        cfg, gen = self.cfg, self.generator
        query, positive = self.pairs(anchor, gen)
        history = query if query.dim() == 2 else None  # (B, L) pins, -1 padded: the query is their mean
        if history is not None:
            query = history[:, -1]  # the latest pin: the hard negatives' seed
        negatives = random_negatives(self.graph.num_pins, cfg.num_negatives, gen, self.device)
        parts = [query, positive, negatives]
        if num_hard:
            parts.append(self.hard(query, num_hard, gen).reshape(-1))
        if history is not None:
            parts.append(history.clamp_min(0).reshape(-1))
        pins, inverse = torch.unique(torch.cat(parts), return_inverse=True)  # each pin embedded once
        emb = self._embed_batch(pins, net)[inverse]
        b, k = query.numel(), negatives.numel()
        z_query, z_pos = emb[:b], emb[b:2 * b]
        if history is not None:
            real = (history >= 0).unsqueeze(-1).to(emb.dtype) * self._history_weights.view(1, -1, 1)
            z_hist = emb[emb.size(0) - history.numel():].view(*history.shape, -1)
            z_query = torch.nn.functional.normalize((z_hist * real).sum(1) / real.sum(1).clamp_min(1.0), dim=-1)
            emb = emb[:emb.size(0) - history.numel()]
        z_neg = emb[2 * b:2 * b + k].unsqueeze(0).expand(b, k, -1)
        if num_hard:
            z_neg = torch.cat([z_neg, emb[2 * b + k:].view(b, num_hard, -1)], dim=1)
        if cfg.loss == "margin" and not cfg.in_batch_negatives:
            loss = max_margin_loss(z_query, z_pos, z_neg, margin=cfg.margin)
        else:
            neg_scores = (z_query.unsqueeze(1) * z_neg).sum(-1)  # (B, K + H)
            valid = torch.ones_like(neg_scores, dtype=torch.bool)
            if cfg.in_batch_negatives:  # the other queries' positives, unless they are mine too
                neg_scores = torch.cat([neg_scores, z_query @ z_pos.T], dim=1)
                own = (positive.unsqueeze(0) == positive.unsqueeze(1)) | (positive.unsqueeze(0) == query.unsqueeze(1))
                if history is not None:  # a positive that is in my history is no negative either
                    own = own | (positive.view(1, b, 1) == history.unsqueeze(1)).any(-1)
                valid = torch.cat([valid, ~own], dim=1)
            pos_scores = (z_query * z_pos).sum(-1)
            loss = ranking_loss(pos_scores, neg_scores, valid, cfg.loss, cfg.margin, cfg.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


__all__ = ["PinSageBatches", "stream_seed"]
