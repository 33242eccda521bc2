"""PinSage: importance-pooling graph convolutions over random-walk neighbourhoods of pins."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from pinrec.models.random_walk import FixedNeighborhoods, Sampler


def neighborhood_edges(weights: Tensor, sources: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A (B, T) neighbourhood as a PyG bipartite edge list: ``edge_index`` (2, E) from source rows
    to the B targets and ``edge_weight`` (E,). Source row of slot (b, t): ``sources[b, t]``
    (default ``b * T + t``, the layout of a flattened (B, T, D) neighbour batch). Weight-0 slots
    (padding) carry no message and are dropped."""
    if weights.dim() != 2:
        raise ValueError(f"weights must be (B, T), got {tuple(weights.shape)}")
    b, t = weights.shape
    src = torch.arange(b * t, device=weights.device) if sources is None else sources.reshape(-1)
    dst = torch.arange(b, device=weights.device).repeat_interleave(t)
    w = weights.reshape(-1)
    keep = w > 0
    return torch.stack([src[keep], dst[keep]]), w[keep]


class PinSageConv(MessagePassing):
    r"""The CONVOLVE operator of `"Graph Convolutional Neural Networks for Web-Scale Recommender
    Systems" <https://arxiv.org/abs/1806.01973>`_ (Ying et al., KDD 2018, Algorithm 1), as a
    torch-geometric :class:`~torch_geometric.nn.MessagePassing` layer on a bipartite
    (neighbours -> pins) graph:

    .. math::
        \mathbf{n}_u &= \sum_{v \in N(u)} \tilde\alpha_{vu} \, \mathrm{ReLU}(\mathbf{Q} \mathbf{h}_v + \mathbf{q}),
        \qquad \tilde\alpha_{vu} = \alpha_{vu} / \textstyle\sum_{v'} \alpha_{v'u}

        \mathbf{h}_u^{new} &= \mathrm{ReLU}(\mathbf{W} [\mathbf{h}_u \,\|\, \mathbf{n}_u] + \mathbf{w}),
        \qquad \mathbf{h}_u^{new} \leftarrow \mathbf{h}_u^{new} / \lVert \mathbf{h}_u^{new} \rVert_2

    i.e. importance pooling: a sum of the transformed neighbours weighted by their normalised visit
    counts :math:`\alpha` (the edge weights); a pin without neighbours gets :math:`\mathbf{n}_u = 0`.

    Args:
        in_channels (int): D_in, size of the input representations.
        out_channels (int): D_out, size of the output representations.
        hidden_channels (int, optional): size of :math:`\mathbf{n}_u`. (default: :obj:`None`, ``in_channels``)
        normalize (bool, optional): L2-normalise the output. (default: :obj:`True`)

    Shapes:
        x (N_src, D_in) or a pair (x_src (N_src, D_in), x_dst (B, D_in)), edge_index (2, E) source ->
        target, edge_weight (E,) non-negative -> (B, D_out) (B = N_src for a single ``x``).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None,
                 normalize: bool = True) -> None:
        super().__init__(aggr="sum")
        hidden_channels = in_channels if hidden_channels is None else hidden_channels
        if min(in_channels, out_channels, hidden_channels) < 1:
            raise ValueError("in_channels, out_channels and hidden_channels must be >= 1")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.hidden_channels, self.normalize = hidden_channels, normalize
        self.lin_neighbor = nn.Linear(in_channels, hidden_channels)  # Q, q
        self.lin = nn.Linear(in_channels + hidden_channels, out_channels)  # W, w

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_neighbor.reset_parameters()
        self.lin.reset_parameters()

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        if edge_weight.shape != edge_index.shape[1:]:
            raise ValueError(f"edge_weight {tuple(edge_weight.shape)} must be (E,) for edge_index "
                             f"{tuple(edge_index.shape)}")
        total = scatter(edge_weight, edge_index[1], dim=0, dim_size=x_dst.size(0), reduce="sum")
        alpha = edge_weight / total[edge_index[1]].clamp_min(1e-12)
        # transform each source row once, not once per edge
        pooled = self.propagate(edge_index, x=(F.relu(self.lin_neighbor(x_src)), x_dst), alpha=alpha,
                                size=(x_src.size(0), x_dst.size(0)))
        out = F.relu(self.lin(torch.cat([x_dst, pooled], dim=-1)))
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"hidden_channels={self.hidden_channels}, normalize={self.normalize})")


class PinSage(nn.Module):
    r"""PinSage (Ying et al., KDD 2018): pin embeddings from pin features and the Pin–Board graph.

    Parts: an input projection :math:`\mathbf{P} \mathbf{x}_u` of the pin features (plus an
    optional learnable id embedding), ``num_layers`` :class:`PinSageConv` layers over the sampler's
    neighbourhoods (the layer-:math:`l` representation of every neighbour is computed from that
    neighbour's own neighbourhood), and the paper's head
    :math:`\mathbf{z}_u = \mathbf{G}_2 \, \mathrm{ReLU}(\mathbf{G}_1 \mathbf{h}_u + \mathbf{g})`,
    L2-normalised. ``forward`` returns embeddings only; losses live with the trainer.

    Two details keep training from collapsing to one vector for every pin (measured on small logs
    whose only pin feature was popularity, where it happened on about half the seeds): the id
    embedding starts at N(0, 1) by default, the scale of the standardised features' projection,
    not near 0, so pins start apart (with informative features a smaller ``id_embedding_std`` can
    do better: 0.1 on MovieLens-100K); and neither :math:`\mathbf{P}` nor :math:`\mathbf{G}_2` has a bias (the
    paper's :math:`\mathbf{G}_2` has none): a bias shared by every pin only pulls them together.

    Args:
        features (Tensor): (N, F) float features of all N pins, kept as a non-persistent buffer.
        sampler (Sampler): maps pins (B,) to their :class:`~pinrec.models.random_walk.Neighborhood` (B, T);
            an :class:`~pinrec.models.random_walk.ImportanceNeighborSampler` for training, a
            :class:`~pinrec.models.random_walk.FixedNeighborhoods` for reproducible inference. A plain
            attribute: it may be swapped after training.
        hidden_channels (int, optional): size of the hidden representations. (default: :obj:`64`)
        out_channels (int, optional): D, size of the embeddings. (default: :obj:`64`)
        num_layers (int, optional): number of convolutions. (default: :obj:`2`)
        id_embedding (bool, optional): add a learnable per-pin embedding to the projected
            features. Off by default: a pin created after training (cold start) has no trained
            id row, while features and graph are all it needs otherwise. (default: :obj:`False`)
        id_embedding_std (float, optional): standard deviation of the id embedding's normal
            initialisation. (default: :obj:`1.0`)

    Shapes: ``forward(pin_idx)`` maps (B,) int64 to (B, D); ``embed_all()`` returns (N, D).
    """

    def __init__(self, features: Tensor, sampler: Sampler, hidden_channels: int = 64, out_channels: int = 64,
                 num_layers: int = 2, id_embedding: bool = False, id_embedding_std: float = 1.0) -> None:
        super().__init__()
        if features.dim() != 2 or not features.is_floating_point():
            raise ValueError(f"features must be a 2-D float tensor, got {tuple(features.shape)} {features.dtype}")
        if min(hidden_channels, out_channels, num_layers) < 1:
            raise ValueError("hidden_channels, out_channels and num_layers must be >= 1")
        if not id_embedding_std > 0:
            raise ValueError(f"id_embedding_std must be > 0, got {id_embedding_std}")
        self.id_embedding_std = id_embedding_std
        self.register_buffer("features", features, persistent=False)
        self.sampler = sampler
        self.hidden_channels, self.out_channels, self.num_layers = hidden_channels, out_channels, num_layers
        self.lin_in = nn.Linear(features.size(1), hidden_channels, bias=False)
        self.emb = nn.Embedding(features.size(0), hidden_channels) if id_embedding else None
        self.convs = nn.ModuleList(PinSageConv(hidden_channels, hidden_channels) for _ in range(num_layers))
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                                  nn.Linear(hidden_channels, out_channels, bias=False))  # G1, g; G2 (no bias, as in the paper)
        self.reset_parameters()

    @property
    def num_pins(self) -> int:
        return self.features.size(0)

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        if self.emb is not None:
            nn.init.normal_(self.emb.weight, std=self.id_embedding_std)  # see the class docstring
        for conv in self.convs:
            conv.reset_parameters()
        for layer in (self.head[0], self.head[2]):
            layer.reset_parameters()

    def _input(self, pin_idx: Tensor) -> Tensor:
        h = self.lin_in(self.features[pin_idx])
        return h if self.emb is None else h + self.emb(pin_idx)

    def _output(self, h: Tensor) -> Tensor:
        return F.normalize(self.head(h), p=2.0, dim=-1)

    def forward(self, pin_idx: Tensor) -> Tensor:
        # hops[k]: the pins k steps away (with repeats); weights[k]: (|hops[k]|, T) for hops[k] -> hops[k + 1].
        hops, weights = [pin_idx], []
        for _ in range(self.num_layers):
            hood = self.sampler(hops[-1])
            hops.append(hood.neighbors.reshape(-1))
            weights.append(hood.weights)
        h = [self._input(idx) for idx in hops]
        edges = [neighborhood_edges(w) for w in weights]  # hop k + 1 rows -> hop k rows
        for conv in self.convs:  # each layer needs one hop fewer
            h = [conv((h[k + 1], h[k]), *edges[k]) for k in range(len(h) - 1)]
        return self._output(h[0])

    @torch.no_grad()
    def embed_all(self, batch_size: int = 1024) -> Tensor:
        """Embeddings of all N pins, layer by layer (the paper's MapReduce inference).

        Samples one neighbourhood per pin, computes each layer's representation of every pin once
        (in batches of ``batch_size``) from the previous layer's, so shared neighbourhoods are never
        recomputed. Equals ``forward`` on all pins when the sampler is a
        :class:`~pinrec.models.random_walk.FixedNeighborhoods`. Memory: O(N * (T + hidden_channels)).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = self.features.device
        hood = FixedNeighborhoods.from_sampler(self.sampler, self.num_pins, batch_size, device).neighborhood
        batches = torch.arange(self.num_pins, device=device).split(batch_size)
        h = torch.cat([self._input(idx) for idx in batches])
        edges = [neighborhood_edges(hood.weights[idx], hood.neighbors[idx]) for idx in batches]
        for conv in self.convs:  # sources index the whole previous layer, targets the batch
            h = torch.cat([conv((h, h[idx]), *e) for idx, e in zip(batches, edges)])
        return torch.cat([self._output(h[idx]) for idx in batches])

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_pins={self.num_pins}, in_channels={self.features.size(1)}, "
                f"hidden_channels={self.hidden_channels}, out_channels={self.out_channels}, "
                f"num_layers={self.num_layers}, id_embedding={self.emb is not None})")
