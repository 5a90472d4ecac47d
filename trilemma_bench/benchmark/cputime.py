"""CPU time that can be compared across runs: each cell's process CPU time per image, divided by the CPU
time of a fixed reference workload timed in the same run.

A machine (or a neighbour sharing its cache and memory bus) that is uniformly slower slows the
reference too, so the ratio stays; a sampler loop that became slower moves its cells' ratios alone.
The reference is plain torch (a float32 matmul chain and an MLP forward at the smoke network's size),
not the project's own network, so a change to the project's code cannot slow the yardstick with it.
"""

from __future__ import annotations

import statistics
import time

import pandas as pd
import torch
from torch import nn

from .verdict import Check

FACTOR = 2.0  # a cell fails when its normalised CPU time exceeds the baseline's by more than this
REPEATS = 15
COLUMN = "reference_cpu_ms"  # the reference's CPU time, recorded in every row of the run it was timed in
CELL = ["method", "sampler", "nfe_requested"]


def _workload() -> object:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=g) / 16  # 1/sqrt(256): powers of a stay of order one
    x = torch.randn(500, 2, generator=g)  # the smoke regression's batch of 2-D points
    mlp = nn.Sequential(nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(),
                        nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))

    @torch.no_grad()
    def run() -> None:
        b = a
        for _ in range(8):
            b = a @ b
        for _ in range(20):
            mlp(x)

    return run


def reference_ms(repeats: int = REPEATS) -> float:
    """Median process CPU time (ms) of the reference workload over ``repeats`` runs, after one warm-up."""
    run = _workload()
    run()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        run()
        times.append((time.process_time() - c0) * 1000.0)
    return statistics.median(times)


def normalised(table: pd.DataFrame) -> pd.Series:
    """Per cell: the median over seeds of CPU ms per image divided by the run's reference CPU ms."""
    rows = table[table[COLUMN].notna() & table["cpu_ms_per_image"].notna()]
    return (rows["cpu_ms_per_image"] / rows[COLUMN]).groupby([rows[c] for c in CELL]).median()


def compare(baseline: pd.DataFrame, now: pd.DataFrame, factor: float = FACTOR) -> list[Check]:
    """One check per cell timed in both: normalised CPU time at most ``factor`` x the baseline's."""
    if COLUMN not in baseline or COLUMN not in now:
        return [Check("cpu time", "reference", 1, 0, f"no {COLUMN} column: re-make the baseline with --update", False)]
    both = pd.concat({"baseline": normalised(baseline), "now": normalised(now)}, axis=1).dropna()
    return [
        Check(f"{method} NFE {nfe}", "cpu/ref", r.baseline, r.now, f"at most x{factor:g}", bool(r.now <= factor * r.baseline))
        for (method, _, nfe), r in both.iterrows()
    ]
