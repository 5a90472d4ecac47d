"""Speed and peak memory of our chunked ``prdc`` against the reference ``prdc.compute_prdc``.

    .venv/bin/python benchmarks/bench_prdc.py                 # 10k and 20k, dim 64
    .venv/bin/python benchmarks/bench_prdc.py --dim 2048 --include-50k

Every measurement runs in a fresh subprocess, so one implementation's peak cannot hide in the other's:
the worker builds the features (fixed seed, same bytes for both), warms up on a small problem, records
its resident set, resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``), runs the
metric once, and reports ``VmHWM - VmRSS_before``: the peak RSS growth caused by the metric, numpy and
torch allocations alike. Wall time is ``perf_counter``; CPU time (``process_time``, all threads) is
printed beside it because the machine may be shared. Results go to ``benchmarks/results/bench_prdc.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_prdc.json"
KEYS = ("precision", "recall", "density", "coverage")


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _features(n: int, dim: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, dim), dtype=np.float32)
    # A shifted copy: overlapping enough that no metric is 0 or 1, in 64 or 2048 dimensions.
    fake = rng.standard_normal((n, dim), dtype=np.float32) + np.float32(0.1)
    return real, fake


def _worker(impl: str, n: int, dim: int, k: int, seed: int) -> dict:
    """Runs in its own process: one measurement of one implementation, printed as JSON."""
    import numpy as np
    import torch

    if impl == "ours":
        from trilemma_bench.metrics import prdc

        def run(real: np.ndarray, fake: np.ndarray) -> dict:
            return prdc(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    else:
        from prdc import compute_prdc

        def run(real: np.ndarray, fake: np.ndarray) -> dict:
            with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
                return compute_prdc(real, fake, nearest_k=k)

    run(*_features(500, dim, seed + 1))  # warm-up: lazy initialisation, thread pools, first-touch pages
    real, fake = _features(n, dim, seed)
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    wall, cpu = time.perf_counter(), time.process_time()
    out = run(real, fake)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kib("VmHWM")
    return {
        "impl": impl,
        "n": n,
        "dim": dim,
        "k": k,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_growth_mib": (peak - before) / 1024,
        "rss_before_mib": before / 1024,
        "metrics": {key: float(out[key]) for key in KEYS},
    }


def _measure(impl: str, n: int, dim: int, k: int, seed: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        impl,
        "--n",
        str(n),
        "--dim",
        str(dim),
        "--k",
        str(k),
        "--seed",
        str(seed),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} at n={n} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import numpy as np
    import torch

    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    blas = []
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        blas = [f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info()]
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": np.__version__,
        "numpy_thread_pools": blas,
        "python": platform.python_version(),
        "reference_prdc_n_jobs": 8,  # hard-coded in prdc 0.2's sklearn call
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000])
    parser.add_argument("--include-50k", action="store_true", help="also run ours alone on 50k x 50k")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=["ours", "prdc"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(_worker(args.worker, args.n, args.dim, args.k, args.seed)))
        return

    machine = _machine()
    print("machine:", ", ".join(f"{key}={value}" for key, value in machine.items()))
    print(
        "memory: peak RSS growth during the call (VmHWM reset via /proc/self/clear_refs), one subprocess each"
    )
    print(f"features: N x {args.dim} float32, k={args.k}, seed={args.seed}\n")
    header = f"{'n':>7} {'impl':>5} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}  metrics"
    print(header)
    rows, comparisons = [], []
    plan = [(n, impl) for n in args.sizes for impl in ("ours", "prdc")]
    plan += [(50_000, "ours")] if args.include_50k else []
    for n, impl in plan:
        row = _measure(impl, n, args.dim, args.k, args.seed)
        rows.append(row)
        metrics = " ".join(f"{key[:4]}={row['metrics'][key]:.4f}" for key in KEYS)
        print(
            f"{n:>7} {impl:>5} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} "
            f"{row['peak_rss_growth_mib']:>9.0f}  {metrics}",
            flush=True,
        )
    for n in args.sizes:
        ours, ref = (next(r for r in rows if r["n"] == n and r["impl"] == impl) for impl in ("ours", "prdc"))
        comparisons.append(
            {
                "n": n,
                "speedup_wall": ref["wall_s"] / ours["wall_s"],
                "speedup_cpu": ref["cpu_s"] / ours["cpu_s"],
                "memory_fraction": ours["peak_rss_growth_mib"] / ref["peak_rss_growth_mib"],
                "max_metric_difference": max(abs(ours["metrics"][key] - ref["metrics"][key]) for key in KEYS),
            }
        )
    print()
    for c in comparisons:
        print(
            f"n={c['n']}: ours is {c['speedup_wall']:.1f}x faster "
            f"(wall; {c['speedup_cpu']:.1f}x in CPU time), "
            f"uses {c['memory_fraction']:.3f} of prdc's peak memory; "
            f"largest metric difference {c['max_metric_difference']:.1e}"
        )
    machine["load_average_at_end"] = os.getloadavg()
    print("load average at start / end:", machine["load_average_at_start"], machine["load_average_at_end"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(sys.argv),
        "machine": machine,
        "rows": rows,
        "comparisons": comparisons,
        "memory_method": "VmHWM - VmRSS after reset through /proc/self/clear_refs, fresh process per row",
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
