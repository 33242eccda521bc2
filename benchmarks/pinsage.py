"""Benchmark: PinSage training throughput and full-corpus inference at several graph sizes.

For each size N (pins), one worker subprocess (this same file, ``--_worker``, so its peak memory is
its own):

1. generates (torch, seeded) a random bipartite Pin–Board graph: ``N * edges_per_pin`` edges, each
   joining a uniform pin to a uniform board among ``N // pins_per_board`` boards, and (N, F) random
   pin features (no Spark);
2. trains :class:`pinrec.models.pinsage_trainer.PinSageTrainer` for two full epochs (default model: 2
   layers, 64 channels, T = 10 neighbours from 50 walks of 3 steps; batch 256, 64 shared negatives):
   epoch 0 with random negatives only, epoch 1 with one curriculum hard negative per query (ranks
   20-100 of a 200-walk PageRank estimate); reports pairs/s and seconds of each epoch, as measured
   by the trainer;
3. times full-corpus inference (``PinSageTrainer.embed``: one neighbourhood per pin, then
   ``PinSage.embed_all`` layer by layer) and reports pins/s;
4. reports wall and process CPU seconds (with one torch thread, CPU time is the work done and
   moves far less than wall time when the machine is shared), and peak RSS of the worker (``resource.getrusage``) and its RSS after imports, before the
   graph exists, so the difference is what the graph, the model and the run cost.

An epoch is one pass over the positive-pair anchors (about one per edge). With
``--neighborhood-refresh batch`` every batch embeds its receptive field (P pins x (T + T^2) rows),
a fixed cost per pair, so an epoch grows linearly in the edges. With ``epoch`` (the default) a
batch instead embeds *all* N pins layer by layer when that is fewer rows (N x L < P x (T + T^2);
here N < ~32k pins), cheaper per batch but O(N) per batch, so below that size an epoch grows like
N x edges, and linearly again above it. Inference does a fixed amount of work per pin.
The last lines print each measured ratio next to the edge (and pin) ratio.

Usage (from the repository root)::

    python benchmarks/pinsage.py --sizes 5000,20000
    python benchmarks/pinsage.py --sizes 20000,80000 --threads 2 --out var/bench_pinsage.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

SEED = 20260101


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from pinrec.models.pinsage_trainer import PinSageTrainConfig, PinSageTrainer
    from pinrec.models.random_walk import PinBoardGraph

    import_rss = rss_mib()
    n, boards = args.size, max(1, args.size // args.pins_per_board)
    gen = torch.Generator().manual_seed(SEED + n)
    e = n * args.edges_per_pin
    t0 = time.perf_counter()
    graph = PinBoardGraph(torch.randint(0, n, (e,), generator=gen), torch.randint(0, boards, (e,), generator=gen),
                          num_pins=n, num_boards=boards)
    features = torch.randn(n, args.features, generator=gen)
    build_s = time.perf_counter() - t0
    cfg = PinSageTrainConfig(epochs=2, batch_size=256, num_negatives=64, hard_negatives_from_epoch=1,
                             max_hard_negatives=1, hard_negative_band=(20, 100), hard_negative_walks=200,
                             progress=False, seed=SEED, device=args.device,
                             neighborhood_refresh=args.neighborhood_refresh)
    cpu_marks = []  # process CPU seconds at the start and the end of each epoch: robust on a shared machine
    trainer = PinSageTrainer(graph, features, cfg, on_epoch_end=lambda epoch, metrics: cpu_marks.append(time.process_time()))
    cpu_marks.append(time.process_time())
    history = trainer.fit()
    t0, c0 = time.perf_counter(), time.process_time()
    emb = trainer.embed()
    infer_s, infer_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    assert emb.shape == (n, cfg.out_channels) and torch.isfinite(emb).all()
    if trainer.device.type == "cuda":
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        gpu_peak = None
    return {
        "pins": n, "boards": boards, "edges": graph.num_edges, "anchors": len(trainer.pairs),
        "device": str(trainer.device), "threads": args.threads, "build_s": build_s,
        "epoch_easy_s": history[0]["pairs"] / history[0]["pairs_per_s"], "pairs_per_s_easy": history[0]["pairs_per_s"],
        "epoch_hard_s": history[1]["pairs"] / history[1]["pairs_per_s"], "pairs_per_s_hard": history[1]["pairs_per_s"],
        "hard_fallback": history[1]["hard_fallback"], "loss": [h["loss"] for h in history],
        "epoch_easy_cpu_s": cpu_marks[1] - cpu_marks[0], "epoch_hard_cpu_s": cpu_marks[2] - cpu_marks[1],
        "infer_s": infer_s, "infer_cpu_s": infer_cpu_s, "infer_pins_per_s": n / infer_s,
        "rss_after_import_mib": import_rss, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_mib": gpu_peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000", help="comma-separated pin counts, e.g. 5000,2e4")
    parser.add_argument("--edges-per-pin", type=int, default=3)
    parser.add_argument("--pins-per-board", type=int, default=10)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--neighborhood-refresh", default="epoch", choices=("epoch", "batch"),
                        help="pinsage.neighborhood_refresh (default epoch; batch: the paper's per-batch sampling)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        print("RESULT " + json.dumps(worker(args)))
        return 0

    results = []
    for size in (int(float(s)) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--_worker", "--size", str(size), "--edges-per-pin", str(args.edges_per_pin),
               "--pins-per-board", str(args.pins_per_board), "--features", str(args.features),
               "--threads", str(args.threads), "--device", args.device,
               "--neighborhood-refresh", args.neighborhood_refresh]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        results.append(json.loads(next(line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT "))))
        print(f"[pinsage bench] N={size} done", file=sys.stderr)

    print(f"\nPinSage benchmark on {platform.machine()} ({os.cpu_count()} cores visible), device "
          f"{results[0]['device']}, {args.threads} torch thread(s), neighborhood_refresh="
          f"{args.neighborhood_refresh}; load average {os.getloadavg()[0]:.1f}\n")
    print("| pins | boards | edges | anchors | epoch, random negs: wall s / CPU s | pairs/s (wall) "
          "| epoch, +1 hard neg: wall s / CPU s | pairs/s (wall) | inference: wall s / CPU s | pins/s (wall) "
          "| peak RSS (MiB) | RSS after imports (MiB) |")
    print("|---:" * 12 + "|")
    for r in results:
        print(f"| {r['pins']:,} | {r['boards']:,} | {r['edges']:,} | {r['anchors']:,} "
              f"| {r['epoch_easy_s']:.2f} / {r['epoch_easy_cpu_s']:.2f} | {r['pairs_per_s_easy']:,.0f} "
              f"| {r['epoch_hard_s']:.2f} / {r['epoch_hard_cpu_s']:.2f} | {r['pairs_per_s_hard']:,.0f} "
              f"| {r['infer_s']:.2f} / {r['infer_cpu_s']:.2f} | {r['infer_pins_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} "
              f"| {r['rss_after_import_mib']:,.0f} |")
    first = results[0]
    for r in results[1:]:
        print(f"\nN {first['pins']:,} -> {r['pins']:,}: edges x{r['edges'] / first['edges']:.2f}, "
              f"epoch CPU time x{r['epoch_easy_cpu_s'] / first['epoch_easy_cpu_s']:.2f} (random negs), "
              f"x{r['epoch_hard_cpu_s'] / first['epoch_hard_cpu_s']:.2f} (+1 hard) [wall x"
              f"{r['epoch_easy_s'] / first['epoch_easy_s']:.2f}, x{r['epoch_hard_s'] / first['epoch_hard_s']:.2f}]; "
              f"pins x{r['pins'] / first['pins']:.2f}, inference CPU time x{r['infer_cpu_s'] / first['infer_cpu_s']:.2f} "
              f"[wall x{r['infer_s'] / first['infer_s']:.2f}]")
    print("hard-negative fallback share (no PageRank band reached): "
          + ", ".join(f"N={r['pins']:,}: {r['hard_fallback']:.3f}" for r in results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
