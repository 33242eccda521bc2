"""Training PinSage: max-margin loss, curriculum hard negatives, checkpoints, determinism, DDP.

The training of `"Graph Convolutional Neural Networks for Web-Scale Recommender Systems"
<https://arxiv.org/abs/1806.01973>`_ (Ying et al., KDD 2018, section 3.3) on one machine or under
``torchrun``:

* an epoch is one pass over the positive-pair anchors (:mod:`pinrec.models.pair_sampler`), shuffled; each
  batch of B pairs gets ``num_negatives`` uniform negatives shared by the batch and, from epoch
  ``hard_negatives_from_epoch`` on, ``hard_negatives_at(epoch)`` hard negatives per query from the
  ``hard_negative_band`` of its personalised-PageRank ranking; loss :func:`pinrec.models.losses.max_margin_loss`
  over the (B, K + H) negatives (with ``positives="next"`` the query is the weighted mean of the
  embeddings of a board's latest pins and the positive the pin saved next) (or, with ``loss="softmax"``, :func:`ranking_loss`'s sampled softmax;
  ``in_batch_negatives`` adds the other queries' positives), Adam; neighbourhoods are re-sampled once per epoch for every pin
  (``neighborhood_refresh="epoch"``; then a batch whose receptive field is larger than the graph is
  embedded layer by layer over all pins, same values, fewer operations) or in every forward pass
  (``"batch"``, the paper's producer);
* determinism: the model is initialised after ``torch_geometric.seed_everything(seed)`` and every
  random stream (shuffle, pairs, negatives, walks) is re-seeded at the start of each epoch from
  ``(seed, epoch, rank)``, so the same seed gives the same embeddings, and resuming from a
  checkpoint gives the same model as training straight through; ``fit`` and ``embed`` run with
  torch's deterministic kernels (:func:`deterministic_kernels`): with several CPU threads some
  accumulating kernels otherwise add floats in a varying order (two runs on the demo world
  differed by up to 3e-7);
* checkpoints (``checkpoint_dir/pinsage.pt``, after every ``checkpoint_every`` epochs and the last):
  model and optimizer state dicts, the epoch, the global torch RNG states, the loss history and the
  config; read back with ``torch.load(weights_only=True)``;
* distributed: when ``torch.distributed`` is initialised (``torchrun``: the caller calls
  ``init_process_group``), the model is wrapped in ``DistributedDataParallel`` and every rank takes
  a disjoint, equally long share of each epoch's anchors; rank 0 writes checkpoints and calls
  ``on_epoch_end(epoch, metrics)`` with metrics averaged over ranks (the hook where a job logs to
  MLflow; this module never imports it).
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from pinrec.models.config import PinSageTrainConfig
from pinrec.models.losses import max_margin_loss
from pinrec.models.pair_sampler import (
    BoardPairSampler,
    HardNegativeSampler,
    HistoryPairSampler,
    SequencePairSampler,
    WalkPairSampler,
    hard_negatives_at,
    random_negatives,
)
from pinrec.models.pinsage import PinSage, neighborhood_edges
from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    PinBoardGraph,
)
from pinrec.models.run_identity import check_resume, run_identity, tensor_digest
from pinrec.models.warm_start import warm_state

EpochHook = Callable[[int, dict[str, float]], None]
CHECKPOINT_FILE = "pinsage.pt"
# Fields that fix the parameters' shapes: a checkpoint only resumes a run that agrees on them.
ARCHITECTURE = ("hidden_channels", "out_channels", "num_layers", "id_embedding")


def deterministic_kernels(method: Callable) -> Callable:
    """Runs ``method`` under ``torch.use_deterministic_algorithms(True, warn_only=True)`` and
    restores the caller's setting after. Measured on the 2-core demo world: the same embeddings
    bit for bit on every run (without it, within 3e-7 of each other), and no slower."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        enabled, warn_only = torch.are_deterministic_algorithms_enabled(), \
            torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return method(*args, **kwargs)
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    return wrapper


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> the current CUDA device when there is one (``torchrun`` callers set it per local
    rank with ``torch.cuda.set_device``), else the CPU. ``"cuda"`` without a CUDA device raises."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("pinsage.device='cuda' but no CUDA device is available")
    return torch.device("cuda", torch.cuda.current_device())


def graph_to(graph: PinBoardGraph, device: torch.device | str) -> PinBoardGraph:
    """The same graph with its CSR arrays on ``device``."""
    if graph.device == torch.device(device):
        return graph
    pins = torch.repeat_interleave(torch.arange(graph.num_pins), graph.pin_ptr.diff().cpu())
    time = None if graph.edge_time is None else graph.edge_time.to(device)
    return PinBoardGraph(pins.to(device), graph.pin_boards.to(device), graph.num_pins, graph.num_boards, time)


def ranking_loss(pos_scores: Tensor, neg_scores: Tensor, valid: Tensor, kind: str = "softmax",
                 margin: float = 0.1, temperature: float = 0.1) -> Tensor:
    r"""Loss of B positive scores (B,) against their negatives' scores (B, K), where ``valid``
    (B, K) marks the negatives that count (an in-batch "negative" that is the query's own positive
    does not). ``"margin"``: mean over valid negatives of :math:`\max(0, s_n - s_p + \Delta)` (PinSage,
    eq. 1); ``"softmax"``: sampled-softmax cross-entropy
    :math:`-\log \frac{e^{s_p / \tau}}{e^{s_p / \tau} + \sum_n e^{s_n / \tau}}`, averaged over the B queries."""
    if neg_scores.dim() != 2 or pos_scores.shape != neg_scores.shape[:1] or valid.shape != neg_scores.shape:
        raise ValueError(f"pos_scores (B,), neg_scores and valid (B, K) expected, got {tuple(pos_scores.shape)}, "
                         f"{tuple(neg_scores.shape)} and {tuple(valid.shape)}")
    if kind == "margin":
        hinge = torch.relu(neg_scores - pos_scores.unsqueeze(1) + margin) * valid
        return hinge.sum() / valid.sum().clamp_min(1)
    if kind == "softmax":
        logits = torch.cat([pos_scores.unsqueeze(1), neg_scores.masked_fill(~valid, float("-inf"))], dim=1)
        return torch.nn.functional.cross_entropy(logits / temperature, torch.zeros_like(pos_scores, dtype=torch.long))
    raise ValueError(f"loss must be 'margin' or 'softmax', got {kind!r}")


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _stream_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A distinct, reproducible seed per (seed, epoch, rank, stream)."""
    return (((seed * 1_000_003 + epoch) * 10_007 + rank) * 101 + stream) % (2**63 - 1)


class PinSageTrainer:
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
    per-epoch metrics; ``embed()`` returns the (N, D) embeddings of all pins.
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
        self.rank, self.world_size = _world()
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

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> str | None:
        return None if self.cfg.checkpoint_dir is None else os.path.join(self.cfg.checkpoint_dir, CHECKPOINT_FILE)

    def state_dict(self, epoch: int) -> dict:
        """Everything a resume needs after ``epoch`` (0-based) has finished."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": epoch,
                "rng": rng, "history": self.history, "config": asdict(self.cfg), "identity": self.identity}

    def save_checkpoint(self, epoch: int) -> None:
        path = self.checkpoint_path
        if path is None:
            raise ValueError("checkpoint_dir is not set")
        os.makedirs(self.cfg.checkpoint_dir, exist_ok=True)
        torch.save(self.state_dict(epoch), path + ".tmp")
        os.replace(path + ".tmp", path)  # a crash mid-write never leaves a torn checkpoint

    def load_checkpoint(self, path: str) -> int:
        """Restores a checkpoint; returns the next epoch to train. Raises ``ValueError`` when the
        checkpoint's architecture differs from this trainer's, or it belongs to another run (other settings
        or data: :mod:`pinrec.models.run_identity`)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        saved = state["config"]
        clash = {k: (saved.get(k), getattr(self.cfg, k)) for k in ARCHITECTURE if saved.get(k) != getattr(self.cfg, k)}
        if clash:
            raise ValueError(f"checkpoint {path} was trained with a different architecture "
                             f"(checkpoint, config): {clash}")
        check_resume(state.get("identity"), self.identity, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.history = [dict(h) for h in state["history"]]
        self.start_epoch = int(state["epoch"]) + 1
        return self.start_epoch

    def warm_start(self, previous: dict[str, Tensor], rows: Tensor) -> None:
        """Start from a previous version's model weights instead of the random initialisation
        (:func:`pinrec.models.warm_start.warm_state`: ``rows`` (N,) maps each pin to its row in the
        previous version, -1 for a new pin). Call before :meth:`fit`; a checkpoint in
        ``checkpoint_dir`` still takes precedence (a resume continues the run it belongs to).
        Raises :class:`~pinrec.models.warm_start.WarmStartError` when the shapes differ."""
        self.model.load_state_dict(warm_state(previous, self.model.state_dict(), rows.to(self.device)))

    # ----------------------------------------------------------------------------------- training
    def _reseed(self, epoch: int) -> None:
        streams = [self.generator, self.neighbor_sampler.generator, self.hard.walker.generator]
        if isinstance(self.pairs, WalkPairSampler):
            streams.append(self.pairs.walker.generator)
        for i, gen in enumerate(streams):
            gen.manual_seed(_stream_seed(self.cfg.seed, epoch, self.rank, i + 1))

    def _epoch_anchors(self, epoch: int) -> Tensor:
        """This rank's anchors: one shuffle shared by all ranks, cut into equal strided shares."""
        shuffle = torch.Generator().manual_seed(_stream_seed(self.cfg.seed, epoch, 0, 0))
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
                                            cfg.restart_prob, seed=_stream_seed(cfg.seed, 0, 0, 99))
        training_sampler, self.model.sampler = self.model.sampler, sampler
        self.model.eval()
        try:
            return self.model.embed_all(cfg.inference_batch_size).cpu()
        finally:
            self.model.sampler = training_sampler

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.model}, pairs={self.pairs}, device={self.device}, "
                f"world_size={self.world_size})")


__all__ = ["ARCHITECTURE", "CHECKPOINT_FILE", "PinSageTrainConfig", "PinSageTrainer", "graph_to", "ranking_loss", "resolve_device"]
