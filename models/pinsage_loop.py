"""Training PinSage: the trainer, its epochs, determinism, DDP, and layer-wise inference.

The training of `"Graph Convolutional Neural Networks for Web-Scale Recommender Systems"
<https://arxiv.org/abs/1806.01973>`_ (Ying et al., KDD 2018, section 3.3) on one machine or under
``torchrun``. :class:`PinSageTrainer` holds the loop; its parts live beside it:

* the batches (:mod:`pinrec.models.pinsage_batches`): positive pairs, uniform and curriculum hard
  negatives, the loss (:mod:`pinrec.models.losses`), Adam; neighbourhoods are re-sampled once per
  epoch for every pin (``neighborhood_refresh="epoch"``) or in every forward pass (``"batch"``, the
  paper's producer);
* checkpoints and warm start (:mod:`pinrec.models.pinsage_checkpoint`);
* determinism: the model is initialised after ``torch_geometric.seed_everything(seed)`` and every
  random stream (shuffle, pairs, negatives, walks) is re-seeded at the start of each epoch from
  ``(seed, epoch, rank)``, so the same seed gives the same embeddings, and resuming from a
  checkpoint gives the same model as training straight through; ``fit`` and ``embed`` run with
  torch's deterministic kernels (:func:`~pinrec.models.training_runtime.deterministic_kernels`);
* distributed: when ``torch.distributed`` is initialised (``torchrun``: the caller calls
  ``init_process_group``), the model is wrapped in ``DistributedDataParallel`` and every rank takes
  a disjoint, equally long share of each epoch's anchors; rank 0 writes checkpoints and calls
  ``on_epoch_end(epoch, metrics)`` with metrics averaged over ranks (the hook where a job logs to
  MLflow; this module never imports it).
"""
from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from pinrec.models.config import PinSageTrainConfig
from pinrec.models.pair_sampler import (
    BoardPairSampler,
    HardNegativeSampler,
    HistoryPairSampler,
    SequencePairSampler,
    WalkPairSampler,
    hard_negatives_at,
)
from pinrec.models.pinsage import PinSage
from pinrec.models.pinsage_batches import PinSageBatches, stream_seed
from pinrec.models.pinsage_checkpoint import PinSageCheckpoints
from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    PinBoardGraph,
)
from pinrec.models.run_identity import run_identity, tensor_digest
from pinrec.models.training_runtime import (
    EpochHook,
    deterministic_kernels,
    resolve_device,
    world,
)


def graph_to(graph: PinBoardGraph, device: torch.device | str) -> PinBoardGraph:
    """The same graph with its CSR arrays on ``device``."""
    if graph.device == torch.device(device):
        return graph
    pins = torch.repeat_interleave(torch.arange(graph.num_pins), graph.pin_ptr.diff().cpu())
    time = None if graph.edge_time is None else graph.edge_time.to(device)
    return PinBoardGraph(pins.to(device), graph.pin_boards.to(device), graph.num_pins, graph.num_boards, time)


class PinSageTrainer(PinSageCheckpoints, PinSageBatches):
    r"""Trains a :class:`~pinrec.models.pinsage.PinSage` on a Pin–Board graph (see the module docstring).

    Args:
        graph (PinBoardGraph): the training graph (N pins, M boards); held-out edges must not be in it.
        features (Tensor): (N, F) float pin features.
        cfg (PinSageTrainConfig): the configuration.
        on_epoch_end (callable, optional): ``on_epoch_end(epoch, metrics)`` on rank 0 after each epoch
            (0-based), with ``loss`` (mean over the epoch's batches and ranks), ``pairs``,
            ``pairs_per_s``, ``hard_negatives`` (per query) and ``hard_fallback`` (share of queries
            whose PageRank band was empty). (default: :obj:`None`)

    ``fit()`` trains (resuming from ``cfg.checkpoint_dir`` when it holds a checkpoint) and returns the
    per-epoch metrics; ``embed()`` returns the (N, D) embeddings of all pins. Checkpoints and
    ``warm_start`` come from :class:`~pinrec.models.pinsage_checkpoint.PinSageCheckpoints`, the batches
    and the loss step from :class:`~pinrec.models.pinsage_batches.PinSageBatches`.
    """

    def __init__(self, graph: PinBoardGraph, features: Tensor, cfg: PinSageTrainConfig,
                 on_epoch_end: EpochHook | None = None) -> None:
        if features.dim() != 2 or features.size(0) != graph.num_pins:
            raise ValueError(f"features must be (num_pins={graph.num_pins}, F), got {tuple(features.shape)}")
        if not bool(torch.isfinite(features).all()):  # NaN would reach every weight through Adam
            bad = (~torch.isfinite(features)).any(1).nonzero().flatten()
            raise ValueError(f"features of {len(bad)} pin(s) hold NaN or inf, e.g. row {int(bad[0])}")
        if cfg.hard_negative_band[1] >= graph.num_pins and cfg.max_hard_negatives and \
                cfg.hard_negatives_from_epoch < cfg.epochs:
            raise ValueError(f"hard_negative_band {cfg.hard_negative_band} needs more than "
                             f"{cfg.hard_negative_band[1]} pins; the graph has {graph.num_pins}")
        self.cfg, self.on_epoch_end = cfg, on_epoch_end
        self.rank, self.world_size = world()
        self.device = resolve_device(cfg.device)
        self.graph = graph_to(graph, self.device)
        walk = {"num_walks": cfg.num_walks, "walk_length": cfg.walk_length, "restart_prob": cfg.restart_prob}
        self.neighbor_sampler = ImportanceNeighborSampler(self.graph, cfg.num_neighbors, seed=cfg.seed, **walk)
        if cfg.positives == "board":
            self.pairs = BoardPairSampler(self.graph)
        elif cfg.positives == "sequence":
            self.pairs = SequencePairSampler(self.graph, cfg.positive_window)
        elif cfg.positives == "next":
            self.pairs = HistoryPairSampler(self.graph, cfg.positive_window)
        else:
            self.pairs = WalkPairSampler(ImportanceNeighborSampler(self.graph, cfg.num_neighbors, seed=cfg.seed,
                                                                   **walk))
        # Weights of a "next" query's pins, oldest first: 0.5 ** (saves after it / history_half_life).
        age = torch.arange(cfg.positive_window - 1, -1, -1, dtype=torch.float32, device=self.device)
        self._history_weights = 0.5 ** (age / cfg.history_half_life) if cfg.history_half_life > 0 else torch.ones_like(age)
        if len(self.pairs) < self.world_size:
            raise ValueError(f"the graph has {len(self.pairs)} positive-pair anchors, fewer than the "
                             f"{self.world_size} ranks (no board holds two pins?)")
        self.hard = HardNegativeSampler(
            ImportanceNeighborSampler(self.graph, cfg.hard_negative_band[1], num_walks=cfg.hard_negative_walks,
                                      walk_length=cfg.hard_negative_walk_length, restart_prob=cfg.restart_prob,
                                      seed=cfg.seed), tuple(cfg.hard_negative_band))
        self.generator = torch.Generator(device=self.device)
        import torch_geometric

        torch_geometric.seed_everything(cfg.seed)  # random, numpy and torch: the initial weights
        self.model = PinSage(features.to(self.device, torch.float32), self.neighbor_sampler,
                             cfg.hidden_channels, cfg.out_channels, cfg.num_layers, cfg.id_embedding,
                             cfg.id_embedding_std).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        # what a checkpoint must match to be resumed: the settings and this graph and these features
        self.identity = run_identity(cfg, tensor_digest(graph.pin_ptr, graph.pin_boards, graph.edge_time, features),
                                     pins=graph.num_pins, boards=graph.num_boards)

    # ----------------------------------------------------------------------------------- training
    @deterministic_kernels
    def fit(self) -> list[dict[str, float]]:
        """Trains the remaining epochs; returns the metrics of every epoch (including resumed ones)."""
        from tqdm import tqdm

        cfg = self.cfg
        path = self.checkpoint_path
        if path is not None and os.path.exists(path):
            self.load_checkpoint(path)
        distributed = self.world_size > 1
        net: torch.nn.Module = self.model
        if distributed:
            net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None,
                                          broadcast_buffers=False)
        for epoch in range(self.start_epoch, cfg.epochs):
            self._reseed(epoch)
            if cfg.neighborhood_refresh == "epoch":
                self.model.sampler = FixedNeighborhoods.from_sampler(
                    self.neighbor_sampler, self.graph.num_pins, cfg.inference_batch_size, self.device)
            self.model.train()
            num_hard = hard_negatives_at(epoch, cfg.hard_negatives_from_epoch, cfg.max_hard_negatives)
            batches = self._epoch_anchors(epoch).split(cfg.batch_size)
            totals = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss sum, batches, pairs, fallback
            start = time.perf_counter()
            bar = tqdm(batches, desc=f"pinsage epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not cfg.progress or self.rank != 0)
            for anchor in bar:
                loss = self._step(anchor, num_hard, net)
                totals += torch.stack([loss.double(), loss.new_tensor(1.0, dtype=torch.float64),
                                       loss.new_tensor(anchor.numel(), dtype=torch.float64),
                                       loss.new_tensor(self.hard.last_fallback if num_hard else 0.0,
                                                       dtype=torch.float64)])
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if distributed:
                dist.all_reduce(totals)
            seconds = time.perf_counter() - start
            loss_sum, steps, pairs, fallback = totals.tolist()
            metrics = {"loss": loss_sum / max(steps, 1.0), "pairs": pairs, "pairs_per_s": pairs / max(seconds, 1e-9),
                       "hard_negatives": float(num_hard), "hard_fallback": fallback / max(steps, 1.0)}
            self.history.append(metrics)
            last = epoch == cfg.epochs - 1
            if self.rank == 0:
                if path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
                    self.save_checkpoint(epoch)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, metrics)
            if distributed:
                dist.barrier()
        self.model.sampler = self.neighbor_sampler
        return self.history

    # ---------------------------------------------------------------------------------- inference
    @deterministic_kernels
    @torch.no_grad()
    def embed(self, graph: PinBoardGraph | None = None) -> Tensor:
        """(N, D) embeddings of all pins, on the CPU, by layer-wise inference (``PinSage.embed_all``)
        over one seeded neighbourhood per pin of ``graph`` (default: the training graph; pass the
        graph with every edge up to the cut-off to embed with all of it)."""
        graph = self.graph if graph is None else graph_to(graph, self.device)
        if graph.num_pins != self.graph.num_pins:
            raise ValueError(f"graph has {graph.num_pins} pins, the model {self.graph.num_pins}")
        cfg = self.cfg
        sampler = ImportanceNeighborSampler(graph, cfg.num_neighbors, cfg.num_walks, cfg.walk_length,
                                            cfg.restart_prob, seed=stream_seed(cfg.seed, 0, 0, 99))
        training_sampler, self.model.sampler = self.model.sampler, sampler
        self.model.eval()
        try:
            return self.model.embed_all(cfg.inference_batch_size).cpu()
        finally:
            self.model.sampler = training_sampler

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.model}, pairs={self.pairs}, device={self.device}, "
                f"world_size={self.world_size})")


__all__ = ["PinSageTrainer", "graph_to"]
