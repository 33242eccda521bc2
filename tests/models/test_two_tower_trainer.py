"""Two-tower training: the logQ-corrected in-batch loss, learning a tiny problem, resume, temperature; and
the facade: every public name of ``pinrec.models.two_tower_trainer`` as the object its own module defines."""
from __future__ import annotations

import inspect
import math
from dataclasses import replace

import pytest
import torch

from pinrec.models import (
    losses,
    training_runtime,
    two_tower_data,
    two_tower_loop,
    two_tower_temperature,
)
from pinrec.models import two_tower_trainer as trainer_module
from pinrec.models.config import TwoTowerConfig
from pinrec.models.two_tower_trainer import (
    PinTable,
    TwoTowerData,
    TwoTowerTrainer,
    fit_two_tower,
    in_batch_softmax_loss,
    recall_at_k,
)

torch.set_num_threads(1)
CATS, PER_CAT, L = 4, 10, 5  # 40 pins in 4 categories; lists of 5 pins


def world(pairs: int, seed: int):
    """Users who save pins of one favourite category and engage with another pin of it; the pins'
    embeddings cluster by category. Random retrieval finds the positive in the top 5 of 40 with
    probability 1/8."""
    g = torch.Generator().manual_seed(seed)
    n = CATS * PER_CAT
    cat = torch.arange(n) // PER_CAT
    centres = torch.nn.functional.normalize(torch.randn(CATS, 8, generator=g), dim=1)
    emb = centres[cat] + 0.3 * torch.randn(n, 8, generator=g)
    fav = torch.randint(0, CATS, (pairs,), generator=g)
    in_cat = lambda k: fav.unsqueeze(1) * PER_CAT + torch.randint(0, PER_CAT, (pairs, k), generator=g)
    saves, pins = in_cat(L), in_cat(1).squeeze(1)
    saves[: pairs // 10, 2:] = -1  # some short lists
    data = TwoTowerData(torch.randint(0, 3, (pairs, 1), generator=g), torch.randn(pairs, 2, generator=g), saves,
                        torch.full((pairs, L), -1), pins, (cat[pins] + 1).unsqueeze(1), torch.zeros(pairs, 1))
    return data, PinTable((cat + 1).unsqueeze(1), torch.zeros(n, 1), emb)


CFG = TwoTowerConfig(out_channels=8, hidden_channels=32, category_dim=4, list_length=L, epochs=6, batch_size=64,
                     lr=1e-2, temperatures=(0.1,), eval_k=5, progress=False, device="cpu")


def test_logq_correction_subtracts_log_sampling_probability():
    u = torch.nn.functional.normalize(torch.ones(3, 4), dim=1)  # every score equal: only logQ differs
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    assert float(in_batch_softmax_loss(u, u, 0.1)) == pytest.approx(math.log(3))
    # row i: -log((1/q_i) / sum_j 1/q_j), sum_j 1/q_j = 10: the popular pin's row loses more, the rare ones less
    expected = (math.log(10 / 2) + 2 * math.log(10 / 4)) / 3
    assert float(in_batch_softmax_loss(u, u, 0.1, log_q)) == pytest.approx(expected, rel=1e-6)
    per_row = torch.nn.functional.cross_entropy(u @ u.T / 0.1 - log_q, torch.arange(3), reduction="none")
    assert per_row[0] > math.log(3) > per_row[1]


def test_duplicate_positive_in_batch_is_no_negative():
    g = torch.Generator().manual_seed(1)
    u = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    p = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    pins = torch.tensor([7, 9, 7])  # rows 0 and 2 engaged the same pin
    masked = in_batch_softmax_loss(u, p, 0.5, same=pins.unsqueeze(0) == pins.unsqueeze(1))
    logits = u @ p.T / 0.5
    rows = [torch.logsumexp(logits[0, [0, 1]], 0) - logits[0, 0], torch.logsumexp(logits[1], 0) - logits[1, 1],
            torch.logsumexp(logits[2, [1, 2]], 0) - logits[2, 2]]
    assert float(masked) == pytest.approx(float(sum(rows) / 3), rel=1e-6)


def test_tiny_problem_is_learnt_far_above_random():
    train, pins = world(1200, seed=0)
    val, _ = world(300, seed=1)
    trainer = TwoTowerTrainer(train, pins, CFG, 0.1, [3], [CATS + 1])
    history = trainer.fit()
    assert history[-1]["loss"] < history[0]["loss"]
    recall = recall_at_k(trainer.user_embeddings(val), trainer.pin_embeddings(), val.pins, 5)
    # random: 5 / 40 = 0.125; knowing the category (and nothing within it) gives 0.5
    assert recall > 0.35, recall
    assert torch.allclose(trainer.pin_embeddings().norm(dim=1), torch.ones(len(pins)))


def test_resume_equals_uninterrupted(tmp_path):
    train, pins = world(300, seed=0)
    cfg = replace(CFG, epochs=4)
    straight = TwoTowerTrainer(train, pins, cfg, 0.1, [3], [CATS + 1])
    straight.fit()
    first = TwoTowerTrainer(train, pins, replace(cfg, epochs=2, checkpoint_dir=str(tmp_path)), 0.1, [3], [CATS + 1])
    first.fit()
    resumed = TwoTowerTrainer(train, pins, replace(cfg, checkpoint_dir=str(tmp_path)), 0.1, [3], [CATS + 1])
    history = resumed.fit()
    assert resumed.start_epoch == 2 and len(history) == 4
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [h["loss"] for h in history] == [h["loss"] for h in straight.history]
    with pytest.raises(ValueError, match="different architecture"):
        TwoTowerTrainer(train, pins, replace(cfg, out_channels=4, checkpoint_dir=str(tmp_path)), 0.1, [3],
                        [CATS + 1]).fit()
    with pytest.raises(ValueError, match=r"belongs to another run .*'lr': "):
        TwoTowerTrainer(train, pins, replace(cfg, lr=0.05, checkpoint_dir=str(tmp_path)), 0.1, [3], [CATS + 1]).fit()
    other, _ = world(300, seed=1)
    with pytest.raises(ValueError, match=r"belongs to another run .*the training data differ"):
        TwoTowerTrainer(other, pins, replace(cfg, checkpoint_dir=str(tmp_path)), 0.1, [3], [CATS + 1]).fit()


def test_temperature_is_chosen_on_validation():
    train, pins = world(600, seed=0)
    val, _ = world(200, seed=1)
    fit = fit_two_tower(train, val, pins, replace(CFG, epochs=3, temperatures=(1.0, 0.1)), [3], [CATS + 1])
    assert set(fit.table) == {1.0, 0.1}
    assert fit.temperature == max(fit.table, key=fit.table.get)
    assert fit.table[fit.temperature] == pytest.approx(
        recall_at_k(fit.trainer.user_embeddings(val), fit.trainer.pin_embeddings(), val.pins, 5))


def test_bad_inputs_raise():
    train, pins = world(20, seed=0)
    with pytest.raises(ValueError, match="list_length"):
        TwoTowerTrainer(train, pins, replace(CFG, list_length=3), 0.1, [3], [CATS + 1])
    with pytest.raises(ValueError, match="temperature"):
        TwoTowerTrainer(train, pins, CFG, 0.0, [3], [CATS + 1])
    with pytest.raises(ValueError, match="P rows"):
        TwoTowerData(train.user_categorical[:3], train.user_dense, train.saves, train.closeups, train.pins,
                     train.pin_categorical, train.pin_dense)


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_parameters(tmp_path):
    from tests.support.repo import torchrun

    torchrun("-m", "tests.models.ddp_two_tower_worker", str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
    history = ranks[0]["history"]
    assert [h["pairs"] for h in history] == [256] * 3  # 128 pairs per rank per epoch, all-reduced
    assert [h["loss"] for h in history] == [h["loss"] for h in ranks[1]["history"]]
    assert (tmp_path / "checkpoints" / "two_tower-tau0.1.pt").exists()


def test_non_finite_pin_embeddings_are_refused():
    train, pins = world(300, seed=0)
    emb = pins.embeddings.clone()
    emb[4, 0] = float("nan")
    with pytest.raises(ValueError, match=r"pins.embeddings holds NaN or inf in 1 row\(s\), e.g. row 4"):
        TwoTowerTrainer(train, replace(pins, embeddings=emb), CFG, 0.1, [3], [CATS + 1])


#: Every public name two_tower_trainer.py defined before the split, and the module that defines it now.
HOME = {
    "PinTable": two_tower_data, "TwoTowerData": two_tower_data, "user_inputs": two_tower_data,
    "TwoTowerTrainer": two_tower_loop, "build_model": two_tower_loop,
    "TwoTowerFit": two_tower_temperature, "fit_two_tower": two_tower_temperature, "recall_at_k": two_tower_temperature,
    "in_batch_softmax_loss": losses,
    "EpochHook": training_runtime,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(trainer_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(trainer_module, name) is getattr(module, name), name
        value = module.__dict__[name]
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == module.__name__, name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_names_the_two_tower_setting():
    train, pins = world(64, seed=0)
    with pytest.raises(ValueError, match="two_tower.device='cuda' but no CUDA device is available"):
        TwoTowerTrainer(train, pins, replace(CFG, device="cuda"), 0.1, [3], [CATS + 1])
