"""Benchmark: score N ranker candidates on one CPU thread — torch eager vs ONNX fp32 vs ONNX int8.

One run of this script:

1. builds the encoder of the training set (:func:`export.encoding.training_set_spec`) and fits
   it on a seeded synthetic frame of that schema (or on ``--data``, a Parquet sample of the
   training set), and encodes N candidates (default 1000);
2. builds a :class:`models.ranker.Ranker` with the default :class:`RankerConfig` (random
   weights: speed does not depend on them), Platt calibration and the final score;
3. exports it (:func:`export.onnx_ranker.export_ranker`) and quantises it to int8;
4. times ``--runs`` calls (after ``--warmup``) of each variant on the same batch with one thread
   (``torch.set_num_threads(1)``; onnxruntime ``intra_op_num_threads=1``), plus the numpy
   encoder on the raw N-row frame, and prints p50 / p99 and the speed-up over torch eager, both
   wall-clock and CPU time of the calling thread (which excludes waiting for a core when the
   machine is shared).

Usage (from the repository root)::

    python benchmarks/ranker.py --candidates 1000 --runs 300
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np
import pyarrow as pa

SEED = 20260105


def synthetic_frame(spec, n: int, seed: int = SEED) -> pa.Table:
    """A frame with every column ``spec`` reads: ids, 12-value categoricals, log-normal numerics
    with 5 % nulls, 10 % true booleans, normal embeddings, positions 1..50."""
    from export.encoding import Boolean, Categorical, Embedding, Hashed, Numeric

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for f in spec.features:
        if isinstance(f, Hashed):
            cols[f.name] = rng.integers(0, 1_000_000, n)
        elif isinstance(f, Categorical):
            cols[f.name] = np.array([f"v{i}" for i in rng.integers(0, 12, n)], dtype=object)
        elif isinstance(f, Numeric):
            x = rng.lognormal(1.0, 1.0, n)
            cols[f.name] = pa.array(x, mask=rng.uniform(size=n) < 0.05)
        elif isinstance(f, Boolean):
            cols[f.name] = rng.uniform(size=n) < 0.1
        elif isinstance(f, Embedding):
            cols[f.name] = pa.FixedSizeListArray.from_arrays(rng.standard_normal(n * f.dim).astype(np.float32), f.dim)
    if spec.position is not None:
        cols[spec.position] = rng.integers(1, 51, n)
    return pa.table(cols)


def timings_ms(fn, runs: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall-clock, calling-thread CPU) milliseconds of ``runs`` calls. With one intra-op thread
    both torch and onnxruntime compute on the calling thread, so its CPU time excludes the time
    spent waiting for a core on a shared machine."""
    for _ in range(warmup):
        fn()
    wall, cpu = np.empty(runs), np.empty(runs)
    for i in range(runs):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn()
        cpu[i], wall[i] = (time.thread_time_ns() - c0) / 1e6, (time.perf_counter_ns() - t0) / 1e6
    return wall, cpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--data", help="Parquet sample of the training set to fit the encoder on")
    p.add_argument("--cross-experts", type=int, default=None, help="override RankerConfig.cross_experts")
    args = p.parse_args(argv)
    if args.runs < 200:
        p.error("--runs must be >= 200 for a meaningful p99")

    import onnxruntime as ort
    import pyarrow.parquet as pq
    import torch

    from export.encoding import FeatureEncoder, training_set_spec
    from export.onnx_ranker import (
        export_ranker,
        quantize_int8,
        run,
        scoring_module,
        session,
    )
    from models.calibration import Calibration, Platt
    from models.ranker import Ranker, RankerConfig

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    spec = training_set_spec()
    frame = pq.read_table(args.data) if args.data else synthetic_frame(spec, max(5 * args.candidates, 5000))
    train = frame.filter(pa.compute.equal(frame["split"], "train")) if "split" in frame.column_names else frame
    encoder = FeatureEncoder(spec).fit(train)
    raw = frame.slice(0, args.candidates)
    batch = encoder.transform(raw)
    config = RankerConfig() if args.cross_experts is None else RankerConfig(cross_experts=args.cross_experts)
    ranker = Ranker(encoder.cardinalities, len(encoder.dense_names), encoder.num_positions, config).eval()
    calibration = Calibration(ranker.tasks, tuple(Platt(1.0, 0.0) for _ in ranker.tasks), (1.0, 0.3))
    module = scoring_module(ranker, calibration)
    n_params = sum(p.numel() for p in ranker.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_ranker(ranker, calibration, os.path.join(tmp, "ranker.onnx"))
        int8 = quantize_int8(fp32, os.path.join(tmp, "ranker.int8.onnx"), sample=(batch.categorical, batch.dense))
        sizes = {k: os.path.getsize(v) for k, v in (("fp32", fp32), ("int8", int8))}
        import onnx

        int8_graph = onnx.load(int8)
        kept_fp32 = {p.key: p.value for p in int8_graph.metadata_props}["pinrec.int8_fp32_nodes"]
        n_int8 = sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in int8_graph.graph.node)
        s32, s8 = session(fp32, threads=1), session(int8, threads=1)
        cat, dense = torch.from_numpy(batch.categorical), torch.from_numpy(batch.dense)

        def eager():
            with torch.inference_mode():
                module(cat, dense)

        results = {
            "torch eager": timings_ms(eager, args.runs, args.warmup),
            "onnx fp32": timings_ms(lambda: run(s32, batch.categorical, batch.dense), args.runs, args.warmup),
            "onnx int8": timings_ms(lambda: run(s8, batch.categorical, batch.dense), args.runs, args.warmup),
            "encoder (numpy)": timings_ms(lambda: encoder.transform(raw), args.runs, args.warmup),
        }
        diff = np.abs(run(s32, batch.categorical, batch.dense)["score"] - run(s8, batch.categorical, batch.dense)["score"])

    eager_p50 = np.percentile(results["torch eager"][0], 50)
    print(f"ranker: {ranker!r}")
    print(f"params={n_params}  C={len(encoder.cardinalities)}  F={len(encoder.dense_names)}  "
          f"onnx fp32={sizes['fp32'] / 1e6:.2f} MB  int8={sizes['int8'] / 1e6:.2f} MB  "
          f"max |score fp32 - int8|={diff.max():.2e}")
    print(f"int8: {n_int8} integer MatMuls; kept in fp32: {kept_fp32 or '-'}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{args.candidates} candidates, {args.runs} runs, 1 thread\n")
    print("| variant | p50 (ms) | p99 (ms) | speed-up vs eager (p50) | CPU p50 (ms) | CPU p99 (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (wall, cpu) in results.items():
        p50 = np.percentile(wall, 50)
        ratio = "-" if name.startswith("encoder") else f"{eager_p50 / p50:.2f}x"
        print(f"| {name} | {p50:.3f} | {np.percentile(wall, 99):.3f} | {ratio} | "
              f"{np.percentile(cpu, 50):.3f} | {np.percentile(cpu, 99):.3f} |")
    p50 = np.percentile(results["onnx fp32"][0], 50)
    print(f"\ntargets (wall clock): ONNX fp32 p50 <= 2 ms: {'met' if p50 <= 2 else 'NOT met'} ({p50:.3f} ms); "
          f">= 3x eager: {'met' if eager_p50 / p50 >= 3 else 'NOT met'} ({eager_p50 / p50:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
