"""Solver against schedule on the shipped digits DDPM: every solver of the package on every schedule, at 10 network
calls (Heun, which makes 2N - 1, at 9 and 11), 3 seeds, 2,000 samples, in one process: one timing run, its
cells sequential (``timing_run="solvers"``).

    .venv/bin/python benchmarks/study_solver_schedule.py --results results/solvers --threads 1

Each pair is ``bench --method ddim --solver S --schedule K``; the four pairs the built-in methods declare are
benched the same way, so all sixteen share one code path and one run. ``trilemma-bench report --results
results/solvers`` then draws the "Solver and schedule apart" table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import trilemma_bench as tb
from trilemma_bench.solver_schedule import SCHEDULES, SOLVERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/local/solvers"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--nfe", type=int, default=10)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for solver in SOLVERS:
        nfes = [args.nfe - 1, args.nfe + 1] if solver == "heun" else [args.nfe]
        for schedule in SCHEDULES:
            tb.bench("ddim", solver=solver, schedule=schedule, nfe=nfes, seeds=seeds, threads=args.threads,
                     results=args.results, preset="digits", bpd_images=0, timing_run="solvers")


if __name__ == "__main__":
    main()
