"""Benchmark: LightGCN and SASRec from RecBole on exactly the leave-one-out split `pinrec eval-retrieval` scored.

RecBole (Zhao et al., CIKM 2021; https://recbole.io, `pip install recbole`) pins its own
dependencies (``ray <= 2.6.3``, ``colorlog == 4.7.2``, numpy < 2 in practice), so it runs in its own
virtual environment (``--venv``, default ``~/.cache/pinrec/recbole-venv``), which this script
creates on first use: ``recbole`` 1.2.1 and its dependencies from PyPI, and, instead of a second
multi-GB CUDA build of torch, the torch of the interpreter running this script, exposed read-only
through a ``.pth`` file that lists a folder of links to ``torch`` and its compiled companions only
(``--own-torch``: ``pip install torch`` into the environment instead).

One run:

1. (this interpreter, pinrec's) reads ``report.json`` + ``negatives.parquet`` written by
   ``pinrec eval-retrieval --out DIR`` and the landing zone the report was made from, and rebuilds
   the split with the stored negatives (:func:`pinrec.jobs.retrieval.retrieval_protocols.leave_one_out`:
   the same training log, held-out pins and 99 negatives per user; the number of evaluated users
   must equal the report's). It writes RecBole atomic files: ``pinrec.inter`` (user, item,
   timestamp = the interaction's position in the user's split order: training items in pinrec's
   time order, then the held-out item, except for users with a single training item, whose held-out
   item stays out: a sequential model would otherwise train on it, see :func:`export_split`) and
   ``pinrec.item`` (every catalogue pin, so that negatives never seen in training have an embedding,
   as in pinrec's baselines), and ``candidates.json`` (per user the held-out pin, its negatives and the
   training pins in order: the test query of every user is built from these, :func:`_queries`);
2. (the RecBole environment, this file with ``--_worker``) for each model: **settings on the
   validation split only**: RecBole's leave-one-out by that order (``LS: valid_and_test``) holds out
   each user's latest training item (pinrec's validation pin) and the test item; each setting of the
   declared grid (:data:`GRIDS`; later ones only while ``--budget-s`` is left for the model) trains
   with early stopping on validation NDCG@10 (RecBole's full ranking; ``--patience`` epochs without
   gain, default 10 as RecBole's own); the best setting and its best epoch win. **Test**: that setting is
   retrained from the same seed on the whole training part (``LS: test_only``: the validation
   item back in training, as pinrec's models have it) for that many epochs, and scores each test
   user's held-out pin and its 99 negatives with ``model.full_sort_predict``. Two options for fits too slow
   for a session (SASRec on MovieLens-100K: ~4 CPU-minutes an epoch): ``--settings 2`` runs only the grid's
   second setting (positions are 1-based), and ``--test-beside`` runs each setting's test fit in a second
   process beside its validation fit, scoring the test candidates after every epoch, and keeps the epoch
   the validation fit chose: the same scores as the test fit after it (a test checks they are equal), in
   about half the wall time with one thread per process. Both fits save their whole state after every
   epoch (model, optimizer, early stopping, random states), so a run longer than a session is stopped
   and continued with ``--resume`` (same arguments and ``--workdir``) to the same numbers;
3. (pinrec's interpreter) ranks them with pinrec's own metrics (ties against the held-out pin) and
   prints HR@10 / NDCG@10 / MRR with 95 % intervals (1.96 sd / sqrt(n)), the report's own rows beside
   them, and the validation table: each trial's best epoch of the epochs run, the chosen setting's
   per-epoch training loss and validation NDCG@10, and popularity's and EASE's validation scores in the
   same full ranking (:func:`validation_anchors`: what a validation number means).

Usage (from the repository root, after ``pinrec eval-retrieval ... --out DIR``)::

    python benchmarks/recbole_baselines.py --report DIR --landing LANDING [--budget-s 1800] [--epochs 60]
    OMP_NUM_THREADS=1 python benchmarks/recbole_baselines.py ... --models SASRec --settings 1 --test-beside \
        --workdir W [--resume]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path.home() / ".cache" / "pinrec" / "recbole-venv"
RECBOLE = "recbole==1.2.1"
# recbole 1.2.1's requirements without torch (shared, see the module docstring) and thop (needs torch: --no-deps);
# scipy < 1.12: LightGCN builds its adjacency with dok_matrix._update, which scipy 1.12 removed
REQUIREMENTS = ["numpy<2", "scipy<1.12", "pandas<2.3", "tqdm", "colorlog==4.7.2", "colorama==0.4.4", "scikit-learn",
                "pyyaml", "tensorboard", "tabulate", "plotly", "texttable", "psutil", "ray<=2.6.3",
                "sympy", "networkx", "jinja2", "filelock", "fsspec", "typing_extensions", "setuptools"]
SHARED_TORCH = ("torch", "torchgen", "functorch", "triton", "nvidia", "cuda")
#: The declared search space: model -> settings tried in this order (``--budget-s`` may cut the later ones).
#: LightGCN leads with learning rate 1e-2: at RecBole's default 1e-3 its validation NDCG@10 sits on the
#: popularity plateau for its first 8 epochs (measured on MovieLens-100K: 0.0383 at epoch 1, 0.0364-0.0386
#: to epoch 8, then rising): on a shared 2-core machine (15-40 s an epoch at load 1-10) most budgets end on it.
GRIDS = {
    "LightGCN": [{"learning_rate": 1e-2, "n_layers": 2, "reg_weight": 1e-5},
                 {"learning_rate": 1e-3, "n_layers": 2, "reg_weight": 1e-5},
                 {"learning_rate": 1e-2, "n_layers": 3, "reg_weight": 1e-4}],
    "SASRec": [{"hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5},
               {"hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2}],
}
COMMON = {"LightGCN": {"train_batch_size": 2048, "embedding_size": 64},
          "SASRec": {"train_batch_size": 512, "learning_rate": 1e-3, "hidden_size": 64, "n_layers": 2,
                     "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None}}


# ------------------------------------------------------------------------------- the environment
def ensure_env(venv: Path, own_torch: bool = False) -> Path:
    """The RecBole environment's python, created when missing (module docstring)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import recbole, torch"]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable if sys.version_info[:2] == (3, 11) else "python3.11", "-m", "venv", str(venv)],
                   check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", RECBOLE, "thop"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    if own_torch:
        subprocess.run([*pip, "torch"], check=True)
    else:
        import torch

        here = Path(torch.__file__).resolve().parents[1]  # this interpreter's site-packages
        shared = venv / "torch-shared"
        shared.mkdir(exist_ok=True)
        for entry in here.iterdir():
            if entry.name.split("-")[0].split("_")[0] in SHARED_TORCH and not (shared / entry.name).exists():
                (shared / entry.name).symlink_to(entry)
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "torch-shared.pth").write_text(f"{shared}\n")
    done = subprocess.run(probe, check=False, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the RecBole environment {venv} does not import recbole and torch:\n{done.stderr[-2000:]}")
    return python


# ------------------------------------------------------------------- phase 1 and 3 (pinrec's side)
def export_split(report: Path, landing: Path, work: Path) -> dict:
    """Rebuild the report's split and write the atomic files and candidates (module docstring, 1)."""
    import numpy as np
    import pandas as pd

    from pinrec.jobs.retrieval.retrieval_data import (
        interaction_source,
        read_landed_pins,
        read_landing_interactions,
    )
    from pinrec.jobs.retrieval.retrieval_protocols import leave_one_out

    body = json.loads((report / "report.json").read_text())
    cfg = body["config"]
    queries = next(r["queries"] for r in body["rows"] if r["task"] == "user-item leave-one-out")
    log = read_landing_interactions(landing, interaction_source(landing, cfg["source"]))
    catalogue = read_landed_pins(landing)["pin_id"].dropna().astype("int64").to_numpy()
    catalogue = np.union1d(log["pin_id"].to_numpy(), catalogue)
    split = leave_one_out(log, cfg["num_negatives"], cfg["seed"], catalogue,
                          pd.read_parquet(report / "negatives.parquet"))
    if len(split.test) != queries:
        raise ValueError(f"the rebuilt split evaluates {len(split.test)} users, the report {queries}: "
                         "another landing zone or source than the report's?")
    train = split.train[["user_id", "pin_id"]].copy()
    train["timestamp"] = train.groupby("user_id").cumcount().astype(float)  # split order: train ..., test last
    # A user with one training pin: a sequential model's only row of the user would predict the test pin from
    # it, and RecBole's leave-one-out holds a row out only from users with two or more, so it would train on
    # the test pin. Their test pin stays out of the files; _score builds every user's query itself.
    sizes = train.groupby("user_id").size()
    test = split.test[~split.test["user_id"].isin(sizes.index[sizes == 1])][["user_id", "pin_id"]].copy()
    test["timestamp"] = sizes.reindex(test["user_id"]).to_numpy().astype(float)
    inter = pd.concat([train, test], ignore_index=True)
    folder = work / "data" / "pinrec"
    folder.mkdir(parents=True, exist_ok=True)
    inter.rename(columns={"user_id": "user_id:token", "pin_id": "item_id:token", "timestamp": "timestamp:float"}) \
        .to_csv(folder / "pinrec.inter", sep="\t", index=False)
    pd.DataFrame({"item_id:token": catalogue}).to_csv(folder / "pinrec.item", sep="\t", index=False)
    history = train.groupby("user_id")["pin_id"].agg(list)  # in split order (a stable sort of cumcount)
    candidates = [{"user": int(u), "items": [int(p), *map(int, n)], "history": [int(i) for i in history.get(u, [])]}
                  for u, p, n in zip(split.test["user_id"], split.test["pin_id"], split.test["negatives"])]
    (work / "candidates.json").write_text(json.dumps(candidates))
    return {"k": cfg["k"], "ease_lambda": cfg.get("ease_lambda"), "users": len(candidates), "train": len(split.train),
            "catalogue": len(catalogue), "test_out_of_files": len(split.test) - len(test), "rows": body["rows"]}


def validation_anchors(work: Path, k: int, ease_lambda: float | None) -> dict[str, dict[str, float]]:
    """Popularity's and EASE's validation HR@k / NDCG@k in RecBole's own full ranking: the validation table's anchors.

    Each user's second-last item in ``pinrec.inter``'s order (RecBole's validation item) is ranked among
    every catalogue item, the user's earlier items (the training part) excluded as RecBole masks them, ties
    counted against it; popularity scores an item by its count in the training part, EASE (Steck, WWW
    2019, ``ease_lambda``: the report's own, chosen on validation by ``pinrec eval-retrieval``; None skips it)
    by the closed form on the training part. A learned model near popularity here has learnt popularity
    only; the anchors say, without touching the test pin, where RecBole's models stand against pinrec's
    strongest in-house baseline. Returns ``{model: {"HR@k", "NDCG@k", "users"}}``; empty when the
    users x catalogue matrix is over 50M cells.
    """
    import numpy as np
    import pandas as pd

    folder = work / "data" / "pinrec"
    inter = pd.read_csv(folder / "pinrec.inter", sep="\t").sort_values(["user_id:token", "timestamp:float"],
                                                                     kind="stable")
    catalogue = np.sort(pd.read_csv(folder / "pinrec.item", sep="\t")["item_id:token"].to_numpy())
    from_end = inter.groupby("user_id:token").cumcount(ascending=False)
    train, valid = inter[from_end >= 2], inter[from_end == 1]
    users = np.unique(inter["user_id:token"].to_numpy())
    if len(users) * len(catalogue) > 50_000_000:
        return {}
    x = np.zeros((len(users), len(catalogue)), dtype=np.float64)
    x[np.searchsorted(users, train["user_id:token"]), np.searchsorted(catalogue, train["item_id:token"])] = 1.0
    rows = np.searchsorted(users, valid["user_id:token"].to_numpy())
    cols = np.searchsorted(catalogue, valid["item_id:token"].to_numpy())
    scores = {"popularity": np.broadcast_to(x.sum(0), (len(rows), len(catalogue)))}
    if ease_lambda is not None:
        gram = x.T @ x + ease_lambda * np.eye(len(catalogue))
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        scores[f"EASE (lambda {ease_lambda:g})"] = x[rows] @ weights
    out = {}
    for name, score in scores.items():
        score = np.where(x[rows] > 0, -np.inf, score)  # the user's training items, masked
        target = score[np.arange(len(rows)), cols]
        ranks = (score >= target[:, None]).sum(1) - 1
        out[name] = {f"HR@{k}": float((ranks < k).mean()),
                     f"NDCG@{k}": float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean()),
                     "users": len(ranks)}
    return out


def summarise(work: Path, info: dict, models: list[str]) -> str:
    """Markdown rows of each model's test metrics (pinrec's ranking and intervals) and the report's rows."""
    import numpy as np

    from pinrec.jobs.retrieval.retrieval_eval import ci95
    from pinrec.models.retrieval_metrics import (
        hit_rate_at_k,
        mrr,
        ndcg_at_k,
        ranks_from_scores,
    )

    k, lines = info["k"], []
    head = f"| model | HR@{k} | NDCG@{k} | MRR | users |"
    lines += [head, "|---|---:|---:|---:|---:|"]
    for row in info["rows"]:
        if row["task"] == "user-item leave-one-out":
            m, c = row["metrics"], row.get("ci95", {})
            lines.append(f"| {row['model']} (pinrec) | {m[f'HR@{k}']:.4f} ± {c.get(f'HR@{k}', float('nan')):.4f} | "
                         f"{m[f'NDCG@{k}']:.4f} ± {c.get(f'NDCG@{k}', float('nan')):.4f} | {m['MRR']:.4f} | "
                         f"{row['queries']} |")
    anchors = validation_anchors(work, k, info.get("ease_lambda"))
    notes = [f"{name} on the validation pin in the same full ranking (an anchor): NDCG@{k} {a[f'NDCG@{k}']:.4f}, "
             f"HR@{k} {a[f'HR@{k}']:.4f} ({a['users']} users)" for name, a in anchors.items()]
    for name in models:
        out = json.loads((work / f"result_{name}.json").read_text())
        ranks = ranks_from_scores(np.asarray(out["scores"], dtype=np.float64))
        gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
        lines.append(f"| {name} (RecBole) | {hit_rate_at_k(ranks, k):.4f} ± {ci95(ranks < k):.4f} | "
                     f"{ndcg_at_k(ranks, k):.4f} ± {ci95(gains):.4f} | {mrr(ranks):.4f} | {len(ranks)} |")
        notes.append(f"{name}: validation (RecBole full ranking, NDCG@10 / best epoch / seconds):")
        notes += [f"  {t['setting']}: {t['ndcg']:.4f} / {t['epoch']} of {t.get('epochs_run', '?')} / "
                  f"{t['seconds']:.0f}s{'  *' if t['chosen'] else ''}" for t in out["trials"]]
        notes += [f"  skipped by the budget: {s}" for s in out["skipped"]]
        chosen = next(t for t in out["trials"] if t["chosen"])
        notes.append("  chosen setting's curve (epoch: training loss / validation NDCG@10): " + ", ".join(
            f"{e}: {loss:.2f} / {v:.4f}" for e, loss, v in chosen.get("curve", []) if v is not None))
        beside = " (beside the validation fit)" if out.get("test_beside") else ""
        notes.append(f"  test fit: {out['final_epochs']} epochs, {out['final_seconds']:.0f}s{beside}")
    return "\n".join(lines + [""] + notes)


# ------------------------------------------------------------------------ phase 2 (RecBole's side)
def _config(model: str, work: Path, setting: dict, mode: str, epochs: int, seed: int, patience: int):
    from recbole.config import Config

    return Config(model=model, dataset="pinrec", config_dict={
        "data_path": str(work / "data"), "checkpoint_dir": str(work / "saved"), "seed": seed,
        "reproducibility": True, "use_gpu": False, "show_progress": False, "state": "WARNING",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
        "eval_args": {"split": {"LS": mode}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10", "epochs": epochs,
        "stopping_step": patience, "eval_batch_size": 4096, **COMMON[model], **setting})


def _prepare(model_name: str, work: Path, setting: dict, mode: str, epochs: int, seed: int, patience: int):
    """RecBole's config, dataset, its three loaders, the model and its trainer, seeded as ``run_recbole`` seeds."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    config = _config(model_name, work, setting, mode, epochs, seed, patience)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return config, dataset, train, valid, test, model, trainer


def _rng_state(train) -> dict:
    """Every random state a fit draws from: Python's, numpy's (RecBole's negative samplers), torch's
    (dropout) and the training loader's own generator (its shuffle)."""
    import random

    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "loader": train.generator.get_state()}


def _set_rng_state(state: dict, train) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    train.generator.set_state(state["loader"])


def _save(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file renamed over ``path``: a kill leaves the previous checkpoint whole."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path: Path | None) -> dict | None:
    import torch

    return torch.load(path, weights_only=False) if path is not None and path.exists() else None


def _fit(model_name: str, work: Path, setting: dict, mode: str, epochs: int, seed: int, patience: int,
         checkpoint: Path | None = None):
    """(model, dataset, test split, best valid NDCG@10, its 1-based epoch, curve, seconds).

    ``curve``: one ``[epoch (1-based), training loss, validation NDCG@10 or None]`` per epoch trained (no
    validation in ``test_only`` mode); RecBole stops after ``patience`` epochs without a better validation score.
    ``checkpoint`` (validation fits): after every epoch the trainer's whole state (model, optimizer, early
    stopping, losses, scores, random states) is saved there, and a fit finding one continues from it: the
    same epochs as without the interruption. ``seconds``: the fit's wall time, summed over its resumptions.
    """
    t0 = time.monotonic()
    _, dataset, train, valid, test, model, trainer = _prepare(model_name, work, setting, mode, epochs, seed,
                                                                   patience)
    scores, elapsed = [], 0.0
    state = _load(checkpoint)
    if state is not None:
        model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.start_epoch, trainer.cur_step = state["epoch"] + 1, state["cur_step"]
        trainer.best_valid_score, trainer.best_valid_result = state["best_valid_score"], state["best_valid_result"]
        trainer.train_loss_dict, scores, elapsed = dict(state["losses"]), list(state["scores"]), state["seconds"]
        _set_rng_state(state["rng"], train)
        print(f"  {model_name} {setting}: resumed after epoch {state['epoch'] + 1}", flush=True)

    def progress(epoch: int, score: float) -> None:  # RecBole calls it after each validated epoch
        scores.append((score, epoch + 1))
        print(f"  {model_name} {setting} epoch {epoch + 1}: loss {trainer.train_loss_dict[epoch]:.4f}, "
              f"validation NDCG@10 {score:.4f}", flush=True)
        if checkpoint is not None:
            _save({"epoch": epoch, "model": model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                   "cur_step": trainer.cur_step, "best_valid_score": trainer.best_valid_score,
                   "best_valid_result": trainer.best_valid_result, "losses": dict(trainer.train_loss_dict),
                   "scores": scores, "rng": _rng_state(train), "seconds": elapsed + time.monotonic() - t0,
                   "done": trainer.cur_step > patience or epoch + 1 >= epochs}, checkpoint)

    if not (state or {}).get("done"):
        trainer.fit(train, valid if mode == "valid_and_test" else None, verbose=False, saved=False,
                    show_progress=False, callback_fn=progress)
    best = max(scores, key=lambda s: (s[0], -s[1])) if scores else (float("nan"), epochs)
    validated = {e: v for v, e in scores}
    curve = [[e + 1, float(loss), validated.get(e + 1)] for e, loss in sorted(trainer.train_loss_dict.items())]
    return model, dataset, test, best[0], best[1], curve, elapsed + time.monotonic() - t0


def _queries(model, dataset, wanted: dict, order: list[int]):
    """RecBole's test query of each user of ``order``: the user id and, for a sequential model, the user's
    training pins (``wanted[u]["history"]``, the last ``MAX_ITEM_LIST_LENGTH``) left-aligned and zero-padded
    as RecBole's own sequence rows, with their count."""
    import numpy as np
    import torch
    from recbole.data.interaction import Interaction

    fields = {dataset.uid_field: torch.from_numpy(
        dataset.token2id(dataset.uid_field, [str(u) for u in order]).astype("int64"))}
    if hasattr(model, "ITEM_SEQ"):  # a SequentialRecommender
        width = model.max_seq_length
        seq, length = np.zeros((len(order), width), dtype=np.int64), np.zeros(len(order), dtype=np.int64)
        for row, user in enumerate(order):
            recent = [str(i) for i in wanted[user]["history"][-width:]]
            seq[row, :len(recent)] = dataset.token2id(dataset.iid_field, recent) if recent else []
            length[row] = len(recent)
        fields |= {model.ITEM_SEQ: torch.from_numpy(seq), model.ITEM_SEQ_LEN: torch.from_numpy(length)}
    return Interaction(fields)


def _score(model, dataset, test, work: Path) -> list[list[float]]:
    """Scores of each test user's [held-out, negatives...] from ``model.full_sort_predict`` on :func:`_queries`
    (every user: RecBole has no test row for a user whose test pin stayed out of the files, see
    :func:`export_split`); where RecBole has one, it must be that query for that held-out pin."""
    import torch

    wanted = {c["user"]: c for c in json.loads((work / "candidates.json").read_text())}
    order = sorted(wanted)
    queries = _queries(model, dataset, wanted, order)
    inter = test._dataset.inter_feat
    users = [int(t) for t in dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())]
    targets = [int(t) for t in dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())]
    position = {u: i for i, u in enumerate(order)}
    for row, user in enumerate(users):
        mine = position.get(user)
        if mine is None or wanted[user]["items"][0] != targets[row] or any(
                not torch.equal(queries[key][mine], inter[key][row]) for key in queries.interaction):
            raise ValueError(f"RecBole's test row of user {user} is not pinrec's query for its held-out pin")
    if unexpected := sorted(u for u in set(order) - set(users) if len(wanted[u]["history"]) != 1):
        raise ValueError(f"RecBole has no test row for users {unexpected[:5]}, whose test pins are in its files")
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(order), 512):
            chunk = order[start:start + 512]
            batch = queries[start:start + len(chunk)]
            full = model.full_sort_predict(batch).view(len(chunk), -1)
            tokens = [str(i) for u in chunk for i in wanted[u]["items"]]
            cols = torch.from_numpy(dataset.token2id(dataset.iid_field, tokens).astype("int64")).view(len(chunk), -1)
            out += full.gather(1, cols).tolist()
    return out


def test_fit_by_epoch(model_name: str, work: Path, setting: dict, epochs: int, seed: int, out: Path,
                      checkpoint: Path | None = None) -> None:
    """The test fit (``LS: test_only``) epoch by epoch, scoring the test candidates after each (``--test-beside``).

    The same steps as ``Trainer.fit`` without validation data (the collector sees the training data, then
    ``_train_epoch`` per epoch), so its epoch ``e`` equals the sequential test fit of ``e`` epochs (scoring in
    eval mode draws no random numbers; a test checks the scores are equal). Appends one JSON line per epoch
    to ``out``: ``{"epoch", "loss", "seconds", "scores"}`` (seconds since the fit's start, data preparation
    included, summed over resumptions; scores as :func:`_score`). ``checkpoint``: saved after every epoch's
    line, and continued from when found (``out`` is cut back to its epochs).
    """
    t0 = time.monotonic()
    config, dataset, train, _, test, model, trainer = _prepare(model_name, work, setting, "test_only", epochs, seed,
                                                               epochs)
    trainer.eval_collector.data_collect(train)
    if config["train_neg_sample_args"].get("dynamic", False):
        train.get_model(model)
    start, elapsed = 0, 0.0
    if (state := _load(checkpoint)) is not None:
        model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], train)
        start, elapsed = state["epoch"] + 1, state["seconds"]
        lines = out.read_text().splitlines()[:start] if out.exists() else []
        if len(lines) != start:
            raise RuntimeError(f"{out} holds {len(lines)} epochs, its checkpoint {start}: not resumable")
        out.write_text("".join(line + "\n" for line in lines))
    for epoch in range(start, epochs):
        loss = trainer._train_epoch(train, epoch, show_progress=False)
        loss = sum(loss) if isinstance(loss, tuple) else loss
        scores = _score(model, dataset, test, work)
        seconds = elapsed + time.monotonic() - t0
        with out.open("a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "loss": float(loss), "seconds": seconds, "scores": scores}) + "\n")
        if checkpoint is not None:
            _save({"epoch": epoch, "model": model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                   "rng": _rng_state(train), "seconds": seconds}, checkpoint)


def _wait_for_epoch(path: Path, epoch: int, process: subprocess.Popen) -> dict:
    """The line of ``epoch`` in a :func:`test_fit_by_epoch` file, waiting for the process to write it."""
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= epoch:
            return lines[epoch - 1]
        if process.poll() is not None:
            raise RuntimeError(f"the test fit beside the validation fit ended ({process.returncode}) "
                               f"after {len(lines)} epochs, before epoch {epoch}")
        time.sleep(5)


def worker(work: Path, models: list[str], budget_s: float, epochs: int, seed: int, patience: int,
           settings: list[int] | None = None, test_beside: bool = False, resume: bool = False) -> None:
    """Phase 2 (module docstring). ``settings``: 1-based positions in the model's grid to run, in this order
    (None: all); ``test_beside``: each setting's test fit runs in a second process beside its validation fit
    (:func:`test_fit_by_epoch`), and the trial keeps the test scores of its best validation epoch: the same
    numbers as the test fit after it, in about half the wall time on two cores (one thread each).
    ``resume``: a finished setting's trial (``trial_<model>_<i>.json``) is reused and an unfinished one's fits
    continue from their per-epoch checkpoints (``ckpt_<model>_<i>_{valid,test}.pt``); else they start afresh."""
    for name in models:
        start, trials, skipped = time.monotonic(), [], []
        for n, i in enumerate(settings or range(1, len(GRIDS[name]) + 1)):
            setting = GRIDS[name][i - 1]
            kept, out = work / f"trial_{name}_{i}.json", work / f"test_epochs_{name}_{i}.jsonl"
            ckpt_valid, ckpt_test = work / f"ckpt_{name}_{i}_valid.pt", work / f"ckpt_{name}_{i}_test.pt"
            if not resume:
                for path in (kept, out, ckpt_valid, ckpt_test):
                    path.unlink(missing_ok=True)
            elif kept.exists() and json.loads(kept.read_text())["test_beside"] == test_beside:
                trials.append(json.loads(kept.read_text())["trial"])
                print(f"{name} {setting}: finished before, kept ({kept.name})", flush=True)
                continue
            if n and time.monotonic() - start > budget_s:
                skipped.append(json.dumps(setting))
                continue
            beside = None
            if test_beside:
                beside = subprocess.Popen([sys.executable, __file__, "--_test_fit", "--models", name, "--settings",
                                           str(i), "--workdir", str(work), "--epochs", str(epochs), "--seed",
                                           str(seed), *(["--resume"] if resume else [])])
            try:
                _, _, _, ndcg, epoch, curve, seconds = _fit(name, work, setting, "valid_and_test", epochs, seed,
                                                            patience, ckpt_valid)
                trial = {"setting": json.dumps(setting), "ndcg": ndcg, "epoch": epoch, "epochs_run": len(curve),
                         "seconds": seconds, "chosen": False, "curve": curve}
                if beside is not None:
                    line = _wait_for_epoch(out, epoch, beside)
                    lines = [json.loads(row) for row in out.read_text().splitlines()][:epoch]
                    trial["test"] = {"scores": line["scores"], "seconds": line["seconds"],
                                     "curve": [[row["epoch"], row["loss"], None] for row in lines]}
            finally:
                if beside is not None and beside.poll() is None:
                    beside.terminate()
                    beside.wait()
            kept.write_text(json.dumps({"test_beside": test_beside, "trial": trial}))
            trials.append(trial)
            print(f"{name} {setting}: validation NDCG@10 {ndcg:.4f} at epoch {epoch}", flush=True)
        best = max(trials, key=lambda t: t["ndcg"])
        best["chosen"] = True
        if test_beside:
            test = best.pop("test")
            for t in trials:
                t.pop("test", None)
            scores, seconds, curve = test["scores"], test["seconds"], test["curve"]
        else:
            t0 = time.monotonic()
            model, dataset, test, _, _, curve, _ = _fit(name, work, json.loads(best["setting"]), "test_only",
                                                        best["epoch"], seed, patience)
            scores, seconds = _score(model, dataset, test, work), time.monotonic() - t0
        (work / f"result_{name}.json").write_text(json.dumps({
            "trials": trials, "skipped": skipped, "final_epochs": best["epoch"], "final_seconds": seconds,
            "final_curve": curve, "test_beside": test_beside, "scores": scores}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", type=Path, help="folder of pinrec eval-retrieval's report.json + negatives.parquet")
    p.add_argument("--landing", type=Path, help="the landing zone the report was made from")
    p.add_argument("--models", default="LightGCN,SASRec", help="comma-separated, of " + ", ".join(GRIDS))
    p.add_argument("--budget-s", type=float, default=1800.0,
                   help="seconds per model for the validation grid (the first setting always runs)")
    p.add_argument("--epochs", type=int, default=60, help="most epochs per fit (see --patience)")
    p.add_argument("--patience", type=int, default=10,
                   help="early stopping: epochs without a better validation NDCG@10 (RecBole's default 10)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the RecBole environment (created if missing)")
    p.add_argument("--own-torch", action="store_true", help="pip install torch into it instead of sharing ours")
    p.add_argument("--workdir", type=Path, help="scratch folder (default: <report>/recbole)")
    p.add_argument("--settings", help="comma-separated 1-based positions in each model's grid to run, in this "
                                      "order (default: all; --budget-s may cut all but the first)")
    p.add_argument("--test-beside", action="store_true",
                   help="run each setting's test fit in a second process beside its validation fit and keep its "
                        "best validation epoch's test scores (the same numbers, about half the wall time on two "
                        "cores; set OMP_NUM_THREADS=1)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the same --workdir with the same arguments: finished "
                        "settings are kept, unfinished fits go on from their per-epoch checkpoints (the same "
                        "numbers as an uninterrupted run; a test checks it)")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_test_fit", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if unknown := [m for m in models if m not in GRIDS]:
        p.error(f"unknown model(s) {unknown}; known: {list(GRIDS)}")
    try:
        settings = [int(i) for i in args.settings.split(",")] if args.settings else None
    except ValueError:
        p.error(f"--settings takes comma-separated positions such as 1,3, not {args.settings!r}")
    for name in models:
        if settings and (bad := [i for i in settings if not 1 <= i <= len(GRIDS[name])]):
            p.error(f"--settings {bad}: {name}'s grid has settings 1 to {len(GRIDS[name])}")
    if args.report is None and not (args._worker or args._test_fit):
        p.error("--report is required")
    work = args.workdir or args.report / "recbole"
    if args._worker or args._test_fit:
        sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value options from the command line
        if args._test_fit:
            test_fit_by_epoch(models[0], work, GRIDS[models[0]][settings[0] - 1], args.epochs, args.seed,
                              work / f"test_epochs_{models[0]}_{settings[0]}.jsonl",
                              work / f"ckpt_{models[0]}_{settings[0]}_test.pt")
        else:
            worker(work, models, args.budget_s, args.epochs, args.seed, args.patience, settings, args.test_beside,
                   args.resume)
        return 0
    if args.landing is None:
        p.error("--landing is required")
    work.mkdir(parents=True, exist_ok=True)
    info = export_split(args.report, args.landing, work)
    print(f"split: {info['users']} test users, {info['train']} training interactions, {info['catalogue']} pins")
    python = ensure_env(args.venv, args.own_torch)
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # RecBole's side imports nothing of pinrec
    env["PYTHONWARNINGS"] = "ignore"  # RecBole 1.2.1 warns on every pandas inplace fillna
    subprocess.run([str(python), __file__, "--_worker", "--workdir", str(work), "--models", ",".join(models),
                    "--budget-s", str(args.budget_s), "--epochs", str(args.epochs), "--seed", str(args.seed),
                    "--patience", str(args.patience), *(["--settings", args.settings] if args.settings else []),
                    *(["--test-beside"] if args.test_beside else []), *(["--resume"] if args.resume else [])],
                   check=True, env=env, cwd=work)  # RecBole's trainer writes log_tensorboard/ into its cwd
    print(summarise(work, info, models))
    print(f"RecBole side: {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
