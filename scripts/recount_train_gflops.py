"""Recount ``train_gflops`` of committed rows as a bench now counts it (trilemma_bench/benchmark/compute.py).

    .venv/bin/python scripts/recount_train_gflops.py results/results.csv results/curves/results.csv ...

For rows benched before a model's count changed (2026-12-07: latent models' encoder passes and autoencoder
training, DDGAN's discriminator). Only that column changes; quality and time columns are the bench's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from trilemma_bench.benchmark.compute import recount
from trilemma_bench.presets import PRESETS


def main(paths: list[str]) -> None:
    for path in map(Path, paths):
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        numeric = rows.replace("", float("nan"))
        for col in ("train_steps", "gflops_per_image", "nfe", "train_gflops"):
            numeric[col] = pd.to_numeric(numeric[col], errors="coerce")
        counted = recount(numeric, PRESETS)["train_gflops"]
        old = numeric["train_gflops"]
        changed = counted.notna() & (old.isna() | ((counted - old).abs() > 1e-9 * old.abs()))  # not float noise
        rows.loc[changed, "train_gflops"] = counted[changed].map(repr)
        rows.to_csv(path, index=False, lineterminator="\n")
        print(f"{path}: {int(changed.sum())} of {len(rows)} rows recounted")


if __name__ == "__main__":
    main(sys.argv[1:])
