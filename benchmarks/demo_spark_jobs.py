"""Spark jobs and Delta commits per step of a fresh ``pinrec demo`` (they do not depend on load).

Usage: ``python benchmarks/demo_spark_jobs.py OUT [--profile] [pinrec demo options...]`` from the
repository root, ``OUT`` an absent folder: the demo runs with its landing zone, warehouse, artifacts
and MLflow database under ``OUT``, prints its ``[time]`` table, then one ``[jobs]`` line per step:
the Spark jobs started while the step ran (the DAG scheduler's next job id before and after) and the
Delta commit files added under ``OUT/warehouse`` meanwhile (a step run beside others counts theirs
too), how busy the machine's CPUs were while it ran (``/proc/stat``: 100 % = every core busy; a
step that leaves cores idle is one that work could run beside) and how many generated classes Janino
compiled meanwhile (Spark's ``CodegenMetrics``), then the run's totals, and the CPU seconds of all its processes
(this one, the driver JVM, Spark's Python workers; from ``/proc``). ``--profile`` writes a cProfile of the driver to
``OUT.prof``.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import glob
import os
import sys
import time


def tree_cpu() -> tuple[float, float]:
    """CPU seconds of this process and its live descendants (each with its waited-for children), and of
    the driver JVM among them; from /proc, so (0, 0) elsewhere."""
    tick, stats = os.sysconf("SC_CLK_TCK"), {}
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc/self") else []):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                comm, rest = f.read().rsplit(")", 1)
            fields = rest.split()  # ppid, then utime stime cutime cstime at 11..14
            stats[int(pid)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick, comm.endswith("(java"))

    def inside(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = stats.get(pid, (0, 0, False))[0]
        return False

    mine = [(cpu, java) for pid, (_, cpu, java) in stats.items() if inside(pid)]
    return sum(c for c, _ in mine), sum(c for c, java in mine if java)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other options are passed to `pinrec demo` (e.g. --set k=v).")
    parser.add_argument("out", help="an absent folder for the demo's landing, warehouse, artifacts and MLflow")
    parser.add_argument("--profile", action="store_true", help="write a cProfile of the driver to OUT.prof")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch's intra-op threads for the run (torch.set_num_threads; 0: torch's default)")
    opts, rest = parser.parse_known_args(argv)
    if opts.torch_threads:
        import torch

        torch.set_num_threads(opts.torch_threads)
    from pinrec.jobs.orchestration import demo
    from pinrec.jobs.orchestration.cli import main as cli

    out = opts.out
    profile = cProfile.Profile() if opts.profile else None
    counts: dict[str, list[int]] = {}

    def jobs() -> int:
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        return 0 if sc is None else int(sc._jsc.sc().dagScheduler().nextJobId())

    def cpu() -> tuple[int, int]:  # (busy, total) jiffies of all cores; (0, 0) where /proc/stat is absent
        try:
            with open("/proc/stat") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return 0, 0
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    def compiled() -> int:  # generated classes Janino compiled so far (one the codegen cache held is not counted)
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        return 0 if sc is None else \
            int(sc._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount())

    def commits() -> int:
        return len(glob.glob(f"{out}/warehouse/**/_delta_log/*.json", recursive=True))

    timed = demo.StepTimer.__call__

    @contextlib.contextmanager
    def counted(self, name):
        j, c, g, (b, t) = jobs(), commits(), compiled(), cpu()
        with timed(self, name):
            yield
        (b2, t2) = cpu()
        step = counts.setdefault(name, [0, 0, 0, 0, 0])
        step[0] += jobs() - j
        step[1] += commits() - c
        step[2] += b2 - b
        step[3] += t2 - t
        step[4] += compiled() - g

    demo.StepTimer.__call__ = counted
    args = ["demo", "--set", f"storage.landing={out}/landing", "--set", f"storage.warehouse={out}/warehouse",
            "--set", f"storage.artifacts={out}/artifacts",
            "--set", f"storage.mlflow_tracking_uri=sqlite:///{out}/mlflow.db", *rest]
    if profile:
        profile.enable()
    try:
        rc = cli(args)
    finally:
        if profile:
            profile.disable()
            profile.dump_stats(f"{out}.prof")
    print(f"[jobs] {'step':<26} {'spark jobs':>10} {'delta commits':>13} {'cpu busy':>8} {'compiled':>8}")
    for name, (j, c, b, t, g) in counts.items():
        print(f"[jobs] {name:<26} {j:>10} {c:>13} {100 * b / t if t else 0.0:7.0f}% {g:>8}")
    # the run's own totals: a step that ran beside others (the demo's [time] table says which) counted their
    # jobs and commits too, so the per-step numbers do not add up to these
    print(f"[jobs] {'total':<26} {jobs():>10} {commits():>13}")
    # CPU seconds each process used over the run: unlike the wall time, not stretched by a busy neighbour
    total, jvm = tree_cpu()
    print(f"[jobs] cpu seconds: all processes {total:.1f} (driver JVM {jvm:.1f}, Python driver {time.process_time():.1f})")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
