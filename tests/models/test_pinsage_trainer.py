"""PinSage training: pair and hard-negative samplers, curriculum, learning, determinism, resume, DDP; and
the facade: every public name of ``pinrec.models.pinsage_trainer`` as the object its own module defines."""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pinrec.models import (
    config,
    losses,
    pinsage_checkpoint,
    pinsage_loop,
    training_runtime,
)
from pinrec.models import pinsage_trainer as trainer_module
from pinrec.models.pair_sampler import (
    BoardPairSampler,
    HardNegativeSampler,
    WalkPairSampler,
    hard_negatives_at,
)
from pinrec.models.pinsage_trainer import (
    CHECKPOINT_FILE,
    PinSageTrainConfig,
    PinSageTrainer,
    graph_to,
    ranking_loss,
    resolve_device,
)
from pinrec.models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    PinBoardGraph,
)
from tests.support.graphs import community_graph, community_similarity, train_config
from tests.support.repo import torchrun

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]

# Board 0: pins {0, 1}; board 1: pins {1, 2, 3}; board 2: pins {2, 3}; board 3: pin {4} alone; pin 5 has no board.
TINY = PinBoardGraph(torch.tensor([0, 1, 1, 2, 3, 2, 3, 4]), torch.tensor([0, 0, 1, 1, 1, 2, 2, 3]),
                     num_pins=6, num_boards=4)
SIDE = (torch.arange(31) >= 16).long()  # community of each connected pin of community_graph()


def features(seed: int = 0) -> torch.Tensor:
    return torch.randn(32, 6, generator=torch.Generator().manual_seed(seed))


def test_board_pairs_are_other_pins_of_the_same_board():
    sampler = BoardPairSampler(TINY)
    assert len(sampler) == 7  # board 3 holds one pin: its edge is no anchor
    gen = torch.Generator().manual_seed(0)
    anchors = torch.arange(7).repeat(400)
    query, positive = sampler(anchors, gen)
    assert (query != positive).all()
    boards = {0: {0, 1}, 1: {1, 2, 3}, 2: {2, 3}}
    for q, p, b in zip(query.tolist(), positive.tolist(), sampler.anchor_boards[anchors].tolist()):
        assert {q, p} <= boards[b]
    # Anchor (pin 1, board 1): pins 2 and 3, uniformly.
    one = (query == 1) & (sampler.anchor_boards[anchors] == 1)
    share = (positive[one] == 2).float().mean().item()
    assert 0.4 < share < 0.6 and set(positive[one].tolist()) == {2, 3}
    with pytest.raises(ValueError, match="must lie in"):
        sampler(torch.tensor([7]), gen)


def test_walk_pairs_come_from_the_importance_neighbourhood():
    walker = ImportanceNeighborSampler(TINY, num_neighbors=3, num_walks=50, walk_length=1, restart_prob=0.0, seed=0)
    sampler = WalkPairSampler(walker)
    assert sampler.anchor_pins.tolist() == [0, 1, 2, 3]  # pin 4 is alone on its board, pin 5 has none
    query, positive = sampler(torch.tensor([0, 0, 1, 2, 3]), torch.Generator().manual_seed(0))
    assert query.tolist() == [0, 0, 1, 2, 3]
    assert positive[:2].tolist() == [1, 1]  # pin 0 shares its only board with pin 1 only
    assert (query != positive).all()


def test_hard_negatives_come_from_the_rank_band():
    graph = community_graph()
    walker = ImportanceNeighborSampler(graph, num_neighbors=12, num_walks=60, walk_length=3, seed=5)
    twin = ImportanceNeighborSampler(graph, num_neighbors=12, num_walks=60, walk_length=3, seed=5)
    sampler = HardNegativeSampler(walker, band=(4, 12))
    query = torch.tensor([1, 2, 17, 31])  # pin 31 has no board: no band, random pins
    negatives = sampler(query, 5, torch.Generator().manual_seed(0))
    ranked = twin(query)  # the same walks as the sampler's
    assert negatives.shape == (4, 5)
    for row in range(3):
        band = set(ranked.neighbors[row, 4:12][ranked.mask[row, 4:12]].tolist())
        assert band and set(negatives[row].tolist()) <= band
        assert int(query[row]) not in band
    assert sampler.last_fallback == pytest.approx(0.25)
    assert (SIDE[negatives[0]] == 0).all() and (SIDE[negatives[2]] == 1).all()  # walks stay in the community
    with pytest.raises(ValueError, match="keeps 12 ranked pins"):
        HardNegativeSampler(walker, band=(4, 13))
    with pytest.raises(ValueError, match="0 <= lo < hi"):
        HardNegativeSampler(walker, band=(5, 5))


def test_hard_negative_curriculum():
    assert [hard_negatives_at(e, from_epoch=2, max_hard=3) for e in range(7)] == [0, 0, 1, 2, 3, 3, 3]
    assert [hard_negatives_at(e, from_epoch=0, max_hard=0) for e in range(3)] == [0, 0, 0]


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"positives": "users"}, "positives must be"),
    ({"hard_negative_band": (5, 2)}, "hard_negative_band"),
    ({"restart_prob": 1.0}, "restart_prob"),
    ({"device": "tpu"}, "device must be"),
    ({"neighborhood_refresh": "never"}, "neighborhood_refresh"),
    ({"num_negatives": 0, "max_hard_negatives": 0}, "no negatives"),
    ({"num_negatives": 0, "hard_negatives_from_epoch": 1}, "no negatives"),
    ({"loss": "bpr"}, "loss must be"),
    ({"temperature": 0.0}, "temperature must be"),
    ({"positive_window": 0}, "positive_window must be >= 1"),
    ({"history_half_life": -1.0}, "history_half_life must be >= 0"),
    ({"id_embedding_std": 0.0}, "id_embedding_std must be > 0"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        train_config(**overrides)


def test_trainer_rejects_bad_inputs():
    with pytest.raises(ValueError, match="features must be"):
        PinSageTrainer(community_graph(), torch.randn(31, 6), train_config())
    with pytest.raises(ValueError, match="needs more than 40 pins"):
        PinSageTrainer(community_graph(), features(), train_config(hard_negative_band=(3, 40)))
    lonely = PinBoardGraph(torch.tensor([0, 1]), torch.tensor([0, 1]), num_pins=40, num_boards=2)
    with pytest.raises(ValueError, match="fewer than"):
        PinSageTrainer(lonely, torch.randn(40, 6), train_config())


def test_training_learns_the_communities_and_reports_every_epoch():
    """Features are noise: only the graph tells the communities apart."""
    seen = []
    trainer = PinSageTrainer(community_graph(), features(), train_config(epochs=6, max_hard_negatives=1),
                             on_epoch_end=lambda epoch, metrics: seen.append((epoch, metrics)))
    assert repr(trainer).startswith("PinSageTrainer(PinSage(num_pins=32, in_channels=6, hidden_channels=16")
    same, cross = community_similarity(trainer.embed()[:31], SIDE)
    assert abs(same - cross) < 0.05  # untrained: all pins alike
    history = trainer.fit()
    assert [e for e, _ in seen] == list(range(6)) and [m for _, m in seen] == history
    assert [m["hard_negatives"] for m in history] == [0, 0, 1, 1, 1, 1]
    assert all(m["pairs"] == 60 for m in history)  # 60 anchor edges per epoch
    assert history[1]["loss"] < history[0]["loss"]
    same, cross = community_similarity(trainer.embed()[:31], SIDE)
    assert same - cross > 0.5  # measured: 0.98 vs -0.61


def test_ranking_loss_values_and_masked_negatives():
    pos, neg = torch.tensor([0.5, 0.0]), torch.tensor([[0.3, 0.9], [0.2, -1.0]])
    valid = torch.tensor([[True, False], [True, True]])
    # hinges (margin 0.1): [0.0, masked], [0.3, 0.0] -> 0.3 / 3 valid negatives
    assert ranking_loss(pos, neg, valid, "margin", margin=0.1).item() == pytest.approx(0.1)
    # softmax at temperature 0.5: row 0 sees only the 0.3 negative
    expected = (-torch.log_softmax(torch.tensor([0.5, 0.3]) / 0.5, 0)[0]
                - torch.log_softmax(torch.tensor([0.0, 0.2, -1.0]) / 0.5, 0)[0]) / 2
    assert ranking_loss(pos, neg, valid, "softmax", temperature=0.5).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="expected"):
        ranking_loss(pos, neg[:1], valid)


@pytest.mark.parametrize("loss", ["margin", "softmax"])
def test_in_batch_negatives_learn_the_communities(loss):
    trainer = PinSageTrainer(community_graph(), features(),
                             train_config(epochs=6, loss=loss, in_batch_negatives=True, max_hard_negatives=1))
    trainer.fit()
    same, cross = community_similarity(trainer.embed()[:31], SIDE)
    assert same - cross > 0.4  # measured: softmax 1.00 vs 0.53


def test_layer_wise_batch_embedding_equals_the_sampled_forward():
    trainer = PinSageTrainer(community_graph(), features(), train_config(num_neighbors=2))
    trainer.model.sampler = FixedNeighborhoods.from_sampler(trainer.neighbor_sampler, 32)
    # messages: 2 * (2 + 4) < 32 pins * 2 layers * 2 neighbours <= 30 * (2 + 4)
    small, large = torch.tensor([3, 17]), torch.arange(2, 32)
    for pins in (small, large):
        torch.testing.assert_close(trainer._embed_batch(pins, trainer.model), trainer.model(pins))
    emb = trainer._embed_batch(large, trainer.model)
    emb.sum().backward()
    assert trainer.model.lin_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("refresh", ["epoch", "batch"])
def test_same_seed_same_embeddings_other_seed_other_embeddings(refresh):
    runs = [PinSageTrainer(community_graph(), features(), train_config(epochs=3, seed=s, neighborhood_refresh=refresh))
            for s in (7, 7, 8)]
    for trainer in runs:
        trainer.fit()
    first, second, other = (t.embed() for t in runs)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other, atol=1e-3)


def test_same_seed_same_embeddings_bit_for_bit_on_several_threads():
    """At demo scale (4,000 pins, 2 threads) some accumulating CPU kernels add floats in a
    varying order unless torch's deterministic kernels are on: before they were, two runs of this
    test differed by ~8e-7. fit/embed turn them on and give the caller's setting back."""
    g = torch.Generator().manual_seed(0)
    graph = PinBoardGraph(torch.randint(0, 4000, (6000,), generator=g), torch.randint(0, 300, (6000,), generator=g),
                          4000, 300)
    x = torch.randn(4000, 16, generator=g)
    cfg = PinSageTrainConfig(epochs=2, batch_size=512, num_negatives=64, hidden_channels=64, out_channels=64,
                             seed=0, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            trainer = PinSageTrainer(graph, x, cfg)
            trainer.fit()
            runs.append(trainer.embed())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs[0], runs[1])
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's (default) setting is back


def test_resume_from_checkpoint_equals_training_straight_through(tmp_path):
    straight = PinSageTrainer(community_graph(), features(), train_config(epochs=4))
    straight.fit()
    cfg = train_config(epochs=2, checkpoint_dir=str(tmp_path))
    PinSageTrainer(community_graph(), features(), cfg).fit()  # epochs 0-1, then "crash"
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 2 and set(state["rng"]) >= {"torch"}
    resumed = PinSageTrainer(community_graph(), features(), replace(cfg, epochs=4))
    history = resumed.fit()
    assert resumed.start_epoch == 2 and len(history) == 4
    assert [h["loss"] for h in history] == [h["loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(straight.embed(), resumed.embed())
    with pytest.raises(ValueError, match="different architecture"):
        PinSageTrainer(community_graph(), features(), replace(cfg, epochs=5, out_channels=4)).fit()
    # another run's checkpoint in the same folder (yesterday's graph, another trial's settings) is refused,
    # not continued: it would train no epoch and hand back its old weights
    with pytest.raises(ValueError, match=r"belongs to another run .*'seed': \(0, 1\)"):
        PinSageTrainer(community_graph(), features(), replace(cfg, epochs=5, seed=1)).fit()
    with pytest.raises(ValueError, match=r"belongs to another run .*'data': 'the training data differ"):
        PinSageTrainer(community_graph(), features() + 1.0, replace(cfg, epochs=5)).fit()


def test_non_finite_features_are_refused():
    x = features()
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"features of 1 pin\(s\) hold NaN or inf, e.g. row 3"):
        PinSageTrainer(community_graph(), x, train_config(epochs=1))


def test_embed_with_another_graph_needs_the_same_pins():
    trainer = PinSageTrainer(community_graph(), features(), train_config(epochs=1))
    with pytest.raises(ValueError, match="pins"):
        trainer.embed(TINY)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_device_auto_falls_back_to_cpu_and_cuda_without_gpu_raises():
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(ValueError, match="pinsage.device='cuda' but no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="two_tower.device='cuda' but no CUDA device"):
        resolve_device("cuda", "two_tower.device")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_like_on_cpu():
    gpu = PinSageTrainer(community_graph(), features(), train_config(epochs=6, max_hard_negatives=1, device="cuda"))
    assert gpu.device.type == "cuda" and gpu.graph.device.type == "cuda"
    history = gpu.fit()
    emb = gpu.embed()
    assert emb.device.type == "cpu" and history[-1]["loss"] < history[0]["loss"]
    same, cross = community_similarity(emb[:31], SIDE)
    assert same - cross > 0.5


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_parameters(tmp_path):
    torchrun("-m", "tests.models.ddp_pinsage_worker", str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
    history = ranks[0]["history"]
    for mine, theirs in zip(history, ranks[1]["history"]):  # all-reduced (the rate is each rank's own clock)
        assert {**mine, "pairs_per_s": 0} == {**theirs, "pairs_per_s": 0}
    assert [h["pairs"] for h in history] == [60] * 6  # 30 anchors per rank per epoch
    assert history[-1]["loss"] < history[0]["loss"]
    assert (tmp_path / "checkpoints" / CHECKPOINT_FILE).exists()
    assert torch.equal(ranks[0]["embeddings"], ranks[1]["embeddings"])  # same weights, same seeded inference


def ring_graph(pins: int = 40, boards: int = 60, length: int = 6, seed: int = 0) -> PinBoardGraph:
    """Each board saves ``length`` consecutive pins of a ring, in ring order: pin i is followed by
    i + 1. Every pin is on about equally many boards, so the graph alone (and popularity) says
    little beyond "near on the ring"; the time order says which pin comes next."""
    start = torch.randint(0, pins, (boards,), generator=torch.Generator().manual_seed(seed))
    pin = (start.unsqueeze(1) + torch.arange(length)).remainder(pins).reshape(-1)
    board = torch.arange(boards).repeat_interleave(length)
    time = torch.arange(length).repeat(boards)
    return PinBoardGraph(pin, board, pins, boards, edge_time=time)


@pytest.mark.parametrize("positives", ["sequence", "next"])
def test_time_ordered_positives_learn_the_ring(positives):
    graph = ring_graph()
    cfg = train_config(epochs=8, positives=positives, positive_window=2, history_half_life=1.0, loss="softmax",
                       num_negatives=16, max_hard_negatives=0, id_embedding=True, batch_size=32)
    trainer = PinSageTrainer(graph, torch.randn(40, 6, generator=torch.Generator().manual_seed(0)), cfg)
    moved = graph_to(graph, "cpu:0")  # rebuilt, as for cuda: the boards' time order survives the move
    assert moved is not graph and moved.board_time_pins.tolist() == graph.board_time_pins.tolist()
    assert moved.edge_time.tolist() == graph.edge_time.tolist()
    history = trainer.fit()
    assert history[-1]["loss"] < history[0]["loss"] - 0.3, history
    z = trainer.embed()
    near = (z * z.roll(-1, 0)).sum(1).mean().item()  # pin i and pin i + 1
    far = (z * z.roll(-20, 0)).sum(1).mean().item()  # pin i and the opposite pin of the ring
    assert near - far > 0.5, (near, far)  # measured: sequence 0.96 vs -0.61, next 0.95 vs -0.45


def test_one_step_reaches_the_id_embeddings_and_the_loss_falls_on_a_fixed_batch():
    """The 'loss barely moves' diagnosis: gradients reach every part, and a fixed batch overfits."""
    cfg = train_config(positives="next", positive_window=3, loss="softmax", num_negatives=16, max_hard_negatives=0,
                       id_embedding=True, lr=0.01)
    trainer = PinSageTrainer(ring_graph(), torch.randn(40, 6, generator=torch.Generator().manual_seed(0)), cfg)
    trainer.model.sampler = FixedNeighborhoods.from_sampler(trainer.neighbor_sampler, 40)
    anchor, losses = torch.arange(32), []
    for _ in range(30):
        trainer._reseed(0)  # the same pairs and negatives every step
        losses.append(trainer._step(anchor, 0, trainer.model).item())
        grads = {n: p.grad for n, p in trainer.model.named_parameters()}
        assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), [n for n, g in grads.items()
                                                                                if g is None or not g.abs().sum()]
    assert losses[-1] < 0.5 * losses[0], losses


#: Every public name pinsage_trainer.py defined before the split, and the module that defines it now.
HOME = {
    "PinSageTrainer": pinsage_loop, "graph_to": pinsage_loop,
    "ARCHITECTURE": pinsage_checkpoint, "CHECKPOINT_FILE": pinsage_checkpoint,
    "ranking_loss": losses,
    "EpochHook": training_runtime, "deterministic_kernels": training_runtime, "resolve_device": training_runtime,
    "PinSageTrainConfig": config,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(trainer_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(trainer_module, name) is getattr(module, name), name
        value = module.__dict__[name]
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == module.__name__, name
