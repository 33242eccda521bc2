"""The torchrun protocol of the ranker job without a process group: what rank 0 announces for each
ranker it trains, and what a following rank trains from those messages (the real two-rank run is
test_ranker.py's torchrun test)."""
from __future__ import annotations

import pytest

from pinrec.jobs.ranking import ranker_ddp


@pytest.fixture()
def wire(monkeypatch):
    """The messages rank 0 broadcasts, and ``broadcast()`` on a follower replaying them in order."""
    import torch.distributed as dist

    sent: list = []
    monkeypatch.setattr(ranker_ddp, "in_group", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(ranker_ddp, "broadcast", lambda message=None: sent.append(message) if message else sent.pop(0))
    monkeypatch.setitem(ranker_ddp._sent, "encoded", None)
    return sent


def test_the_data_travels_once_and_the_follower_trains_each_announced_ranker(wire):
    data, other = object(), object()  # stand-ins for EncodedData: only identity matters here
    ranker_ddp.announce(data, "model", "train-0", True)
    ranker_ddp.announce(data, "model", "train-0", False)  # the twin: same data, not sent again
    ranker_ddp.announce(other, "model", "train-1", True)
    ranker_ddp.release()
    assert wire == [("train", data, "model", "train-0", True), ("train", None, "model", "train-0", False),
                    ("train", other, "model", "train-1", True), ("done",)]
    calls = []
    assert ranker_ddp.follow(lambda d, m, t, position: calls.append((d, m, t, position))) == 3
    assert calls == [(data, "model", "train-0", True), (data, "model", "train-0", False),
                     (other, "model", "train-1", True)]
    assert ranker_ddp._sent["encoded"] is None  # released: the next job sends its data again


def test_outside_a_group_announce_does_nothing_and_follow_refuses():
    ranker_ddp.announce(object(), "model", "train", True)  # one process: nothing to tell
    with pytest.raises(RuntimeError, match="process group"):
        ranker_ddp.follow(lambda *a, **k: None)
