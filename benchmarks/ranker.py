"""Benchmark: score N ranker candidates on one CPU thread — torch eager vs ONNX fp32 vs ONNX int8.

One run of this script:

1. builds the encoder of the training set (:func:`pinrec.export.encoding.training_set_spec`) and fits
   it on a seeded synthetic frame of that schema (or on ``--data``, a Parquet sample of the
   training set), and encodes N candidates (default 1000);
2. builds a :class:`pinrec.models.ranker.Ranker` with the default :class:`RankerConfig` (random
   weights: speed does not depend on them), Platt calibration and the final score;
3. exports it (:func:`pinrec.export.build.onnx_ranker.export_ranker`) and quantises it to int8;
4. times ``--runs`` calls (after ``--warmup``) of each variant on the same batch with one thread
   (``torch.set_num_threads(1)``; onnxruntime ``intra_op_num_threads=1``), plus the numpy
   encoder on the raw N-row frame, and prints p50 / p99 and the speed-up over torch eager, both
   wall-clock and CPU time of the calling thread (which excludes waiting for a core when the
   machine is shared).

Why ONNX is (not) much faster than eager — two options, each adding tables after the default one:

* ``--width-scale 0.25,0.5,1,2``: for each factor s, the default :class:`RankerConfig` with
  ``deep_channels``, ``expert_channels`` and ``tower_channels`` times s (rounded, >= 1; embeddings
  and cross layers unchanged), random weights, exported to ONNX fp32, timed on the same batch:
  one row per s with parameters, multiply-adds per candidate (:func:`matmul_macs`, checked
  against ``torch.utils.flop_counter``), MFLOP per call, p50 wall and CPU of eager and ONNX fp32,
  the speed-up (wall, CPU), the achieved GFLOP/s of each (2 MACs N / CPU p50), and the CPU p50 of
  one ``torch.mm`` with the same FLOP (an (N, k) @ (k, k) GEMM, k = sqrt(MACs)): the time the
  multiply-adds take when issued as one large kernel.
* ``--profile``: ``--runs`` more calls of the default model under onnxruntime's profiler
  (``SessionOptions.enable_profiling``; the JSON trace is parsed, warm-up runs dropped) and under
  ``torch.profiler``, printing kernel time per call by ONNX op_type and self CPU time per call by
  aten op, and the share of matrix products in each (ONNX MatMul/Gemm/FusedMatMul/FusedGemm;
  aten::addmm/mm/matmul/bmm). With ``--width-scale`` the two shares are also columns of its table.
  The profiled calls are not the timed ones (profilers add per-op cost).

``--static-int8`` adds two rows to the default table: onnxruntime's *static* int8 quantisation
(``quantize_static``, activations' scales calibrated once on 3 batches of other rows (3N rows) instead of
measured per call; QOperator and QDQ formats, per-tensor, the same MatMuls as the dynamic int8).

With either option the script also prints the FLOP per call of the default model and the
achieved GFLOP/s (2 MACs N / p50, wall and CPU) of each variant of the default table.

Usage (from the repository root)::

    python benchmarks/ranker.py --candidates 1000 --runs 300
    python benchmarks/ranker.py --width-scale 0.25,0.5,1,2 --profile --runs 200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import pyarrow as pa

SEED = 20260105


def synthetic_frame(spec, n: int, seed: int = SEED) -> pa.Table:
    """A frame with every column ``spec`` reads: ids, 12-value categoricals, log-normal numerics
    with 5 % nulls, 10 % true booleans, normal embeddings, positions 1..50."""
    from pinrec.export.encoding import Boolean, Categorical, Embedding, Hashed, Numeric

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


def static_int8(fp32: str, dst: str, rows, fmt: str, batches: int = 3) -> str:
    """``onnxruntime.quantization.quantize_static`` of the MatMuls :func:`pinrec.export.build.onnx_ranker.quantize_int8`
    quantises (Gemms rewritten as MatMul + Add, batched MatMuls left in fp32), activation scales
    calibrated on ``rows`` (an EncodedBatch) in ``batches`` parts; ``fmt``: QOperator or QDQ."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from pinrec.export.build.onnx_ranker import _gemm_as_matmul

    model = onnx.load(fp32)
    skip = _gemm_as_matmul(model)
    staged = f"{dst}.staged.onnx"
    onnx.save(model, staged)
    parts = np.array_split(np.arange(len(rows.categorical)), batches)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feed = iter([{"categorical": rows.categorical[i], "dense": rows.dense[i]} for i in parts])

        def get_next(self):
            return next(self.feed, None)

    quantize_static(staged, dst, Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=skip,
                    op_types_to_quantize=["MatMul"])
    return dst


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


MATMUL_ONNX = ("MatMul", "Gemm", "FusedMatMul", "FusedGemm", "MatMulInteger", "DynamicQuantizeMatMul",
               "MatMulIntegerToFloat", "QGemm")
MATMUL_ATEN = ("aten::addmm", "aten::mm", "aten::matmul", "aten::bmm")


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.25,0.5,1,2"`` -> (0.25, 0.5, 1.0, 2.0); every factor must be > 0."""
    try:
        scales = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"--width-scale must be comma-separated numbers, got {text!r}") from None
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"--width-scale factors must be > 0, got {text!r}")
    return scales


def scaled_config(config, scale: float):
    """``config`` with deep, expert and tower channels times ``scale`` (rounded, >= 1)."""
    from dataclasses import replace

    def times(channels: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(c * scale)) for c in channels)

    return replace(config, deep_channels=times(config.deep_channels),
                   expert_channels=times(config.expert_channels), tower_channels=times(config.tower_channels))


def matmul_macs(ranker) -> int:
    """Multiply-adds per candidate of the position-free scoring path, from the weights: each
    weight matrix of a ``Linear``, ``GroupedLinear`` (G, D_in, D_out) and ``CrossNetMix`` (V, C, U)
    meets every candidate once (``weight.numel()`` MACs), plus MMoE's gate mixing, a (T, K) @ (K, H)
    product per candidate. Not counted: embedding gathers, biases, element-wise ops, the
    position tower (unused when scoring)."""
    from torch import nn

    from pinrec.models.dcn import CrossNetMix
    from pinrec.models.mmoe import GroupedLinear, MMoE

    position = {id(m) for m in ranker.position_tower.modules()}
    macs = 0
    for m in ranker.modules():
        if id(m) in position:
            continue
        if isinstance(m, (nn.Linear, GroupedLinear)):
            macs += m.weight.numel()
        elif isinstance(m, CrossNetMix):
            macs += m.V.numel() + m.C.numel() + m.U.numel()
        elif isinstance(m, MMoE):
            macs += m.num_tasks * m.num_experts * m.expert_channels[-1]
    return macs


def counted_macs(module, cat, dense) -> int:
    """MACs per candidate of one call of ``module`` as ``torch.utils.flop_counter`` counts them
    (matrix products only: FLOP / 2 / N)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(cat, dense)
    flop = counter.get_total_flops()
    if flop % (2 * len(cat)):
        raise RuntimeError(f"flop counter gave {flop} FLOP, not a multiple of 2 x {len(cat)} candidates")
    return flop // (2 * len(cat))


def ort_profile(path: str, inputs: dict, runs: int, warmup: int, prefix: str) -> tuple[dict[str, tuple[int, float]], float]:
    """Run an fp32 ONNX model ``warmup + runs`` times on one thread under onnxruntime's profiler
    and parse its JSON trace: ({op_type: (kernels, µs) per run}, model_run µs per run) over the
    last ``runs`` runs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling, opts.profile_file_prefix = True, prefix
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(warmup + runs):
        sess.run(None, inputs)
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    if len(model_runs) != warmup + runs:
        raise RuntimeError(f"onnxruntime trace holds {len(model_runs)} model_run events, expected {warmup + runs}")
    start = model_runs[warmup]["ts"]
    ops: dict[str, list] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            acc = ops.setdefault(e["args"]["op_name"], [0, 0.0])
            acc[0] += 1
            acc[1] += e["dur"]
    per_run = {op: (n // runs, us / runs) for op, (n, us) in ops.items()}
    return per_run, sum(e["dur"] for e in model_runs[warmup:]) / runs


def torch_profile(fn, runs: int, warmup: int) -> dict[str, tuple[int, float]]:
    """``torch.profiler`` over ``runs`` calls of ``fn`` (after ``warmup``): {aten op: (calls, self
    CPU µs) per call}."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fn()
    return {e.key: (e.count // runs, e.self_cpu_time_total / runs) for e in prof.key_averages()}


def matmul_share(ops: dict[str, tuple[int, float]], names: tuple[str, ...]) -> float:
    total = sum(us for _, us in ops.values())
    return sum(us for op, (_, us) in ops.items() if op in names) / total


def print_ops(title: str, ops: dict[str, tuple[int, float]], names: tuple[str, ...], top: int = 10) -> None:
    total = sum(us for _, us in ops.values())
    mm = sum(us for op, (_, us) in ops.items() if op in names)
    print(f"\n{title}: {sum(n for n, _ in ops.values())} ops per call, {total / 1e3:.3f} ms per call; "
          f"matrix products {mm / 1e3:.3f} ms ({100 * mm / total:.1f} %), rest {(total - mm) / 1e3:.3f} ms "
          f"({100 * (total - mm) / total:.1f} %)\n")
    print("| op | per call | µs per call | share |")
    print("|---|---:|---:|---:|")
    ranked = sorted(ops.items(), key=lambda kv: -kv[1][1])
    for op, (n, us) in ranked[:top]:
        print(f"| {op}{' (matrix product)' if op in names else ''} | {n} | {us:.1f} | {100 * us / total:.1f} % |")
    if len(ranked) > top:
        rest = ranked[top:]
        print(f"| {len(rest)} other ops | {sum(n for _, (n, _) in rest)} | {sum(us for _, (_, us) in rest):.1f} | "
              f"{100 * sum(us for _, (_, us) in rest) / total:.1f} % |")


def one_mm_gflops(macs: int, n: int, runs: int, warmup: int) -> float:
    """GFLOP/s (CPU p50) of one ``torch.mm`` (n, k) @ (k, k), k = round(sqrt(macs)): about the
    same FLOP as ``macs`` multiply-adds per candidate, issued as a single large kernel."""
    import torch

    k = max(1, round(macs ** 0.5))
    a, b = torch.randn(n, k), torch.randn(k, k)

    def mm():
        with torch.inference_mode():
            torch.mm(a, b)

    return 2 * n * k * k / np.percentile(timings_ms(mm, runs, warmup)[1], 50) / 1e6


def bench_scale(config, encoder, batch, runs: int, warmup: int, tmp: str, profile: bool) -> dict:
    """Time torch eager and ONNX fp32 of a random-weight :class:`Ranker` with ``config`` on
    ``batch``, plus one ``torch.mm`` with the same FLOP; with ``profile``, the share of matrix
    products in each runtime."""
    import torch

    from pinrec.export.build.onnx_ranker import (
        export_ranker,
        run,
        scoring_module,
        session,
    )
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.ranker import Ranker

    torch.manual_seed(SEED)
    ranker = Ranker(encoder.cardinalities, len(encoder.dense_names), encoder.num_positions, config).eval()
    calibration = Calibration(ranker.tasks, tuple(Platt(1.0, 0.0) for _ in ranker.tasks), (1.0, 0.3))
    module = scoring_module(ranker, calibration)
    cat, dense = torch.from_numpy(batch.categorical), torch.from_numpy(batch.dense)
    macs = matmul_macs(ranker)
    if (counted := counted_macs(module, cat, dense)) != macs:
        raise RuntimeError(f"MACs from the weights ({macs}) differ from torch's flop counter ({counted}) for {config}")
    path = export_ranker(ranker, calibration, os.path.join(tmp, f"ranker_{len(os.listdir(tmp))}.onnx"))
    s32 = session(path, threads=1)

    def eager():
        with torch.inference_mode():
            module(cat, dense)

    row = {"params": sum(p.numel() for p in ranker.parameters()), "macs": macs,
           "eager": timings_ms(eager, runs, warmup),
           "onnx": timings_ms(lambda: run(s32, batch.categorical, batch.dense), runs, warmup),
           "mm_gflops": one_mm_gflops(macs, len(cat), runs, warmup)}
    if profile:
        row["eager_mm"] = matmul_share(torch_profile(eager, runs, warmup), MATMUL_ATEN)
        inputs = {"categorical": batch.categorical, "dense": batch.dense}
        row["onnx_mm"] = matmul_share(ort_profile(path, inputs, runs, warmup, os.path.join(tmp, "ort"))[0], MATMUL_ONNX)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--data", help="Parquet sample of the training set to fit the encoder on")
    p.add_argument("--cross-experts", type=int, default=None, help="override RankerConfig.cross_experts")
    p.add_argument("--width-scale", default=None,
                   help="comma list of factors for deep/expert/tower channels, e.g. 0.25,0.5,1,2: one table row each")
    p.add_argument("--static-int8", action="store_true",
                   help="also time static int8 quantisation (QOperator and QDQ), calibrated on other rows")
    p.add_argument("--profile", action="store_true",
                   help="profile ONNX fp32 (onnxruntime profiler) and eager (torch.profiler): share of matrix products")
    args = p.parse_args(argv)
    if args.runs < 200:
        p.error("--runs must be >= 200 for a meaningful p99")
    try:
        scales = parse_scales(args.width_scale) if args.width_scale is not None else ()
    except ValueError as e:
        p.error(str(e))

    import onnxruntime as ort
    import pyarrow.parquet as pq
    import torch

    from pinrec.export.build.onnx_ranker import (
        export_ranker,
        quantize_int8,
        run,
        scoring_module,
        session,
    )
    from pinrec.export.encoding import FeatureEncoder, training_set_spec
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.ranker import Ranker, RankerConfig

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
        if args.static_int8:
            calibration_rows = encoder.transform(frame.slice(args.candidates, 3 * args.candidates))  # (offset, length)
            if len(calibration_rows.categorical) < 100:
                p.error(f"--static-int8 calibrates on the rows after the first {args.candidates}: the frame has "
                        f"{frame.num_rows} rows, fewer than {args.candidates + 100}")
            ref = run(s32, batch.categorical, batch.dense)
            for fmt in ("QOperator", "QDQ"):
                path = static_int8(fp32, os.path.join(tmp, f"ranker.static.{fmt}.onnx"), calibration_rows, fmt)
                sess = session(path, threads=1)
                got = run(sess, batch.categorical, batch.dense)
                print(f"static int8 {fmt}: max |output - fp32| {max(np.abs(got[k] - ref[k]).max() for k in ref):.2e}")
                results[f"onnx int8 static ({fmt})"] = timings_ms(lambda s=sess: run(s, batch.categorical, batch.dense),
                                                                  args.runs, args.warmup)
        diff = np.abs(run(s32, batch.categorical, batch.dense)["score"] - run(s8, batch.categorical, batch.dense)["score"])
        if scales or args.profile:
            macs = matmul_macs(ranker)
            if (counted := counted_macs(module, cat, dense)) != macs:
                raise RuntimeError(f"MACs from the weights ({macs}) differ from torch's flop counter ({counted})")
        if args.profile:
            inputs = {"categorical": batch.categorical, "dense": batch.dense}
            ort_ops, ort_run_us = ort_profile(fp32, inputs, args.runs, args.warmup, os.path.join(tmp, "ort"))
            eager_ops = torch_profile(eager, args.runs, args.warmup)
            mm_gflops = one_mm_gflops(macs, args.candidates, args.runs, args.warmup)
        rows = {s: bench_scale(scaled_config(config, s), encoder, batch, args.runs, args.warmup, tmp, args.profile)
                for s in scales}

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
    if not (scales or args.profile):
        return 0

    flop = 2 * macs * args.candidates
    print(f"\nthroughput: {macs} multiply-adds per candidate (matrix products, from the weights = torch flop "
          f"counter), {flop / 1e6:.1f} MFLOP per call\n")
    print("| variant | GFLOP/s (wall p50) | GFLOP/s (CPU p50) |")
    print("|---|---:|---:|")
    for name in ("torch eager", "onnx fp32", "onnx int8"):
        wall, cpu = results[name]
        print(f"| {name} | {flop / np.percentile(wall, 50) / 1e6:.1f} | {flop / np.percentile(cpu, 50) / 1e6:.1f} |")

    if args.profile:
        kernels = sum(us for _, us in ort_ops.values())
        print(f"\nprofile of ONNX fp32 ({args.runs} profiled runs after {args.warmup} warm-up): model_run "
              f"{ort_run_us / 1e3:.3f} ms per call, of which kernels {kernels / 1e3:.3f} ms "
              f"({100 * kernels / ort_run_us:.1f} %)")
        print_ops("onnx fp32 kernel time by op_type", ort_ops, MATMUL_ONNX)
        print_ops("torch eager self CPU time by aten op (torch.profiler)", eager_ops, MATMUL_ATEN, top=14)
        mm = {"eager": sum(us for op, (_, us) in eager_ops.items() if op in MATMUL_ATEN),
              "onnx": sum(us for op, (_, us) in ort_ops.items() if op in MATMUL_ONNX)}
        cpu50 = {k: np.percentile(results[v][1], 50) * 1e3 for k, v in (("eager", "torch eager"), ("onnx", "onnx fp32"))}
        print(f"\nbound: eager CPU p50 {cpu50['eager']:.0f} µs / ONNX matrix-product kernel time {mm['onnx']:.0f} µs "
              f"= {cpu50['eager'] / mm['onnx']:.2f}x is the speed-up ONNX would reach with zero time outside its "
              f"MatMul/Gemm kernels; eager matrix products alone {mm['eager']:.0f} µs per call (profiled)")
        ideal = flop / mm_gflops / 1e3
        print(f"roof: one torch.mm of the same FLOP runs at {mm_gflops:.1f} GFLOP/s (CPU p50); all {flop / 1e6:.1f} MFLOP "
              f"at that rate take {ideal:.0f} µs: eager CPU p50 / that = {cpu50['eager'] / ideal:.2f}x")

    if scales:
        print(f"\nwidth scale: deep/expert/tower channels x s (embeddings, cross layers unchanged); random weights; "
              f"{args.candidates} candidates, {args.runs} runs, 1 thread; load average {os.getloadavg()[0]:.2f}\n")
        head = ("| s | deep | expert | tower | params | MACs/cand | MFLOP/call | eager p50 (ms) | eager CPU p50 (ms) "
                "| onnx p50 (ms) | onnx CPU p50 (ms) | speed-up wall | speed-up CPU | eager GFLOP/s (CPU) "
                "| onnx GFLOP/s (CPU) | 1 mm GFLOP/s (CPU) |")
        if args.profile:
            head += " eager matmul share | onnx matmul share |"
        print(head)
        print("|" + "---:|" * (head.count("|") - 1))
        for s, row in rows.items():
            c = scaled_config(config, s)
            flop = 2 * row["macs"] * args.candidates
            (ew, ec), (ow, oc) = (tuple(np.percentile(t, 50) for t in row[k]) for k in ("eager", "onnx"))
            line = (f"| {s:g} | {c.deep_channels} | {c.expert_channels} | {c.tower_channels} | {row['params']} "
                    f"| {row['macs']} | {flop / 1e6:.1f} | {ew:.3f} | {ec:.3f} | {ow:.3f} | {oc:.3f} | {ew / ow:.2f}x "
                    f"| {ec / oc:.2f}x | {flop / ec / 1e6:.1f} | {flop / oc / 1e6:.1f} | {row['mm_gflops']:.1f} |")
            if args.profile:
                line += f" {100 * row['eager_mm']:.1f} % | {100 * row['onnx_mm']:.1f} % |"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
