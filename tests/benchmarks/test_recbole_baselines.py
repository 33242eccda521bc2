"""``benchmarks/recbole_baselines.py``: RecBole gets exactly the split `pinrec eval-retrieval` scored (fast,
no RecBole needed), and (full) a tiny real run of LightGCN and SASRec in RecBole's own environment."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinrec.jobs.ingest.log_reader import LogSpec, load_log
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.jobs.retrieval.retrieval_data import evaluate_storage

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "recbole_baselines.py"
VENV = Path(os.environ.get("PINREC_RECBOLE_VENV", Path.home() / ".cache" / "pinrec" / "recbole-venv"))


def script():
    spec = importlib.util.spec_from_file_location("recbole_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def landed(tmp_path: Path, short_users: int = 0) -> Path:
    """80 users walking a ring of 40 items (3-11 steps, seeded) among 130 catalogue items, and
    ``short_users`` more (ids 81, ...) with two steps each, landed."""
    rng = np.random.default_rng(0)
    rows = [(u, (start + j) % 40 + 1, 1_600_000_000 + u * 1000 + j * 10)
            for u, start in enumerate(rng.integers(0, 40, 80), 1) for j in range(int(rng.integers(3, 12)))]
    rows += [(u, (u + j) % 40 + 1, 1_600_000_000 + u * 1000 + j * 10) for u in range(81, 81 + short_users)
             for j in range(2)]
    pd.DataFrame(rows, columns=["user", "item", "ts"]).to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"item": range(1, 131), "category": [f"c{i % 5}" for i in range(1, 131)]}) \
        .to_csv(tmp_path / "items.csv", index=False)
    load_log(tmp_path / "log.csv", tmp_path / "landing",
             LogSpec(user="user", item="item", timestamp="ts", items=str(tmp_path / "items.csv"), category="category"))
    return tmp_path / "landing"


def test_the_atomic_files_hold_the_reports_split(tmp_path):
    landing = landed(tmp_path)
    report = evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing)
    report.write(tmp_path / "report")
    info = script().export_split(tmp_path / "report", landing, tmp_path / "work")
    assert info["users"] == 80 and info["catalogue"] == 130
    inter = pd.read_csv(tmp_path / "work" / "data" / "pinrec" / "pinrec.inter", sep="\t")
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    assert info["train"] + 80 == len(inter)
    last = inter.sort_values("timestamp:float").groupby("user_id:token").tail(1).set_index("user_id:token")
    held = report.negatives.set_index("user_id")
    # RecBole's leave-one-out by this order holds out exactly pinrec's test pin, against the same negatives
    assert last["item_id:token"].sort_index().tolist() == held["pin_id"].sort_index().tolist()
    candidates = {c["user"]: c["items"] for c in json.loads((tmp_path / "work" / "candidates.json").read_text())}
    assert all(candidates[u] == [held.at[u, "pin_id"], *held.at[u, "negatives"]] for u in held.index)
    assert all(len(c) == 100 for c in candidates.values())
    items = pd.read_csv(tmp_path / "work" / "data" / "pinrec" / "pinrec.item", sep="\t")
    assert items["item_id:token"].tolist() == list(range(1, 131))
    # the training part keeps each user's order (the ring: every step one further)
    user = inter[inter["user_id:token"] == 1].sort_values("timestamp:float")["item_id:token"].to_numpy()
    assert (np.diff(user) % 40 == 1).all()
    with pytest.raises(ValueError, match="evaluates 80 users, the report 79"):
        body = json.loads((tmp_path / "report" / "report.json").read_text())
        body["rows"][0]["queries"] = 79
        (tmp_path / "report" / "report.json").write_text(json.dumps(body))
        script().export_split(tmp_path / "report", landing, tmp_path / "work2")


def test_a_user_with_one_training_pin_keeps_the_test_pin_out_of_recboles_files(tmp_path):
    """RecBole's sequential rows would train on such a user's test pin (its only row predicts it): it stays out
    of the atomic files, and the candidates carry every user's training pins for the query built instead."""
    landing = landed(tmp_path, short_users=7)
    report = evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing)
    report.write(tmp_path / "report")
    info = script().export_split(tmp_path / "report", landing, tmp_path / "work")
    assert info["users"] == 87 and info["test_out_of_files"] == 7
    inter = pd.read_csv(tmp_path / "work" / "data" / "pinrec" / "pinrec.inter", sep="\t")
    assert len(inter) == info["train"] + 80
    held = report.negatives.set_index("user_id")
    candidates = {c["user"]: c for c in json.loads((tmp_path / "work" / "candidates.json").read_text())}
    for user in range(81, 88):  # one training pin, then the test pin: only the training pin is in the files
        rows = inter[inter["user_id:token"] == user]
        assert rows["item_id:token"].tolist() == candidates[user]["history"] and len(rows) == 1
        assert held.at[user, "pin_id"] not in candidates[user]["history"]
        assert candidates[user]["items"][0] == held.at[user, "pin_id"]
    for user in range(1, 81):  # the others: training pins in order, then the test pin, as before
        rows = inter[inter["user_id:token"] == user].sort_values("timestamp:float")["item_id:token"].tolist()
        assert rows == [*candidates[user]["history"], held.at[user, "pin_id"]] and len(rows) >= 3


def test_patience_reaches_recbole_and_the_chosen_curve_is_printed(tmp_path, monkeypatch, capsys):
    landing = landed(tmp_path)
    evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing).write(tmp_path / "report")
    module, work, calls = script(), tmp_path / "work", []
    scores = [[0.9, *[0.0] * 99]] * 40 + [[0.0, *[0.5] * 99]] * 40  # half the users hit at rank 1, half miss

    def fake_worker(cmd, **kwargs):  # what the RecBole side writes, without RecBole
        calls.append(cmd)
        trial = {"setting": "{}", "ndcg": 0.04, "epoch": 2, "epochs_run": 3, "seconds": 1.0, "chosen": True,
                 "curve": [[1, 30.0, 0.0383], [2, 20.0, 0.0421], [3, 15.0, 0.0400]]}
        (work / "result_LightGCN.json").write_text(json.dumps({
            "trials": [trial], "skipped": [], "final_epochs": 2, "final_seconds": 1.0, "scores": scores}))

    monkeypatch.setattr(module, "ensure_env", lambda venv, own_torch=False: Path(sys.executable))
    monkeypatch.setattr(module.subprocess, "run", fake_worker)
    assert module.main(["--report", str(tmp_path / "report"), "--landing", str(landing), "--models", "LightGCN",
                        "--workdir", str(work)]) == 0
    cmd = calls[0]
    assert cmd[cmd.index("--patience") + 1] == "10"  # RecBole's own default, not the 5 that stopped LightGCN early
    out = capsys.readouterr().out
    assert "| LightGCN (RecBole) | 0.5000 ± 0.1103 | 0.5000 ± 0.1103 | 0.5050 | 80 |" in out
    assert "{}: 0.0400 / 2 of 3 / 1s  *" in out
    assert "1: 30.00 / 0.0383, 2: 20.00 / 0.0421, 3: 15.00 / 0.0400" in out
    module.main(["--report", str(tmp_path / "report"), "--landing", str(landing), "--models", "LightGCN",
                 "--workdir", str(work), "--patience", "3"])
    assert calls[1][calls[1].index("--patience") + 1] == "3"


@pytest.mark.slow
@pytest.mark.full
@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason=f"no RecBole environment at {VENV}")
def test_lightgcn_and_sasrec_run_in_recbole_on_the_split(tmp_path):
    landing = landed(tmp_path, short_users=5)  # scored from queries built by the benchmark
    evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing).write(tmp_path / "report")
    done = subprocess.run([sys.executable, str(SCRIPT), "--report", str(tmp_path / "report"), "--landing",
                           str(landing), "--epochs", "2", "--budget-s", "0", "--venv", str(VENV)],
                          cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| popularity (pinrec) |" in out
    for name in ("LightGCN", "SASRec"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} (RecBole) |"))
        assert row.endswith("| 85 |") and 0.0 <= float(row.split("|")[2].split("±")[0]) <= 1.0
        assert f"{name}: validation (RecBole full ranking" in out
    result = json.loads((tmp_path / "report" / "recbole" / "result_SASRec.json").read_text())
    assert np.asarray(result["scores"]).shape == (85, 100) and result["final_epochs"] in (1, 2)
    # the per-epoch record: training loss every epoch, validation NDCG@10 in the grid only
    trial = result["trials"][0]
    assert [e for e, _, _ in trial["curve"]] == list(range(1, trial["epochs_run"] + 1))
    assert all(loss > 0 and 0.0 <= v <= 1.0 for _, loss, v in trial["curve"])
    assert len(result["final_curve"]) == result["final_epochs"] and all(v is None for *_, v in result["final_curve"])


@pytest.mark.slow
@pytest.mark.full
@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason=f"no RecBole environment at {VENV}")
def test_the_test_fit_beside_the_validation_fit_gives_the_same_scores(tmp_path):
    """``--test-beside`` (the test fit epoch by epoch in a second process, kept at the best validation epoch)
    gives exactly the scores of the test fit run after the validation fit, for LightGCN and SASRec."""
    landing = landed(tmp_path, short_users=5)
    evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing).write(tmp_path / "report")
    results = {}
    for mode in ([], ["--test-beside"]):
        work = tmp_path / ("beside" if mode else "after")
        done = subprocess.run([sys.executable, str(SCRIPT), "--report", str(tmp_path / "report"), "--landing",
                               str(landing), "--epochs", "3", "--patience", "1", "--settings", "2", "--venv",
                               str(VENV), "--workdir", str(work), *mode],
                              cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        results[bool(mode)] = {name: json.loads((work / f"result_{name}.json").read_text())
                               for name in ("LightGCN", "SASRec")}
        if mode:
            assert "(beside the validation fit)" in done.stdout
    for name in ("LightGCN", "SASRec"):
        after, beside = results[False][name], results[True][name]
        assert beside["test_beside"] and not after["test_beside"]
        assert after["trials"][0]["setting"] == json.dumps(script().GRIDS[name][1])  # --settings 2: the second
        assert beside["final_epochs"] == after["final_epochs"] >= 1
        assert beside["scores"] == after["scores"]
        assert [loss for _, loss, _ in beside["final_curve"]] == pytest.approx(
            [loss for _, loss, _ in after["final_curve"]], rel=1e-6)


@pytest.mark.slow
@pytest.mark.full
@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason=f"no RecBole environment at {VENV}")
def test_a_killed_run_resumed_from_its_checkpoints_gives_the_uninterrupted_runs_numbers(tmp_path):
    """``--resume`` after SIGKILL mid-fit (validation fit and test fit beside it): every curve, epoch and
    test score equals the uninterrupted run's, for LightGCN (negative sampling) and SASRec (dropout)."""
    landing = landed(tmp_path, short_users=5)
    evaluate_storage(RetrievalEvalConfig(baselines=("popularity",)), landing).write(tmp_path / "report")

    def command(work, *extra):
        return [sys.executable, str(SCRIPT), "--report", str(tmp_path / "report"), "--landing", str(landing),
                "--epochs", "5", "--patience", "10", "--settings", "2", "--venv", str(VENV), "--workdir", str(work),
                "--test-beside", *extra]

    results = {}
    for kind in ("straight", "killed"):
        work = tmp_path / kind
        if kind == "killed":
            first = subprocess.Popen(command(work), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 600
            while not (work / "ckpt_LightGCN_2_valid.pt").exists():
                assert first.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
                time.sleep(0.02)
            os.killpg(first.pid, signal.SIGKILL)  # the script, its worker and the test fit beside it
            first.wait()
            assert not (work / "result_LightGCN.json").exists()
        done = subprocess.run(command(work, *(["--resume"] if kind == "killed" else [])), cwd=REPO,
                              capture_output=True, text=True, timeout=1200, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        if kind == "killed":
            assert "LightGCN" in done.stdout and "resumed after epoch" in done.stdout
        results[kind] = {name: json.loads((work / f"result_{name}.json").read_text()) for name in ("LightGCN", "SASRec")}
    for name in ("LightGCN", "SASRec"):
        straight, killed = results["straight"][name], results["killed"][name]
        assert killed["scores"] == straight["scores"] and killed["final_epochs"] == straight["final_epochs"]
        assert killed["final_curve"] == straight["final_curve"]
        assert [t["curve"] for t in killed["trials"]] == [t["curve"] for t in straight["trials"]]


def test_settings_outside_the_grid_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        script().main(["--report", str(tmp_path), "--landing", str(tmp_path), "--models", "SASRec", "--settings", "3"])
    assert "SASRec's grid has settings 1 to 2" in capsys.readouterr().err


def write_inter(tmp_path: Path, sequences: dict[int, list[int]], catalogue: int) -> None:
    folder = tmp_path / "data" / "pinrec"
    folder.mkdir(parents=True)
    inter = pd.DataFrame([(u, i) for u, items in sequences.items() for i in items],
                         columns=["user_id:token", "item_id:token"])
    inter["timestamp:float"] = inter.groupby("user_id:token").cumcount().astype(float)
    inter.iloc[::-1].to_csv(folder / "pinrec.inter", sep="\t", index=False)  # file order must not matter
    pd.DataFrame({"item_id:token": range(1, catalogue + 1)}).to_csv(folder / "pinrec.item", sep="\t", index=False)


def test_popularity_anchors_the_validation_table_in_recboles_full_ranking(tmp_path):
    # user 1: trains on 1, 2, validates on 3; user 2: trains on 1, validates on 3; user 3: trains on 2, validates on 1
    write_inter(tmp_path, {1: [1, 2, 3, 4], 2: [1, 3, 5], 3: [2, 1, 6]}, 7)
    out = script().validation_anchors(tmp_path, 5, None)
    # counts 1: 2, 2: 2, the rest 0; ranks (ties against, own training items masked): user 1 item 3 -> 4,
    # user 2 item 3 -> 5, user 3 item 1 -> 0 (item 2 ties but is user 3's own)
    assert list(out) == ["popularity"] and out["popularity"]["users"] == 3
    assert out["popularity"]["HR@5"] == pytest.approx(2 / 3)
    assert out["popularity"]["NDCG@5"] == pytest.approx((1 / np.log2(6) + 1.0) / 3)


def test_ease_anchor_ranks_the_co_occurring_item_first(tmp_path):
    # items 1 and 2 always together (4 users), 3 and 4 together and more popular (6 users); user 11 trains
    # on 1 and validates on 2: popularity ranks 2 behind 3 and 4, EASE first (item 1 says "2", never "3")
    sequences = {u: [1, 2, 9, 10] for u in range(1, 5)} | {u: [3, 4, 9, 10] for u in range(5, 11)}
    write_inter(tmp_path, sequences | {11: [1, 2, 10]}, 10)
    out = script().validation_anchors(tmp_path, 1, 1.0)
    assert out["popularity"]["HR@1"] == 0.0 and out["popularity"]["users"] == 11
    assert out["EASE (lambda 1)"]["HR@1"] == pytest.approx(1 / 11)
    assert out["EASE (lambda 1)"]["NDCG@1"] == pytest.approx(1 / 11)
