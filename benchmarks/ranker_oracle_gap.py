"""Benchmark: how close can the ranker get to the synthetic world's oracle AUC, and what limits it?

Issue #6 asks for a ranker AUC within 0.005 of the oracle (the generator's true probabilities).
This script separates the two things that could miss it: the model (architecture, trainer,
position tower) and the information its features carry. It simulates impressions with the
generator itself (:mod:`pinrec.jobs.ingest.synthetic`; the same world, pins' content embeddings and labels the
pipeline lands, without Spark), trains the real :class:`pinrec.models.ranker.Ranker` with
:class:`pinrec.models.ranker_trainer.RankerTrainer` on four feature sets of decreasing information, and
scores the last day (train: the days before the last two; validation: the day before the last):

* ``latent relevance``: r = <u, v_p>, the one number the generator's probabilities depend on
  (besides position). Tests the model: it should reach the oracle.
* ``user latent + pin content``: the true user vector u (D), the pin's observed content
  embedding (D, zeros + a flag when the pin has none) and their dot product. Users known
  exactly, pins only through their noisy content (``CONTENT_NOISE``).
* ``closeup profile + pin content``: u replaced by what logs reveal: the normalised sum of the
  content embeddings of the user's closeups on earlier days (daily, as the feature tables see
  them) plus a has-history flag. The information the pipeline's features could at best expose.
* ``... + user and pin ids``: the same plus user and pin id embeddings, which can learn what
  content misses given enough impressions per id.

Every model is trained with position as an input and scored *with* the position tower, as the
oracle is; AUC on the same test rows. Prints one table per world size, with the gap to the oracle
and its 95 % interval over 200 paired session resamples (:func:`pinrec.models.metrics.auc_bootstrap`).

Usage (from the repository root)::

    python benchmarks/ranker_oracle_gap.py --impressions-per-day 20000,100000 --days 4
    # a closed catalogue with much engagement per pin (README: "More engagement per pin"):
    python benchmarks/ranker_oracle_gap.py --set fresh_pins_per_day=0 --set new_users_per_day=0 \
        --users 200 --pins 25 --impressions-per-day 100000 --days 6 --embedding-dim 16
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np

TASKS = ("save", "closeup")
LEVELS = ("latent relevance", "user latent + pin content", "closeup profile + pin content",
          "closeup profile + pin content + ids")


def simulate(cfg, seed: int) -> dict:
    """:func:`pinrec.jobs.ingest.synthetic.simulate` as a dict: ``days`` (per-day truth dicts with ``user``,
    ``pin`` and ``session`` indices), ``user_latent`` (U, D), ``content`` (P, D) zeros where
    absent, ``has_content`` (P,)."""
    from pinrec.jobs.ingest.synthetic import simulate as simulate_world

    sim = simulate_world(cfg, seed)
    return {"days": list(sim.days), "user_latent": sim.user_latent, "content": sim.content,
            "has_content": sim.has_content}


def closeup_profiles(world: dict, day: int) -> tuple[np.ndarray, np.ndarray]:
    """(U, D) normalised sum of the content of each user's closeups before ``day``, (U,) has-any."""
    users, dim = len(world["user_latent"]), world["content"].shape[1]
    total, count = np.zeros((users, dim)), np.zeros(users)
    for truth in world["days"][:day]:
        hit = truth["closeup"]
        np.add.at(total, truth["user"][hit], world["content"][truth["pin"][hit]])
        np.add.at(count, truth["user"][hit], 1)
    norm = np.linalg.norm(total, axis=1, keepdims=True)
    return np.divide(total, norm, out=np.zeros_like(total), where=norm > 0).astype(np.float32), count > 0


def features(world: dict, day: int, level: str) -> tuple[np.ndarray, np.ndarray]:
    """(categorical (B, C) int64, dense (B, F) float32) of day ``day``'s impressions at ``level``."""
    t = world["days"][day]
    n = len(t["user"])
    if level == "latent relevance":
        return np.zeros((n, 0), np.int64), t["relevance"][:, None].astype(np.float32)
    pin_vec = world["content"][t["pin"]]
    pin_flag = world["has_content"][t["pin"]][:, None].astype(np.float32)
    if level == "user latent + pin content":
        user_vec, user_flag = world["user_latent"][t["user"]], np.ones((n, 1), np.float32)
    else:
        profile, known = closeup_profiles(world, day)
        user_vec, user_flag = profile[t["user"]], known[t["user"]][:, None].astype(np.float32)
    dot = np.einsum("nd,nd->n", user_vec, pin_vec)[:, None]
    dense = np.hstack([user_vec, pin_vec, dot, user_flag, pin_flag]).astype(np.float32)
    ids = np.stack([t["user"], t["pin"]], 1).astype(np.int64) if level.endswith("ids") else np.zeros((n, 0), np.int64)
    return ids, dense


def ranker_gap(world: dict, level: str, epochs: int, seed: int, embedding_dim: int = 8) -> dict[str, float]:
    """Train on the days before the last two, early-stop on the day before the last, return per
    task the with-position AUC on the last day and the oracle's on the same rows."""
    import torch

    from pinrec.models.config import RankerConfig, RankerTrainConfig
    from pinrec.models.metrics import auc, auc_bootstrap
    from pinrec.models.ranker import Ranker
    from pinrec.models.ranker_trainer import RankerData, RankerTrainer

    days = world["days"]

    def data(rows: list[int]) -> RankerData:
        parts = [features(world, d, level) for d in rows]
        labels = np.concatenate([np.stack([days[d][t] for t in TASKS], 1) for d in rows]).astype(np.float32)
        position = np.concatenate([days[d]["position"] for d in rows]).astype(np.int64)
        return RankerData(torch.from_numpy(np.concatenate([p[0] for p in parts])),
                          torch.from_numpy(np.concatenate([p[1] for p in parts])),
                          torch.from_numpy(position), torch.from_numpy(labels), torch.ones(len(labels)))

    last = len(days) - 1
    train, validation, test = data(list(range(last - 1))), data([last - 1]), data([last])
    cardinalities = (len(world["user_latent"]), len(world["content"])) if level.endswith("ids") else ()
    torch.manual_seed(seed)
    model = Ranker(cardinalities, train.dense.shape[1], int(test.position.max()) + 1, RankerConfig(embedding_dim=embedding_dim))
    config = RankerTrainConfig(epochs=epochs, lr=3e-3, patience=2, seed=seed, device="cpu", progress=False,
                               weight_decay=1e-6 if cardinalities else 0.0)
    trainer = RankerTrainer(model, config)
    trainer.fit(train, validation)
    logits = trainer.predict_logits(test, with_position=True)
    t = days[last]
    oracle = {"save": t["exam_prob"] * t["p_closeup"] * t["p_save"], "closeup": t["exam_prob"] * t["p_closeup"]}
    sessions = t["session"]
    out = {}
    for k, task in enumerate(TASKS):
        y = test.labels[:, k].numpy()
        out[f"{task}_auc"], out[f"{task}_oracle"] = auc(y, logits[:, k]), auc(y, oracle[task])
        draws = auc_bootstrap(y, np.stack([logits[:, k], oracle[task]], 1), sessions, resamples=200, seed=seed)
        out[f"{task}_gap_low"], out[f"{task}_gap_high"] = np.nanpercentile(draws[1] - draws[0], [2.5, 97.5])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impressions-per-day", default="20000,100000", help="comma list: one world per value")
    p.add_argument("--days", type=int, default=4, help="days simulated (>= 3: train, validation, test)")
    p.add_argument("--users", type=int, default=None, help="default: SyntheticConfig's")
    p.add_argument("--pins", type=int, default=None, help="default: SyntheticConfig's")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--levels", default=",".join(str(i) for i in range(len(LEVELS))),
                   help=f"comma list of indices into {LEVELS}")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--embedding-dim", type=int, default=8, help="RankerConfig.embedding_dim (the id embeddings)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=INT",
                   help="any other integer SyntheticConfig field, e.g. --set fresh_pins_per_day=0 (repeatable)")
    args = p.parse_args(argv)
    if args.days < 3:
        p.error("--days must be >= 3")

    import torch

    from pinrec.jobs.config import SyntheticConfig

    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if type(getattr(SyntheticConfig(), name, None)) is not int or not value.lstrip("-").isdigit():
            p.error(f"--set wants FIELD=INT with an integer SyntheticConfig field, got {item!r}")
        overrides[name] = int(value)
    torch.set_num_threads(1)
    levels = [LEVELS[int(i)] for i in args.levels.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f}; seed {args.seed}; {args.days} days; epochs <= {args.epochs}; "
          "AUC with position on the last day; gap = oracle - model")
    for per_day in (int(v) for v in args.impressions_per_day.split(",")):
        cfg = replace(SyntheticConfig(), impressions_per_day=per_day, days=args.days,
                      **({"users": args.users} if args.users else {}), **({"pins": args.pins} if args.pins else {}),
                      **overrides)
        world = simulate(cfg, args.seed)
        t = world["days"][-1]
        print(f"\nworld: {cfg.users} users (+{cfg.new_users_per_day}/day), {cfg.pins} pins "
              f"(+{cfg.fresh_pins_per_day}/day), {per_day} impressions/day; test day: {len(t['user'])} rows, "
              f"{int(t['save'].sum())} saves, {int(t['closeup'].sum())} closeups")
        print("| features | save AUC | oracle | gap [95 % interval] | closeup AUC | oracle | gap [95 % interval] "
              "| seconds |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for level in levels:
            start = time.perf_counter()
            r = ranker_gap(world, level, args.epochs, args.seed, args.embedding_dim)
            cells = [f"{r[f'{t}_auc']:.4f} | {r[f'{t}_oracle']:.4f} | {r[f'{t}_oracle'] - r[f'{t}_auc']:+.4f} "
                     f"[{r[f'{t}_gap_low']:+.4f}, {r[f'{t}_gap_high']:+.4f}]" for t in TASKS]
            print(f"| {level} | {' | '.join(cells)} | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
