"""DDGAN's discriminator against chance over a training run, from its Lightning log.

At chance D outputs 1/2 on real and fake pairs alike and its loss is 2 ln 2 = 1.386; below it, D tells them apart
and G gets a signal. Prints the loss per window of iterations and the share of logged iterations within 0.02 of
chance.

    python benchmarks/ddgan_d_margin.py ~/.cache/trilemma-bench/checkpoints/digits/logs/ddgan-T4-digits/version_1
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

CHANCE = 2 * math.log(2)


def margin_table(metrics: pd.DataFrame, every: int, window: int = 500) -> tuple[pd.DataFrame, float]:
    d = metrics.dropna(subset=["train/d_loss"]).reset_index(drop=True)
    it = d.index * every
    table = d.assign(iterations=(it // window) * window).groupby("iterations")["train/d_loss"].agg(["mean", "min", "max"])
    table["margin below chance"] = CHANCE - table["mean"]
    return table, float(((d["train/d_loss"] - CHANCE).abs() < 0.02).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log_dir", type=Path, help="the run's Lightning CSV log folder (holds metrics.csv)")
    p.add_argument("--every", type=int, default=10, help="iterations between logged rows (the trainer's log_every)")
    args = p.parse_args()
    table, share = margin_table(pd.read_csv(args.log_dir / "metrics.csv"), args.every)
    print(table.round(3).to_string())
    print(f"share of logged iterations within 0.02 of chance ({CHANCE:.3f}): {share:.3f}")


if __name__ == "__main__":
    main()
