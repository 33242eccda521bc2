"""Benchmark: pinrec's FAISS index build vs exact search vs autofaiss, at one memory budget.

For each corpus size N x d, one run of this script:

1. generates (numpy, seeded) N clustered, L2-normalised vectors (a Gaussian mixture with
   Dirichlet-weighted clusters around random unit centres), ``--queries`` held-out queries for
   pinrec's tuning, and as many *test* queries from the same mixture that no system sees while
   building; exact top-k of the test queries (inner product) is the ground truth;
2. builds, each in its own subprocess (this file, ``--_worker``), so that peak RSS and thread
   settings are its own:
   a. ``pinrec``: :func:`pinrec.export.build.ann_build.build_index` (metric ``ip``, the memory budget, target
      recall), then :meth:`pinrec.export.serving.shards.ShardedIndex.open` on the written folder (mmap);
   b. ``flat``: exact ``IndexFlatIP`` (build = add);
   c. ``autofaiss`` (with ``--autofaiss-python``, the interpreter of a separate environment:
      autofaiss 2.18 needs faiss-cpu 1.8.0, numpy < 2, pyarrow < 17):
      ``autofaiss.build_index(..., max_index_memory_usage=budget, metric_type="ip")``;
3. measures every index with the same code on the test queries: recall@k, batch QPS at one
   thread and at all threads, p50/p99 of single-query latency at one thread, serialised index
   size, build wall and CPU seconds (CPU time stays honest when other processes share the
   cores) and the worker's peak RSS; prints one markdown table per size.

Usage (from the repository root)::

    python benchmarks/ann.py --quick
    python benchmarks/ann.py --sizes 1000000x64,200000x128 --autofaiss-python /tmp/autofaiss-venv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 20260105


def make_data(n: int, d: int, n_queries: int, seed: int = SEED):
    """(x (n, d), ids (n,), tune queries (Q, d), test queries (Q, d)); float32, unit rows."""
    rng = np.random.default_rng(seed)
    clusters = max(32, n // 1000)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(clusters, 0.5))

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, d), np.float32)
        for start in range(0, m, 100_000):
            stop = min(m, start + 100_000)
            c = rng.choice(clusters, stop - start, p=weights)
            v = centres[c] + rng.standard_normal((stop - start, d)).astype(np.float32) * (0.6 / np.sqrt(d))
            out[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    x = draw(n)
    ids = rng.permutation(np.int64(20) * n)[:n].astype(np.int64)
    return x, ids, draw(n_queries), draw(n_queries)


def best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock runs of ``fn()`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(search, queries: np.ndarray, truth: np.ndarray, k: int, single: int = 300, repeats: int = 3) -> dict:
    """recall@k, batch QPS at 1 and all threads, p50/p99 single-query ms (1 thread) of ``search``;
    every timing is the best of ``repeats`` runs (per query for the percentiles), as in
    :func:`pinrec.export.build.index_tuning.measure_latency`."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        search(queries[:1], k)
        times = np.full(min(single, queries.shape[0]), np.inf)
        for _ in range(repeats):
            for i in range(times.size):
                t0 = time.perf_counter()
                search(queries[i : i + 1], k)
                times[i] = min(times[i], time.perf_counter() - t0)
        _, found = search(queries, k)
        qps_1 = queries.shape[0] / best_time(lambda: search(queries, k), repeats)
    finally:
        faiss.omp_set_num_threads(threads)
    qps_all = queries.shape[0] / best_time(lambda: search(queries, k), repeats)
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found[:, :k], truth))
    p50, p99 = np.percentile(times * 1e3, [50, 99])
    return {"recall": hits / truth.size, "qps_1": qps_1, "qps_all": qps_all, "p50_ms": float(p50),
            "p99_ms": float(p99), "threads": threads}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process used so far: unlike wall time, it
    does not grow when other processes share the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- workers (one process each) ----------------------------------------------------------------


def worker(system: str, data: Path, budget_mb: float, target: float, k: int, shards: int) -> dict:
    x = np.load(data / "x.npy")
    ids = np.load(data / "ids.npy")
    test, truth = np.load(data / "test.npy"), np.load(data / "truth.npy")
    if system == "pinrec":
        from pinrec.export.build.ann_build import build_index
        from pinrec.export.index_choice import IndexConfig
        from pinrec.export.serving.shards import ShardedIndex

        cfg = IndexConfig(metric="ip", k=k, target_recall=target, memory_budget_mb=budget_mb, shards=shards)
        c0, t0 = cpu_s(), time.perf_counter()
        report = build_index(x, ids, np.load(data / "tune.npy"), cfg, data / "pinrec-index")
        build_s, build_cpu = time.perf_counter() - t0, cpu_s() - c0
        index = ShardedIndex.open(data / "pinrec-index")
        out = measure(index.search, test, truth, k)
        params = ",".join(f"{a}={b}" for a, b in report.search_params.items())
        out |= {"index": f"{report.factory} {params}".strip(), "bytes": report.memory_bytes,
                "candidates": [(c["factory"], c["recall_at_k"], c["latency"]["p50_ms"], c["build_seconds"])
                               for c in report.manifest["candidates"]]}
    elif system == "flat":
        c0, t0 = cpu_s(), time.perf_counter()
        flat = faiss.IndexIDMap(faiss.IndexFlatIP(x.shape[1]))
        flat.add_with_ids(x, ids)
        build_s, build_cpu = time.perf_counter() - t0, cpu_s() - c0
        out = measure(flat.search, test, truth, k) | {"index": "IDMap,Flat", "bytes": x.nbytes + ids.nbytes}
    elif system == "autofaiss":
        import logging

        from autofaiss import build_index as autofaiss_build

        c0, t0 = cpu_s(), time.perf_counter()
        index, infos = autofaiss_build(embeddings=x, save_on_disk=False, max_index_memory_usage=f"{int(budget_mb)}MB",
                                       current_memory_available="8G", metric_type="ip",
                                       min_nearest_neighbors_to_retrieve=k, verbose=logging.WARNING)
        build_s, build_cpu = time.perf_counter() - t0, cpu_s() - c0
        rows = ids  # autofaiss numbers rows 0..N-1: map them to pin ids

        def search(q, kk):
            dist, idx = index.search(q, kk)
            return dist, np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)

        out = measure(search, test, truth, k) | {"index": f"{infos.get('index_key')} {infos.get('index_param')}",
                                                   "bytes": int(faiss.serialize_index(index).nbytes)}
    else:
        raise ValueError(f"unknown system {system!r}")
    return out | {"build_s": build_s, "build_cpu_s": build_cpu, "peak_rss_mb": peak_rss_mb()}


def run_worker(python: str, system: str, data: Path, args) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--_worker", system, "--_data", str(data),
           "--budget-mb", str(args.budget_mb), "--target", str(args.target), "--k", str(args.k),
           "--shards", str(args.shards)]
    env = dict(os.environ)
    try:
        run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout_s} s"}
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        return {"error": (run.stderr or run.stdout)[-600:]}
    return json.loads(lines[-1][7:])


def table(size: str, results: dict[str, dict]) -> str:
    head = ("| system | index | build s | build CPU s | recall@10 | QPS 1 thread | QPS all threads | p50 ms "
            "| p99 ms | index MB | peak RSS MB |")
    rows = [f"### {size}", "", head, "|" + "---|" * 11]
    for system, r in results.items():
        if "error" in r:
            rows.append(f"| {system} | error: {r['error'].splitlines()[-1] if r['error'] else ''} |" + " |" * 9)
            continue
        rows.append(f"| {system} | {r['index']} | {r['build_s']:.1f} | {r['build_cpu_s']:.1f} | {r['recall']:.3f} | "
                    f"{r['qps_1']:.0f} | "
                    f"{r['qps_all']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['bytes'] / 2**20:.1f} | "
                    f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000000x64,200000x128", help="comma-separated NxD")
    p.add_argument("--quick", action="store_true", help="one small size (20000x32, 400 queries): a smoke test")
    p.add_argument("--queries", type=int, default=1000, help="tuning queries, and as many test queries")
    p.add_argument("--budget-mb", type=float, default=200.0)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--systems", default="pinrec,flat,autofaiss")
    p.add_argument("--autofaiss-python", default=None, help="python of an environment with autofaiss 2.18")
    p.add_argument("--timeout-s", type=int, default=3600)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_data", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._worker:
        result = worker(args._worker, Path(args._data), args.budget_mb, args.target, args.k, args.shards)
        print("RESULT " + json.dumps(result))
        return 0
    sizes = ["20000x32"] if args.quick else args.sizes.split(",")
    n_queries = 400 if args.quick else args.queries
    systems = [s for s in args.systems.split(",") if s != "autofaiss" or args.autofaiss_python]
    print(f"faiss {faiss.__version__}, {os.cpu_count()} cores, budget {args.budget_mb:g} MB, "
          f"target recall@{args.k} {args.target}, shards {args.shards}, systems {systems}")
    everything = {}
    for size in sizes:
        n, d = (int(float(v)) for v in size.lower().split("x"))
        with tempfile.TemporaryDirectory(prefix="pinrec-ann-") as tmp:
            data = Path(tmp)
            x, ids, tune, test = make_data(n, d, n_queries)
            _, idx = faiss.knn(test, x, args.k, metric=faiss.METRIC_INNER_PRODUCT)
            for name, arr in (("x", x), ("ids", ids), ("tune", tune), ("test", test), ("truth", ids[idx])):
                np.save(data / f"{name}.npy", arr)
            del x
            results = {}
            for system in systems:
                python = args.autofaiss_python if system == "autofaiss" else sys.executable
                results[system] = run_worker(python, system, data, args)
                print(f"  {size} {system}: {json.dumps(results[system])[:400]}", flush=True)
        everything[size] = results
        print(table(size, results) + "\n", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
