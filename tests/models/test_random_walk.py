"""Random-walk importance neighbourhoods: exact small cases, padding, determinism, validation."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    PinBoardGraph,
)

torch.set_num_threads(1)

# Board 0: pins {0, 1}; board 1: pins {1, 2, 3}; board 2: pins {2, 3}; pin 4 has no board.
TINY = PinBoardGraph(torch.tensor([0, 1, 1, 2, 3, 2, 3]), torch.tensor([0, 0, 1, 1, 1, 2, 2]), num_pins=5, num_boards=3)


def two_communities(seed: int = 0) -> PinBoardGraph:
    """Pins 0-9 on boards 0-2, pins 10-19 on boards 3-5, two boards each, no edge across."""
    gen = torch.Generator().manual_seed(seed)
    pins = torch.arange(20).repeat_interleave(2)
    boards = torch.randint(0, 3, (40,), generator=gen) + 3 * (pins >= 10)
    return PinBoardGraph(pins, boards, num_pins=20, num_boards=6)


def test_csr_both_ways_and_dedup():
    graph = PinBoardGraph(torch.tensor([2, 0, 1, 0, 0]), torch.tensor([1, 0, 1, 0, 1]), num_pins=4, num_boards=2)
    assert graph.num_edges == 4  # (0, 0) twice
    assert graph.pin_ptr.tolist() == [0, 2, 3, 4, 4] and graph.pin_boards.tolist() == [0, 1, 1, 1]
    assert graph.board_ptr.tolist() == [0, 1, 4] and graph.board_pins.tolist() == [0, 0, 1, 2]
    assert repr(graph) == "PinBoardGraph(num_pins=4, num_boards=2, num_edges=4)"


@pytest.mark.parametrize("pins, boards, message", [
    (torch.tensor([0, 5]), torch.tensor([0, 1]), "pin_idx must lie in"),
    (torch.tensor([0, 1]), torch.tensor([-1, 1]), "board_idx must lie in"),
    (torch.tensor([0, 1]), torch.tensor([0, 3]), "board_idx must lie in"),
    (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "int64"),
    (torch.tensor([0, 1]), torch.tensor([0]), "differ in shape"),
])
def test_invalid_edges_raise(pins, boards, message):
    with pytest.raises(ValueError, match=message):
        PinBoardGraph(pins, boards, num_pins=5, num_boards=3)


def test_one_step_walks_reach_exactly_the_pins_sharing_a_board():
    sampler = ImportanceNeighborSampler(TINY, num_neighbors=3, num_walks=2000, walk_length=1, restart_prob=0.0, seed=0)
    hood = sampler(torch.arange(5))
    assert hood.neighbors[0].tolist() == [1, 0, 0]  # pin 0 shares its only board with pin 1 only
    assert hood.weights[0].tolist() == [1.0, 0.0, 0.0]
    assert hood.mask[0].tolist() == [True, False, False]
    reached = [set(n[m].tolist()) for n, m in zip(hood.neighbors, hood.mask)]
    assert reached == [{1}, {0, 2, 3}, {1, 3}, {1, 2}, set()]
    # From pin 1: pin 0 with probability 1/4, pins 2 and 3 with 1/6 each (itself, not counted, 5/12).
    assert hood.neighbors[1, 0] == 0 and hood.weights[1, 0] == pytest.approx(3 / 7, abs=0.05)


def test_longer_walks_keep_the_board_mate_on_top_and_sort_by_visits():
    sampler = ImportanceNeighborSampler(TINY, num_neighbors=4, num_walks=300, walk_length=4, restart_prob=0.3, seed=1)
    hood = sampler(torch.tensor([0, 0, 2]))
    assert hood.neighbors[:2, 0].tolist() == [1, 1]
    assert set(hood.neighbors[0][hood.mask[0]].tolist()) == {1, 2, 3}
    assert (hood.weights[:, :-1] >= hood.weights[:, 1:]).all()
    torch.testing.assert_close(hood.weights.sum(1), torch.ones(3))


def test_isolated_pin_is_all_masked_and_padded_with_itself():
    hood = ImportanceNeighborSampler(TINY, num_neighbors=3, seed=0)(torch.tensor([4]))
    assert hood.neighbors.tolist() == [[4, 4, 4]]
    assert not hood.mask.any() and not hood.weights.any()
    assert hood.neighbors.dtype == torch.long and hood.weights.dtype == torch.float32


def test_same_seed_same_neighbourhoods():
    graph, query = two_communities(), torch.arange(20)
    first, second, other = (ImportanceNeighborSampler(graph, num_neighbors=4, num_walks=20, seed=s)(query)
                            for s in (7, 7, 8))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first.weights, other.weights)


def test_neighbours_never_cross_communities():
    graph, query = two_communities(), torch.arange(20)
    sampler = ImportanceNeighborSampler(graph, num_neighbors=8, num_walks=50, walk_length=5, restart_prob=0.2, seed=0)
    hood = sampler(query)
    assert hood.mask.all(dim=1).any()  # the walks go far enough to fill some rows
    assert torch.equal(hood.neighbors >= 10, (query >= 10).unsqueeze(1).expand_as(hood.neighbors))


def test_invalid_queries_and_settings_raise():
    sampler = ImportanceNeighborSampler(TINY, seed=0)
    with pytest.raises(ValueError, match="must lie in"):
        sampler(torch.tensor([5]))
    with pytest.raises(ValueError, match="int64"):
        sampler(torch.tensor([[0]]))
    with pytest.raises(ValueError, match="restart_prob"):
        ImportanceNeighborSampler(TINY, restart_prob=1.0)


def test_fixed_neighbourhoods_look_up_one_sample_per_pin():
    sampler = ImportanceNeighborSampler(two_communities(), num_neighbors=4, num_walks=20, seed=0)
    fixed = FixedNeighborhoods.from_sampler(sampler, num_pins=20, batch_size=6)
    query = torch.tensor([3, 17, 3])
    hood = fixed(query)
    assert hood.neighbors.shape == (3, 4)
    for part, full in zip(hood, fixed.neighborhood):
        assert torch.equal(part, full[query]) and torch.equal(part[0], part[2])


@settings(max_examples=30, deadline=None)
@given(edges=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), max_size=20),
       walk_length=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_invariants_on_random_graphs(edges, walk_length, seed):
    pins = torch.tensor([p for p, _ in edges], dtype=torch.long)
    boards = torch.tensor([b for _, b in edges], dtype=torch.long)
    graph = PinBoardGraph(pins, boards, num_pins=8, num_boards=4)
    query = torch.arange(8)
    hood = ImportanceNeighborSampler(graph, num_neighbors=3, num_walks=10, walk_length=walk_length, seed=seed)(query)
    assert torch.equal(hood.neighbors[~hood.mask], query.unsqueeze(1).expand(8, 3)[~hood.mask])
    assert not (hood.neighbors[hood.mask] == query.unsqueeze(1).expand(8, 3)[hood.mask]).any()
    assert not hood.weights[~hood.mask].any() and (hood.weights[hood.mask] > 0).all()
    torch.testing.assert_close(hood.weights.sum(1), hood.mask.any(1).float())
    for row, m in zip(hood.neighbors, hood.mask):
        assert len(set(row[m].tolist())) == int(m.sum())  # no pin twice
        assert m.tolist() == sorted(m.tolist(), reverse=True)  # valid entries first
