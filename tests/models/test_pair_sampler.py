"""Tests of the time-ordered positive samplers of :mod:`pinrec.models.pair_sampler` on tiny graphs."""
from __future__ import annotations

import pytest
import torch

from pinrec.models.pair_sampler import HistoryPairSampler, SequencePairSampler
from pinrec.models.random_walk import PinBoardGraph

# Board 0 saves pins 4, 2, 0, 3, 1 in that order (times 0..4); board 1 saves pin 5 then pin 2.
PINS = torch.tensor([4, 2, 0, 3, 1, 5, 2])
BOARDS = torch.tensor([0, 0, 0, 0, 0, 1, 1])
TIMES = torch.tensor([0, 1, 2, 3, 4, 10, 11])
TIMED = PinBoardGraph(PINS, BOARDS, num_pins=6, num_boards=2, edge_time=TIMES)


def test_graph_lists_each_boards_pins_in_time_order_and_keeps_first_times():
    assert TIMED.board_time_pins.tolist() == [4, 2, 0, 3, 1, 5, 2]
    assert TIMED.board_pins.tolist() == [0, 1, 2, 3, 4, 2, 5]  # the walks' lists stay by index
    assert PinBoardGraph(PINS, BOARDS, 6, 2).board_time_pins is None
    again = PinBoardGraph(torch.cat([PINS, torch.tensor([4])]), torch.cat([BOARDS, torch.tensor([0])]), 6, 2,
                          edge_time=torch.cat([TIMES, torch.tensor([99])]))
    assert again.num_edges == 7 and again.board_time_pins.tolist() == TIMED.board_time_pins.tolist()  # pin 4 keeps t=0
    # edge_time is aligned with pin_boards (pin-major): pin 2's boards 0 and 1 at t=1 and t=11.
    assert TIMED.edge_time[TIMED.pin_ptr[2]:TIMED.pin_ptr[3]].tolist() == [1, 11]
    with pytest.raises(ValueError, match="edge_time must be"):
        PinBoardGraph(PINS, BOARDS, 6, 2, edge_time=TIMES[:3])


def test_sequence_pairs_stay_within_the_window_and_never_pair_a_pin_with_itself():
    sampler = SequencePairSampler(TIMED, window=1)
    assert len(sampler) == 7
    query, positive = sampler(torch.arange(7).repeat(300), torch.Generator().manual_seed(0))
    assert (query != positive).all()
    pairs = set(zip(query.tolist(), positive.tolist()))
    # window 1 on board 0's order 4-2-0-3-1, and 5-2 on board 1
    assert pairs == {(4, 2), (2, 4), (2, 0), (0, 2), (0, 3), (3, 0), (3, 1), (1, 3), (5, 2), (2, 5)}
    middle = positive[query.eq(0)]  # pin 0 sits between 2 and 3: both about equally often
    assert 0.4 < middle.eq(2).float().mean().item() < 0.6
    wide = SequencePairSampler(TIMED, window=10)(torch.full((200,), 0), torch.Generator().manual_seed(1))[1]
    assert set(wide.tolist()) == {2, 0, 3, 1}  # anchor 0 is pin 4: any other pin of board 0


def test_history_pairs_are_the_previous_pins_and_the_next_one():
    sampler = HistoryPairSampler(TIMED, length=3)
    assert len(sampler) == 5  # every slot but each board's first
    history, positive = sampler(torch.arange(5), torch.Generator())
    assert positive.tolist() == [2, 0, 3, 1, 2]
    assert history.tolist() == [[-1, -1, 4], [-1, 4, 2], [4, 2, 0], [2, 0, 3], [-1, -1, 5]]


def test_time_ordered_samplers_need_edge_times_and_valid_settings():
    plain = PinBoardGraph(PINS, BOARDS, 6, 2)
    for cls in (SequencePairSampler, HistoryPairSampler):
        with pytest.raises(ValueError, match="edge_time"):
            cls(plain)
        with pytest.raises(ValueError, match="must be >= 1"):
            cls(TIMED, 0)
