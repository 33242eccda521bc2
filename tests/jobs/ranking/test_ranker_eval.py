import math

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ranking import (
    ranker_eval,
    ranker_eval_baselines,
    ranker_eval_figures,
    ranker_eval_metrics,
    ranker_eval_oracle,
)
from pinrec.jobs.ranking.ranker_eval import (
    MetricRow,
    auc_intervals,
    debias_comparison,
    logistic_baseline,
    oracle_probabilities,
    position_ctr_figure,
    reliability_figure,
    render_table,
    task_metrics,
)
from pinrec.models.metrics import auc

TASKS = ("save", "closeup")


@pytest.fixture()
def truth():
    rng = np.random.default_rng(0)
    n = 400
    p_closeup = rng.uniform(0.05, 0.6, n)
    p_save = rng.uniform(0.1, 0.5, n)
    position = rng.integers(1, 21, n)
    exam = position ** -0.7
    closeup = rng.random(n) < exam * p_closeup
    save = closeup & (rng.random(n) < p_save)
    return pd.DataFrame({"event_id": [f"imp-{i}" for i in range(n)], "p_closeup": p_closeup, "p_save": p_save,
                         "exam_prob": exam, "position": position, "closeup": closeup, "save": save})


class Batch:
    def __init__(self, categorical, dense):
        self.categorical, self.dense = categorical, dense


def test_oracle_probabilities_follow_the_generator_in_event_order(truth):
    ids = truth["event_id"].to_numpy()[::-1]
    observed, free = oracle_probabilities(truth, ids, TASKS)
    t = truth.iloc[::-1]
    np.testing.assert_allclose(free[:, 1], t["p_closeup"])
    np.testing.assert_allclose(free[:, 0], t["p_closeup"] * t["p_save"])
    np.testing.assert_allclose(observed[:, 1], t["exam_prob"] * t["p_closeup"])
    np.testing.assert_allclose(observed[:, 0], t["exam_prob"] * t["p_closeup"] * t["p_save"])


def test_oracle_auc_is_the_auc_of_the_true_probabilities(truth):
    observed, _ = oracle_probabilities(truth, truth["event_id"], TASKS)
    labels = truth[list(TASKS)].to_numpy(float)
    rows = task_metrics("oracle", labels, observed, TASKS)
    want = auc(truth["closeup"], truth["exam_prob"] * truth["p_closeup"])
    assert rows[1].auc == pytest.approx(want, abs=1e-12)
    assert rows[0].auc == pytest.approx(auc(truth["save"], truth["exam_prob"] * truth["p_closeup"] * truth["p_save"]))
    assert 0.6 < rows[1].auc < 0.9  # the position bias is informative, the truth is not a label copy


def test_oracle_probabilities_raise_on_unknown_events_and_tasks(truth):
    with pytest.raises(ValueError, match="not in the truth"):
        oracle_probabilities(truth, ["imp-0", "nope"], TASKS)
    with pytest.raises(ValueError, match="no oracle for task"):
        oracle_probabilities(truth, ["imp-0"], ("click",))
    with pytest.raises(ValueError, match="lacks columns"):
        oracle_probabilities(truth.drop(columns="exam_prob"), ["imp-0"], TASKS)


def test_task_metrics_values():
    labels = np.array([[1, 1], [0, 1], [0, 0], [1, 0]], float)
    probs = np.array([[0.9, 0.8], [0.2, 0.7], [0.1, 0.1], [0.8, 0.3]])
    rows = task_metrics("m", labels, probs, TASKS, sessions=np.array([1, 1, 2, 2]), ece_bins=10, k=10)
    assert [r.task for r in rows] == list(TASKS)
    assert rows[0].auc == 1.0 and rows[1].auc == 1.0
    assert rows[0].ndcg == pytest.approx(1.0) and rows[1].ndcg == pytest.approx(1.0)
    want = -np.mean(np.log([0.9, 0.8, 0.9, 0.8]))
    assert rows[0].logloss == pytest.approx(want)
    # one class only: AUC undefined, the rest still computed
    nan_row = task_metrics("m", np.ones((3, 1)), np.full((3, 1), 0.5), ("closeup",))[0]
    assert math.isnan(nan_row.auc) and math.isnan(nan_row.ndcg) and nan_row.logloss == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        task_metrics("m", labels[:, :1], probs[:, :1], TASKS)


def test_debias_comparison_on_a_crafted_case():
    oracle = np.array([[1.0], [2.0], [3.0], [4.0]])
    debiased = np.array([[0.1], [0.2], [0.4], [0.3]])  # one discordant pair of 6: tau = 4/6
    no_position = np.array([[0.2], [0.1], [0.4], [0.3]])  # two discordant pairs: tau = 2/6
    (cmp,) = debias_comparison(oracle, debiased, no_position, ("closeup",))
    assert cmp.tau_debiased == pytest.approx(4 / 6)
    assert cmp.tau_no_position == pytest.approx(2 / 6)
    assert cmp.debiased_closer and cmp.rows == 4
    (swapped,) = debias_comparison(oracle, no_position, debiased, ("closeup",))
    assert not swapped.debiased_closer
    assert (cmp.verdict, swapped.verdict) == ("closer?", "farther?")  # no interval asked for
    (constant,) = debias_comparison(oracle, debiased, np.full((4, 1), 0.5), ("closeup",), resamples=20)
    assert math.isnan(constant.tau_no_position) and constant.verdict == "undefined"  # a constant score ranks nothing


def test_debias_comparison_interval_over_session_resamples():
    rng = np.random.default_rng(8)
    oracle = rng.random((3000, 2))
    near = oracle + rng.normal(0, 0.05, oracle.shape)   # the debiased model: close to the oracle
    far = oracle + rng.normal(0, 0.3, oracle.shape)     # trained without position: farther
    sessions = np.arange(3000) // 10
    closer = debias_comparison(oracle, near, far, TASKS, sessions, resamples=100, seed=1)
    for c in closer:
        assert 0 < c.low < c.tau_debiased - c.tau_no_position < c.high and c.verdict == "closer"
        assert "-> debiased closer" in c.render() and f"[{c.low:+.4f}, {c.high:+.4f}]" in c.render()
    assert all(c.verdict == "farther" for c in debias_comparison(oracle, far, near, TASKS, sessions, 100))
    same = debias_comparison(oracle, near, near.copy(), TASKS, sessions, resamples=50)
    assert all(c.low == c.high == 0.0 and c.verdict == "tie" for c in same)
    capped = debias_comparison(oracle, near, far, TASKS, sessions, resamples=50, max_rows=1000)
    assert all(math.isnan(c.low) and c.verdict == "closer?" for c in capped)


def test_debias_comparison_over_training_seeds_resamples_the_seeds():
    """Seed 0's pair alone is clearly "closer"; two more seeds where the twin wins make the
    three-seed verdict a tie, because the interval now resamples the seeds as well."""
    rng = np.random.default_rng(9)
    oracle = rng.random((2000, 1))
    sessions = np.arange(2000) // 10

    def noisy(scale):
        return oracle + rng.normal(0, scale, oracle.shape)

    debiased = np.stack([noisy(0.05), noisy(0.3), noisy(0.3)])
    no_position = np.stack([noisy(0.3), noisy(0.05), noisy(0.2)])
    (one,) = debias_comparison(oracle, debiased[0], no_position[0], ("save",), sessions, resamples=100, seed=2)
    assert one.verdict == "closer" and one.seed_differences == (pytest.approx(one.tau_debiased - one.tau_no_position),)
    (three,) = debias_comparison(oracle, debiased, no_position, ("save",), sessions, resamples=100, seed=2)
    each = [debias_comparison(oracle, debiased[s], no_position[s], ("save",))[0] for s in range(3)]
    assert three.seed_differences == pytest.approx([c.tau_debiased - c.tau_no_position for c in each])
    assert three.seed_differences[0] > 0 > three.seed_differences[1]
    assert three.tau_debiased == pytest.approx(np.mean([c.tau_debiased for c in each]))
    assert three.tau_no_position == pytest.approx(np.mean([c.tau_no_position for c in each]))
    assert three.low < 0 < three.high and three.verdict == "tie"
    assert "over 3 training seeds (each: " in three.render()
    # every seed agreeing: still "closer" with the seeds resampled
    (agree,) = debias_comparison(oracle, np.stack([noisy(0.05)] * 3), np.stack([noisy(0.3)] * 3), ("save",),
                                 sessions, resamples=100, seed=2)
    assert agree.verdict == "closer" and len(agree.seed_differences) == 3
    with pytest.raises(ValueError, match=r"\(S, B, T\)"):
        debias_comparison(oracle, debiased, no_position[:2], ("save",))


def test_logistic_baseline_learns_a_separable_signal():
    rng = np.random.default_rng(1)
    n = 600
    cat = rng.integers(0, 3, (n, 1))
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = np.stack([(x[:, 0] > 0), (cat[:, 0] == 2)], 1).astype(float)
    train, test = Batch(cat[:400], x[:400]), Batch(cat[400:], x[400:])
    probs = logistic_baseline(train, y[:400], test, cardinalities=(3,))
    assert probs.shape == (200, 2)
    assert auc(y[400:, 0], probs[:, 0]) > 0.95 and auc(y[400:, 1], probs[:, 1]) > 0.95


@pytest.mark.slow
def test_dcnmix_baseline_learns_a_signal():
    pytest.importorskip("deepctr_torch")
    import torch

    from pinrec.jobs.ranking.ranker_eval import dcnmix_baseline

    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    n = 3000
    cat = rng.integers(0, 4, (n, 1))
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = ((x[:, 0] + (cat[:, 0] == 1)) > 0.5).astype(float)[:, None]
    probs = dcnmix_baseline(Batch(cat[:2000], x[:2000]), y[:2000], Batch(cat[2000:], x[2000:]), (4,), epochs=3,
                            batch_size=128)
    assert probs.shape == (1000, 1) and np.all((probs >= 0) & (probs <= 1))
    assert auc(y[2000:, 0], probs[:, 0]) > 0.9


PHONE_HOME = """
import threading
from unittest import mock

import requests

asked = []
with mock.patch.object(requests, "get", side_effect=lambda url, *a, **k: asked.append(url) or 1 / 0):
    from pinrec.jobs.ranking.ranker_eval_baselines import _without_version_check
    {call}
    import deepctr_torch.models  # noqa: F401
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(10)
print(asked)
"""


@pytest.mark.parametrize("call, asked", [("_without_version_check()", "[]"),
                                         ("pass", "['https://pypi.python.org/pypi/deepctr-torch/json']")])
def test_deepctr_is_imported_without_its_version_check_against_pypi(call, asked):
    # its __init__ starts a thread that asks PyPI for releases and prints after the import returned
    import subprocess
    import sys

    pytest.importorskip("deepctr_torch")
    out = subprocess.run([sys.executable, "-c", PHONE_HOME.format(call=call)], capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    assert out[-1] == asked  # the second case shows the check is real, so the first one proves something
    assert ("Please check the latest version" in "\n".join(out)) == (call == "pass")


def test_figures_have_one_panel_per_task(truth):
    observed, free = oracle_probabilities(truth, truth["event_id"], TASKS)
    labels = truth[list(TASKS)].to_numpy(float)
    fig = reliability_figure(labels, observed, TASKS)
    assert len(fig.axes) == 2
    xs, _ = fig.axes[1].lines[1].get_data()  # model line: mean prediction vs observed rate per bin
    assert len(xs) == 10 and np.all(np.diff(xs) >= 0)
    fig = position_ctr_figure(truth["position"], labels, observed, free, TASKS, oracle_free=free)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4
    # the oracle's position-free line has the same mean as p_closeup at position 1
    first = truth["position"] == truth["position"].min()
    assert fig.axes[1].lines[3].get_data()[1][0] == pytest.approx(truth.loc[first, "p_closeup"].mean())


def test_render_table_lists_every_row():
    text = render_table([MetricRow("ranker", "save", 0.7, 0.1, 0.01, 0.5), MetricRow("oracle", "save", 0.8, 0.09,
                                                                                        0.0, 0.6)])
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1].startswith("ranker") and "0.8000" in lines[2]


def test_auc_intervals_fill_the_rows_and_measure_paired_gaps(truth):
    y = truth[list(TASKS)].to_numpy(float)
    oracle, _ = oracle_probabilities(truth, truth["event_id"], TASKS)
    rng = np.random.default_rng(3)
    noisy = oracle * np.exp(rng.normal(0, 0.5, oracle.shape))  # a worse model, correlated with the oracle
    sessions = np.arange(len(truth)) // 4
    scored = {"model": noisy, "oracle": oracle, "copy": oracle.copy()}
    rows = [r for name, p in scored.items() for r in task_metrics(name, y, p, TASKS)]
    filled, gaps = auc_intervals(rows, y, scored, TASKS, sessions, None, [("model", "oracle"), ("copy", "oracle")],
                                 resamples=300, seed=2)
    assert [(r.model, r.task, r.auc) for r in filled] == [(r.model, r.task, r.auc) for r in rows]
    for r in filled:
        assert r.auc_low < r.auc < r.auc_high  # wide: the fixture holds ~20 saves
    by = {(g.model, g.task): g for g in gaps}
    assert set(by) == {(m, t) for m in ("model", "copy") for t in TASKS}
    for task in TASKS:
        same = by[("copy", task)]
        assert same.gap == same.low == same.high == 0.0
        g = by[("model", task)]
        expected = auc(y[:, TASKS.index(task)], oracle[:, TASKS.index(task)]) - auc(y[:, TASKS.index(task)],
                                                                                   noisy[:, TASKS.index(task)])
        assert g.gap == pytest.approx(expected) and g.low < g.gap < g.high
        # paired: the gap's interval is narrower than either AUC's
        row = next(r for r in filled if r.model == "model" and r.task == task)
        assert g.high - g.low < row.auc_high - row.auc_low
    assert "AUC gap oracle - model (save)" in by[("model", "save")].render()
    text = render_table(filled)
    assert "AUC interval" in text and f"[{filled[0].auc_low:.4f}, {filled[0].auc_high:.4f}]" in text
    assert set(filled[0].as_dict()) == {f"{k}_save" for k in ("auc", "logloss", "ece", "ndcg", "auc_low", "auc_high")}
    with pytest.raises(ValueError, match="without scores"):
        auc_intervals(rows, y, scored, TASKS, pairs=[("model", "nobody")])


#: Every public name ranker_eval.py defined before the split, and the module that defines it now.
HOME = {
    "MetricRow": ranker_eval_metrics, "AucGap": ranker_eval_metrics, "task_metrics": ranker_eval_metrics,
    "auc_intervals": ranker_eval_metrics, "render_table": ranker_eval_metrics,
    "TRUTH_COLUMNS": ranker_eval_oracle, "DebiasComparison": ranker_eval_oracle,
    "oracle_probabilities": ranker_eval_oracle, "debias_comparison": ranker_eval_oracle,
    "logistic_baseline": ranker_eval_baselines, "dcnmix_baseline": ranker_eval_baselines,
    "reliability_figure": ranker_eval_figures, "position_ctr_figure": ranker_eval_figures,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(ranker_eval.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(ranker_eval, name) is getattr(module, name), name
        value = module.__dict__[name]
        if isinstance(value, type) or callable(value):
            assert value.__module__ == module.__name__, name
        else:  # a constant: assigned at the top level of its home, and nowhere else among the split modules
            assert [m for m in set(HOME.values()) if name in m.__dict__] == [module], name
