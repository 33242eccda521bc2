"""PinSage: shapes, normalisation, parameters, gradients, layer-wise inference, a tiny training run."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import MessagePassing

from pinrec.models.losses import max_margin_loss
from pinrec.models.pinsage import PinSage, PinSageConv, neighborhood_edges
from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
)
from tests.support.graphs import community_graph, community_similarity

torch.set_num_threads(1)


def make_model(id_embedding: bool = False, num_layers: int = 2, seed: int = 0) -> PinSage:
    graph = community_graph()
    torch.manual_seed(seed)
    features = torch.randn(graph.num_pins, 6)
    sampler = ImportanceNeighborSampler(graph, num_neighbors=4, num_walks=20, walk_length=2, seed=seed)
    return PinSage(features, sampler, hidden_channels=16, out_channels=8, num_layers=num_layers,
                   id_embedding=id_embedding)


def _dense_conv(conv, x, neighbors, weights):
    """Algorithm 1 of the paper written densely on (B, T, D) neighbours: the reference."""
    alpha = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    pooled = (alpha.unsqueeze(-1) * torch.relu(conv.lin_neighbor(neighbors))).sum(-2)
    return torch.nn.functional.normalize(torch.relu(conv.lin(torch.cat([x, pooled], -1))), dim=-1)


def conv_dense(conv, x, neighbors, weights):
    """Call the MessagePassing layer on a (B, T, D) neighbour batch."""
    edge_index, edge_weight = neighborhood_edges(weights)
    return conv((neighbors.reshape(-1, neighbors.size(-1)), x), edge_index, edge_weight)


def test_conv_is_message_passing_and_equals_the_dense_algorithm():
    torch.manual_seed(0)
    conv = PinSageConv(5, 7, hidden_channels=3)
    assert isinstance(conv, MessagePassing)
    x, neighbors = torch.randn(4, 5), torch.randn(4, 6, 5)
    weights = torch.rand(4, 6)
    out = conv_dense(conv, x, neighbors, weights)
    assert out.shape == (4, 7)
    torch.testing.assert_close(out, _dense_conv(conv, x, neighbors, weights))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))
    # Only relative weights matter; a neighbour of weight 0 sends no message.
    torch.testing.assert_close(conv_dense(conv, x, neighbors, 3 * weights), out)
    weights[:, 0] = 0.0
    assert neighborhood_edges(weights)[0].shape == (2, 4 * 5)
    torch.testing.assert_close(conv_dense(conv, x, neighbors, weights),
                               conv_dense(conv, x, neighbors[:, 1:], weights[:, 1:]))
    # No neighbour at all: the pooled vector is zero.
    expected = torch.nn.functional.normalize(torch.relu(conv.lin(torch.cat([x, torch.zeros(4, 3)], -1))), dim=-1)
    torch.testing.assert_close(conv_dense(conv, x, neighbors, torch.zeros(4, 6)), expected)
    # Shared sources: neighbours given as row indices into one source matrix (layer-wise inference).
    table, idx = torch.randn(9, 5), torch.randint(0, 9, (4, 6))
    edge_index, edge_weight = neighborhood_edges(weights, idx)
    torch.testing.assert_close(conv((table, x), edge_index, edge_weight), _dense_conv(conv, x, table[idx], weights))
    assert repr(conv) == "PinSageConv(5, 7, hidden_channels=3, normalize=True)"
    plain = PinSageConv(5, 7, normalize=False)
    assert not torch.allclose(conv_dense(plain, x, neighbors, weights).norm(dim=-1), torch.ones(4))
    with pytest.raises(ValueError, match="must be \\(B, T\\)"):
        neighborhood_edges(weights.reshape(-1))


def test_forward_shapes_and_unit_norm_including_isolated_pin():
    model = make_model()
    out = model(torch.tensor([0, 5, 31, 31]))  # pin 31 has no board: a cold-start pin
    assert out.shape == (4, 8) and torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))
    assert repr(model) == ("PinSage(num_pins=32, in_channels=6, hidden_channels=16, out_channels=8, num_layers=2, "
                           "id_embedding=False)")
    assert not any(name.startswith("features") for name in model.state_dict())


def test_no_bias_shared_by_every_pin_and_id_embeddings_start_apart():
    model = make_model(id_embedding=True)
    assert model.lin_in.bias is None and model.head[2].bias is None
    assert 0.8 < model.emb.weight.std().item() < 1.2
    narrow = PinSage(model.features, model.sampler, 16, 8, id_embedding=True, id_embedding_std=0.1)
    assert 0.08 < narrow.emb.weight.std().item() < 0.12
    with pytest.raises(ValueError, match="id_embedding_std"):
        PinSage(model.features, model.sampler, id_embedding=True, id_embedding_std=0.0)


def test_reset_parameters_is_seeded():
    model = make_model(id_embedding=True)
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    model.reset_parameters()
    first = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    model.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, first))


def test_gradient_reaches_every_parameter():
    model = make_model(id_embedding=True)
    out = model(torch.arange(model.num_pins))
    max_margin_loss(out[:10], out[10:20], out[20:], margin=0.5).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_invalid_arguments_raise():
    sampler = make_model().sampler
    with pytest.raises(ValueError, match="2-D float"):
        PinSage(torch.zeros(4, dtype=torch.long), sampler)
    with pytest.raises(ValueError, match="num_layers"):
        PinSage(torch.zeros(4, 2), sampler, num_layers=0)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_embed_all_equals_forward_with_fixed_neighbourhoods(num_layers):
    model = make_model(id_embedding=True, num_layers=num_layers)
    model.sampler = FixedNeighborhoods.from_sampler(model.sampler, model.num_pins, batch_size=5)
    everything = model.embed_all(batch_size=7)
    assert everything.shape == (32, 8)
    with torch.no_grad():
        torch.testing.assert_close(everything, model(torch.arange(32)), atol=1e-5, rtol=0)
        torch.testing.assert_close(everything[[3, 20]], model(torch.tensor([3, 20])), atol=1e-5, rtol=0)


def test_training_separates_two_communities():
    """Features are noise, so only the graph tells the sides apart; untrained, all pins look alike."""
    model = make_model(seed=3)
    graph, gen, sampler = model.sampler.graph, torch.Generator().manual_seed(3), model.sampler
    connected = torch.arange(31)  # pin 31 has no board
    side = (torch.arange(31) >= 16).long()
    model.sampler = FixedNeighborhoods.from_sampler(sampler, model.num_pins)
    same, cross = community_similarity(model.embed_all()[:31], side)
    assert abs(same - cross) < 0.05
    model.sampler = sampler
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        # Positive pairs: a pin and a random pin of one of its boards; 8 random negatives for the batch.
        query = connected[torch.randint(0, 31, (16,), generator=gen)]
        start, deg = graph.pin_ptr[query], graph.pin_ptr[query + 1] - graph.pin_ptr[query]
        board = graph.pin_boards[start + (torch.rand(16, generator=gen) * deg).long()]
        start, deg = graph.board_ptr[board], graph.board_ptr[board + 1] - graph.board_ptr[board]
        positive = graph.board_pins[start + (torch.rand(16, generator=gen) * deg).long()]
        negatives = torch.randint(0, 32, (8,), generator=gen)
        emb = model(torch.cat([query, positive, negatives]))
        loss = max_margin_loss(emb[:16], emb[16:32], emb[32:], margin=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.sampler = FixedNeighborhoods.from_sampler(model.sampler, model.num_pins)
    same, cross = community_similarity(model.embed_all()[:31], side)
    assert same - cross > 0.5  # measured: 1.35 (after 60 steps)
