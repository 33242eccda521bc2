"""Ranker training: the loss by hand, learning a planted signal, early stopping, resume, DDP, devices."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pinrec.models.ranker import Ranker, RankerConfig
from pinrec.models.ranker_trainer import (
    RankerData,
    RankerTrainConfig,
    RankerTrainer,
    ranker_loss,
)
from tests.support.rankers import config, model, planted
from tests.support.repo import torchrun

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def test_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    weights, tasks = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.5])
    sp = torch.nn.functional.softplus
    want = (2 * (math.log(2) + 0.5 * sp(torch.tensor(2.0))) + (sp(torch.tensor(1.0)) + 0.5 * sp(torch.tensor(-1.0)))) / 3
    torch.testing.assert_close(ranker_loss(logits, labels, weights, tasks), want)
    torch.testing.assert_close(ranker_loss(logits, labels, weights, tasks, "focal", 0.0), want)
    assert ranker_loss(logits, labels, weights, tasks, "focal", 2.0) < want


def test_learns_the_planted_signal_and_reports_every_epoch():
    seen = []
    trainer = RankerTrainer(model(), config(epochs=4), on_epoch_end=lambda e, m: seen.append((e, m)))
    result = trainer.fit(planted(3000, 0), planted(1500, 1))
    assert [e for e, _ in seen] == list(range(4))
    assert set(seen[0][1]) == {"train_loss", "train_rows", "val_logloss", "val_auc", "val_logloss_save", "val_auc_save",
                               "val_logloss_closeup", "val_auc_closeup"}
    assert result.best_metrics["val_auc_save"] > 0.75 and result.best_metrics["val_auc_closeup"] > 0.75
    assert [m["train_rows"] for _, m in seen] == [3000.0] * 4
    # the model holds the best epoch's weights
    again = trainer.evaluate(planted(1500, 1))
    assert again["val_logloss"] == pytest.approx(result.best_metrics["val_logloss"], rel=1e-6)
    assert trainer.predict_logits(planted(10, 2)).shape == (10, 2)


def test_early_stopping_on_noise_keeps_the_best_epoch():
    trainer = RankerTrainer(model(), config(epochs=12, lr=3e-2, patience=1, monitor="logloss"))
    result = trainer.fit(planted(1000, 0, noise=True), planted(500, 1, noise=True))
    assert result.stopped_early and len(result.history) < 12
    assert result.best_epoch == len(result.history) - 2  # one epoch of patience
    assert trainer.evaluate(planted(500, 1, noise=True))["val_logloss"] == pytest.approx(
        result.best_metrics["val_logloss"], rel=1e-6)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    train, val = planted(800, 0), planted(300, 1)
    straight = RankerTrainer(model(), config(epochs=4, patience=10))
    straight.fit(train, val)
    ckpt = tmp_path / "ranker.pt"
    first = RankerTrainer(model(), config(epochs=2, patience=10))
    first.fit(train, val, checkpoint=ckpt)
    assert ckpt.exists()
    resumed = RankerTrainer(model(seed=99), config(epochs=4, patience=10))  # weights come from the checkpoint
    result = resumed.fit(train, val, checkpoint=ckpt)
    assert [int(h["epoch"]) for h in result.history] == [0, 1, 2, 3]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    torch.load(ckpt, weights_only=True)  # state dicts and plain values only


def test_logit_correction_adds_log_rate():
    trainer = RankerTrainer(model(), config(epochs=1, negative_correction="logit"))
    result = trainer.fit(planted(400, 0), planted(200, 1), negative_rate=0.25)
    assert result.logit_offset == pytest.approx((math.log(0.25),) * 2)
    data = planted(5, 3)
    with torch.no_grad():
        raw = trainer.model.eval()(data.categorical, data.dense).numpy()
    np.testing.assert_allclose(trainer.predict_logits(data), raw + math.log(0.25), rtol=1e-6, atol=1e-6)


def test_ddp_with_one_process(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        result = RankerTrainer(model(), config(epochs=1)).fit(planted(400, 0), planted(200, 1))
        assert result.history and result.best_metrics["val_auc"] > 0.5
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_parameters(tmp_path):
    torchrun("-m", "tests.models.ddp_ranker_worker", str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
    assert ranks[0]["history"] == ranks[1]["history"]  # train loss summed over ranks; the same validation
    assert [h["train_rows"] for h in ranks[0]["history"]] == [3000.0] * 4  # 1500 rows per rank per epoch
    assert ranks[0]["best_metrics"]["val_auc_save"] > 0.75 and ranks[0]["best_metrics"]["val_auc_closeup"] > 0.75
    assert ranks[0]["logits"].shape == (1500, 2) and torch.equal(ranks[0]["logits"], ranks[1]["logits"])
    assert (tmp_path / "ranker.ckpt").exists()
    # half the rows per rank and step: a different run from the one-process one
    single = RankerTrainer(model(), config(epochs=4)).fit(planted(3000, 0), planted(1500, 1))
    assert single.history[-1]["train_loss"] != pytest.approx(ranks[0]["history"][-1]["train_loss"], rel=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda():
    trainer = RankerTrainer(model(), config(epochs=2, device="cuda"))
    result = trainer.fit(planted(2000, 0), planted(1000, 1))
    assert next(trainer.model.parameters()).is_cuda and result.best_metrics["val_auc"] > 0.7


def test_bad_config_raises():
    with pytest.raises(ValueError, match="loss"):
        RankerTrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="epochs"):
        RankerTrainConfig(epochs=0)
    with pytest.raises(ValueError, match="task_weights"):
        RankerTrainer(model(), RankerTrainConfig(task_weights=(1.0,)))
    with pytest.raises(ValueError, match="negative_rate"):
        RankerTrainer(model(), config()).fit(planted(10, 0), planted(10, 1), negative_rate=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_reaches_the_oracle_auc_when_the_input_carries_the_latent_relevance(seed):
    """Issue #6's target (AUC within 0.005 of the oracle) as a test of the model alone: fed the one
    number the synthetic world's true probabilities depend on (relevance r = <u, v_p>) besides
    position, the default ranker with its position tower ranks the test day within 0.005 of the
    generator's own probabilities. (With the features logs reveal the gap is informational:
    benchmarks/ranker_oracle_gap.py.) 100k impressions a day: at 40k the save task's ~400 test
    positives let two of six seeds miss (0.0063, 0.0078). Measured over seeds 0, 1, 2, 3, 5, 11:
    save gaps 0.0006-0.0031 (11 the largest), closeup -0.0001-0.0010."""
    from pinrec.jobs.config import SyntheticConfig
    from pinrec.jobs.ingest.synthetic import simulate
    from pinrec.models.metrics import auc

    cfg = SyntheticConfig(impressions_per_day=100_000, days=3)
    days = simulate(cfg, seed).days

    def data(t) -> RankerData:
        labels = np.stack([t["save"], t["closeup"]], 1).astype(np.float32)
        return RankerData(torch.zeros(len(labels), 0, dtype=torch.long), torch.from_numpy(t["relevance"][:, None]),
                          torch.from_numpy(t["position"].astype(np.int64)), torch.from_numpy(labels),
                          torch.ones(len(labels)))

    train, validation, test = (data(t) for t in days)
    torch.manual_seed(seed)
    trainer = RankerTrainer(Ranker((), 1, cfg.session_length + 1, RankerConfig()),
                            RankerTrainConfig(epochs=6, lr=3e-3, seed=seed, device="cpu", progress=False))
    trainer.fit(train, validation)
    logits = trainer.predict_logits(test, with_position=True)
    t = days[2]
    oracle = {"save": t["exam_prob"] * t["p_closeup"] * t["p_save"], "closeup": t["exam_prob"] * t["p_closeup"]}
    for k, task in enumerate(("save", "closeup")):
        y = test.labels[:, k].numpy()
        model_auc, oracle_auc = auc(y, logits[:, k]), auc(y, oracle[task])
        assert oracle_auc > 0.78, (task, oracle_auc)
        assert oracle_auc - model_auc < 0.005, (task, model_auc, oracle_auc)


@pytest.mark.slow
def test_position_tower_removes_a_popularity_confounded_position_bias():
    """Issue #6's debiasing target where it can show: on a synthetic world whose feed puts popular
    pins first (``feed_order="popularity"``), a model fed the relevance and the pin's popularity
    but not the position credits popularity with what the top slots did; the same ranker with its
    position tower, scored position-free, ranks the test day closer (Kendall tau) to the oracle's
    position-free probabilities. Measured (save, closeup) tau, debiased vs without position: seed
    0: 0.871 vs 0.802, 0.883 vs 0.716; seed 1: 0.842 vs 0.796, 0.820 vs 0.732; seed 2: 0.800 vs
    0.752, 0.769 vs 0.710. (With ``feed_order="random"`` position is confounded with nothing and
    the two tie: README, "The ranker job and its results".)"""
    from pinrec.jobs.config import SyntheticConfig
    from pinrec.jobs.ingest.synthetic import simulate
    from pinrec.models.metrics import kendall_tau

    seed = 0
    cfg = SyntheticConfig(impressions_per_day=100_000, days=3, feed_order="popularity")
    sim = simulate(cfg, seed)
    days = [{**truth, "log_popularity": np.log(sim.pin_popularity[truth["pin"]])} for truth in sim.days]
    t = days[2]
    oracle_free = {"save": t["p_closeup"] * t["p_save"], "closeup": t["p_closeup"]}
    tau = {}
    for with_position in (True, False):
        def data(t, with_position=with_position) -> RankerData:
            dense = np.stack([t["relevance"], t["log_popularity"]], 1).astype(np.float32)
            labels = np.stack([t["save"], t["closeup"]], 1).astype(np.float32)
            position = t["position"].astype(np.int64) if with_position else np.zeros(len(labels), np.int64)
            return RankerData(torch.zeros(len(labels), 0, dtype=torch.long), torch.from_numpy(dense),
                              torch.from_numpy(position), torch.from_numpy(labels), torch.ones(len(labels)))

        train, validation, test = (data(t) for t in days)
        torch.manual_seed(seed)
        trainer = RankerTrainer(Ranker((), 2, cfg.session_length + 1, RankerConfig()),
                                RankerTrainConfig(epochs=6, lr=3e-3, seed=seed, device="cpu", progress=False))
        trainer.fit(train, validation)
        free = trainer.predict_logits(test)  # position-free, as served
        tau[with_position] = {task: kendall_tau(oracle_free[task], free[:, k]) for k, task in enumerate(("save", "closeup"))}
    for task in ("save", "closeup"):
        assert tau[True][task] > tau[False][task] + 0.03, tau


def test_non_finite_inputs_are_refused_and_a_diverged_epoch_raises():
    import dataclasses

    data = planted(50, 0)
    dense = data.dense.clone()
    dense[3, 1] = float("inf")
    with pytest.raises(ValueError, match=r"dense column\(s\) \[1\] hold NaN or inf"):
        dataclasses.replace(data, dense=dense)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        dataclasses.replace(data, weights=torch.full_like(data.weights, float("nan")))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        dataclasses.replace(data, labels=data.labels * 2)
    with pytest.raises(FloatingPointError, match=r"epoch 0: training diverged"):  # NaN was kept as the best epoch
        RankerTrainer(model(), config(epochs=2, lr=1e30)).fit(planted(400, 0), planted(200, 1))
