"""Benchmark: warm-started vs cold PinSage over consecutive days of the synthetic world (issue #24).

1. generates a synthetic world of ``--days`` days into a temporary landing zone (no Spark);
2. for every day d after the first: the graph of the pin -> board saves before d
   (:func:`pinrec.jobs.pinsage.pinsage_eval.log_graph`, boards as boards) with the pins' content
   features (:func:`~pinrec.jobs.pinsage.pinsage_eval.log_features`), and the held-out saves of day d
   (a board's save of a pin it did not hold before, the board having earlier pins);
3. trains PinSage cold (``--epochs`` epochs from the seeded initialisation) and warm (from the
   previous day's warm model: :func:`pinrec.models.warm_start.warm_state`, id rows moved by pin id),
   measuring after every epoch the held-out recall@10
   (:func:`pinrec.models.embedding_stability.heldout_recall`);
4. reports per day: the cold model's final recall, the warm one's, the first epoch at which the warm
   model reaches the cold model's final recall (and its seconds), and the neighbour overlap@10 of each
   with the same kind's model of the day before (:func:`~pinrec.models.embedding_stability.neighbour_overlap`);
5. and what the blessing gate would see when the previous published version is the warm chain's:
   the overlap@10 with the day before's *warm* model of the cold model (an honest cold restart) and of
   an untrained model (the seeded initialisation, no epoch: a version that learnt nothing) and of the
   warm model's vectors given to the wrong pins (rows shuffled: a version that forgot everything, or
   an id misalignment), which bound a floor for ``blessing.min_embedding_overlap``.

Medians (and the minimum of the cold restarts' overlap) over the days close the table. One torch
thread by default (``--threads``); ``--impressions`` per day sets how many saves a day brings.

Usage::

    python benchmarks/pinsage_warm.py --days 7
    python benchmarks/pinsage_warm.py --days 7 --impressions 100000 --epochs 4   # ~5x the saves per day
    python benchmarks/pinsage_warm.py --days 4 --users 100 --pins 400 --epochs 2   # a tiny check
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def day_data(edges, content, day: dt.date):
    """(pin ids, graph, features, held-out pins, held-out board rows) of the saves before ``day``."""
    import numpy as np
    import torch

    from pinrec.jobs.pinsage.pinsage_eval import log_features, log_graph

    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    train = edges[edges["ts"] < start]
    test = edges[(edges["ts"] >= start) & (edges["ts"] < start + dt.timedelta(days=1))]
    test = test[test["user_id"].isin(train["user_id"].unique())]
    pin_ids = np.unique(np.concatenate([train["pin_id"].to_numpy(), test["pin_id"].to_numpy()]))
    graph, features = log_graph(train, pin_ids), log_features(train, pin_ids, content)
    boards = np.unique(train["user_id"].to_numpy())
    held_pins = torch.from_numpy(np.searchsorted(pin_ids, test["pin_id"].to_numpy()).astype(np.int64))
    held_boards = torch.from_numpy(np.searchsorted(boards, test["user_id"].to_numpy()).astype(np.int64))
    return torch.from_numpy(pin_ids), graph, features, held_pins, held_boards


def train(graph, features, cfg, held, previous=None):
    """(recall@10 after each epoch, seconds at the end of each epoch, model state, final embeddings)."""

    from pinrec.models.embedding_stability import heldout_recall
    from pinrec.models.pinsage_trainer import PinSageTrainer
    from pinrec.models.warm_start import row_map

    trainer = PinSageTrainer(graph, features, cfg)
    if previous is not None:
        state, old_ids, pin_ids = previous
        trainer.warm_start(state, row_map(old_ids, pin_ids))
    recalls, seconds, start = [], [], time.process_time()

    def after(epoch, metrics):
        seconds.append(time.process_time() - start)  # training only: the evaluation below is not counted
        recalls.append(heldout_recall(trainer.embed(), held[0], held[1], graph.board_ptr, graph.board_pins))

    trainer.on_epoch_end = after
    trainer.fit()
    return recalls, seconds, {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.embed()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--pins", type=int, default=4000)
    p.add_argument("--impressions", type=int, default=20_000, help="impressions per day (saves scale with them)")
    p.add_argument("--epochs", type=int, default=6, help="epochs of every model (cold and warm)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.days < 3:
        p.error("--days must be >= 3 (two consecutive retrains after the first day)")
    import pandas as pd
    import torch

    from pinrec.jobs.config import SyntheticConfig
    from pinrec.jobs.ingest.synthetic import generate
    from pinrec.jobs.retrieval.retrieval_data import (
        read_content_embeddings,
        read_landed_table,
    )
    from pinrec.models.embedding_stability import align, neighbour_overlap
    from pinrec.models.pinsage_trainer import PinSageTrainConfig, PinSageTrainer

    torch.set_num_threads(args.threads)
    cfg = PinSageTrainConfig(epochs=args.epochs, progress=False, seed=args.seed, id_embedding=True,
                             id_embedding_std=0.1, hard_negatives_from_epoch=1)
    with tempfile.TemporaryDirectory(prefix="pinrec-warm-") as landing:
        world = SyntheticConfig(users=args.users, pins=args.pins, days=args.days, impressions_per_day=args.impressions,
                                fault_rate=0.0, duplicate_rate=0.0)
        generate(world, landing, seed=args.seed)
        raw = read_landed_table(landing, "pin_board_edges")
        edges = pd.DataFrame({"user_id": raw["board_id"].astype("int64"), "pin_id": raw["pin_id"].astype("int64"),
                              "ts": pd.to_datetime(raw["saved_at"], utc=True, format="ISO8601")})
        content = read_content_embeddings(landing)
    days = [world.start_date + dt.timedelta(days=i) for i in range(1, args.days)]
    print(f"# PinSage warm vs cold, {args.days} days, {args.users} users, {args.pins} pins, "
          f"{args.impressions} impressions/day, {args.epochs} epochs; "
          f"{platform.processor() or platform.machine()}, torch threads {args.threads}; {dt.date.today()}")
    print("| day | saves before | held-out | cold recall@10 | warm recall@10 | warm epochs to cold's | "
          "cold CPU s | warm CPU s to cold's | overlap@10 cold vs day before | warm vs day before | "
          "vs the day before's warm: cold | untrained | shuffled |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    prev = {"cold": None, "warm": None}
    rows = []
    for day in days:
        pin_ids, graph, features, *held = day_data(edges, content, day)
        cold_r, cold_s, _, cold_e = train(graph, features, cfg, held)
        warm_from = prev["warm"] and (prev["warm"][2], prev["warm"][0], pin_ids)
        warm_r, warm_s, warm_state, warm_e = train(graph, features, cfg, held, warm_from)
        reach = next((i + 1 for i, r in enumerate(warm_r) if r >= cold_r[-1]), None)
        overlaps = {}
        untrained = PinSageTrainer(graph, features, cfg).embed()  # the seeded initialisation: learnt nothing
        shuffled = warm_e[torch.randperm(len(warm_e), generator=torch.Generator().manual_seed(args.seed))]
        for kind, base, vectors in (("cold", "cold", cold_e), ("warm", "warm", warm_e),
                                    ("cold_vs_warm", "warm", cold_e), ("untrained", "warm", untrained),
                                    ("shuffled", "warm", shuffled)):
            if prev[base] is not None:
                old_rows, new_rows = align(prev[base][0], pin_ids)
                overlaps[kind] = neighbour_overlap(prev[base][1][old_rows], vectors[new_rows])
        prev = {"cold": (pin_ids, cold_e, None), "warm": (pin_ids, warm_e, warm_state)}
        row = {"cold": cold_r[-1], "warm": warm_r[-1], "reach": reach, "cold_s": cold_s[-1],
               "reach_s": warm_s[reach - 1] if reach else None, **{f"o_{k}": v for k, v in overlaps.items()}}
        rows.append(row)
        fmt = lambda v, spec: "-" if v is None else format(v, spec)
        print(f"| {day} | {graph.pin_boards.numel()} | {held[0].numel()} | {row['cold']:.4f} | {row['warm']:.4f} | "
              f"{fmt(reach, 'd')} | {row['cold_s']:.1f} | {fmt(row['reach_s'], '.1f')} | "
              f"{fmt(overlaps.get('cold'), '.3f')} | {fmt(overlaps.get('warm'), '.3f')} | "
              f"{fmt(overlaps.get('cold_vs_warm'), '.3f')} | {fmt(overlaps.get('untrained'), '.3f')} | "
              f"{fmt(overlaps.get('shuffled'), '.3f')} |", flush=True)
    later = rows[1:]  # the first retrain has no warm start (no previous model)
    med = {k: statistics.median(r[k] for r in later if r.get(k) is not None) for k in
           ("cold", "warm", "cold_s", "o_cold", "o_warm", "o_cold_vs_warm", "o_untrained", "o_shuffled")
           if any(r.get(k) is not None for r in later)}
    reached = [r["reach"] for r in later if r["reach"] is not None]
    print(f"\nmedians over the {len(later)} warm-started days: recall@10 cold {med.get('cold', float('nan')):.4f}, "
          f"warm {med.get('warm', float('nan')):.4f}; warm reached the cold model's recall in "
          f"{statistics.median(reached) if reached else '-'} epoch(s) on {len(reached)} of {len(later)} days "
          f"(cold: {args.epochs}); overlap@10 with the day before: cold {med.get('o_cold', float('nan')):.3f}, "
          f"warm {med.get('o_warm', float('nan')):.3f}; with the day before's warm model: cold restart "
          f"{med.get('o_cold_vs_warm', float('nan')):.3f} (lowest "
          f"{min((r['o_cold_vs_warm'] for r in later if 'o_cold_vs_warm' in r), default=float('nan')):.3f}), "
          f"untrained {med.get('o_untrained', float('nan')):.3f} (highest "
          f"{max((r['o_untrained'] for r in later if 'o_untrained' in r), default=float('nan')):.3f}), "
          f"shuffled {med.get('o_shuffled', float('nan')):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
