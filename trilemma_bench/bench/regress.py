"""CI regression on the ``smoke`` preset: re-run the cells of a committed baseline and compare.

    python -m trilemma_bench.bench.regress            # (make regress) exit 1 on a regression
    python -m trilemma_bench.bench.regress --update   # re-make benchmarks/baseline/smoke.csv

The run trains (or reuses) the smoke checkpoint, benches every (method, NFE, seed) of the baseline into
a temporary results folder, then checks each (method, NFE) over its seeds:

- NFE: the counted network calls must equal the baseline's, exactly;
- FID must not rise, nor coverage fall, beyond the tolerance below.

Tolerance. With a fixed checkpoint the run is deterministic (same noise, same generators), so any
change is either the code or a retrained checkpoint: CI trains the smoke model from scratch, and
float rounding differs with the machine's BLAS and thread count, so a fresh checkpoint differs from
the one the baseline was made with. The scale of "noise" is taken from the baseline itself: sigma, the
sample standard deviation over its 3 seeds of the per-seed metric. A cell fails when

    mean_now - mean_baseline > max(TOL_SIGMAS * sigma, TOL_REL * mean_baseline, TOL_ABS)   (FID)
    mean_baseline - mean_now > max(TOL_SIGMAS * sigma, TOL_REL * mean_baseline, TOL_ABS)   (coverage)

TOL_SIGMAS = 4: the difference of two 3-seed means drawn with the same spread has standard deviation
sigma * sqrt(2/3) = 0.82 sigma, so 4 sigma is ~5 standard deviations of the null: no false alarm from
sampling noise. The relative floor covers cells where the 3 seeds happen to agree closely (sigma
underestimated from 3 values), and the checkpoint-to-checkpoint spread of a retrained model, which
the seeds do not see; its value is measured and recorded in ``benchmarks/baseline/README.md``.
Speed is reported (ms/image against the baseline) but never fails the run: CI machines are shared.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline" / "smoke.csv"
PRESET = "smoke"
METHODS = ("ddim", "ddpm-fixedlarge", "ddpm-fixedsmall")
NFE = (10, 20, 50, 100)
SEEDS = (0, 1, 2)
BATCH = 500  # 4 batches of the smoke preset's 2000 samples: four timed repeats, no extra sampling

TOL_SIGMAS = 4.0
TOL_REL = {"fid": 0.25, "coverage": 0.05}
TOL_ABS = {"fid": 0.0, "coverage": 0.01}
# +1: a higher value is better (coverage); -1: lower is better (FID).
DIRECTION = {"fid": -1, "coverage": +1}
CELL = ["method", "sampler", "nfe_requested"]


@dataclass
class Check:
    cell: str
    metric: str
    baseline: float
    now: float
    tolerance: float
    ok: bool

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        if self.metric in DIRECTION:
            rule = f"allowed {'+' if DIRECTION[self.metric] < 0 else '-'}{self.tolerance:.3g}"
        else:
            rule = "must be equal"
        return f"{verdict} {self.cell:<16} {self.metric:<9} baseline {self.baseline:<9.4g} now {self.now:<9.4g} ({rule})"


def tolerance(metric: str, per_seed: pd.Series) -> float:
    sigma = per_seed.std(ddof=1) if len(per_seed) > 1 else 0.0
    sigma = 0.0 if math.isnan(sigma) else sigma
    return max(TOL_SIGMAS * sigma, TOL_REL[metric] * abs(per_seed.mean()), TOL_ABS[metric])


def compare(baseline: pd.DataFrame, now: pd.DataFrame) -> list[Check]:
    """Every check of ``now`` against ``baseline``; a regression is a Check with ``ok`` False."""
    checks: list[Check] = []
    for key, base in baseline.groupby(CELL, sort=True):
        name = f"{key[0]} NFE {key[2]}"
        cur = now[(now["method"] == key[0]) & (now["sampler"] == key[1]) & (now["nfe_requested"] == key[2])]
        if cur.empty:
            checks.append(Check(name, "present", 1, 0, 0, False))
            continue
        base_nfe, cur_nfe = sorted(base["nfe"].unique()), sorted(cur["nfe"].unique())
        checks.append(Check(name, "nfe", float(base_nfe[0]), float(cur_nfe[0]), 0.0, base_nfe == cur_nfe))
        missing = set(base["seed"]) - set(cur["seed"])
        if missing:
            checks.append(Check(name, f"seeds {sorted(missing)}", 1, 0, 0, False))
        for metric, sign in DIRECTION.items():
            tol = tolerance(metric, base[metric])
            b, c = float(base[metric].mean()), float(cur[metric].mean())
            worse = (b - c) if sign > 0 else (c - b)
            checks.append(Check(name, metric, b, c, tol, bool(worse <= tol)))
    return checks


def speed_lines(baseline: pd.DataFrame, now: pd.DataFrame) -> list[str]:
    b = baseline.groupby(CELL)["ms_per_image"].median()
    c = now.groupby(CELL)["ms_per_image"].median()
    both = pd.concat({"baseline": b, "now": c}, axis=1).dropna()
    return [
        f"speed {m} NFE {n}: {r.now:.4g} ms/image (baseline {r.baseline:.4g}, x{r.now / r.baseline:.2f})"
        for (m, _, n), r in both.iterrows()
    ]


def run_cells(
    results: Path, methods: list[str], nfes: dict[str, list[int]], seeds: list[int], device: str = "cpu"
) -> pd.DataFrame:
    """Bench the smoke preset into ``results`` and return its table."""
    from ..cli import build_parser
    from .harness import run_bench
    from .results import read_results

    for method in methods:
        # Through the CLI's own parser, so every bench option keeps the default a user would get.
        args = build_parser().parse_args(
            ["bench", "--method", method, "--preset", PRESET, "--device", device,
             "--nfe", ",".join(map(str, nfes[method])), "--seeds", ",".join(map(str, seeds)),
             "--batch-size", str(BATCH), "--results", str(results)]
        )
        run_bench(args)
    return read_results(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trilemma_bench.bench.regress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="re-make the baseline instead of comparing")
    parser.add_argument(
        "--results", type=Path, default=None, help="keep this run's rows here (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="trilemma-regress-") as tmp:
        results = args.results or Path(tmp)
        if args.update:
            table = run_cells(results, list(METHODS), {m: list(NFE) for m in METHODS}, list(SEEDS))
            args.baseline.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.baseline, index=False)
            print(f"baseline of {len(table)} rows -> {args.baseline}")
            return 0
        if not args.baseline.exists():
            print(f"no baseline at {args.baseline}: make one with --update", file=sys.stderr)
            return 2
        baseline = pd.read_csv(args.baseline)
        methods = sorted(baseline["method"].unique())
        nfes = {
            m: sorted(baseline.loc[baseline["method"] == m, "nfe_requested"].unique().tolist())
            for m in methods
        }
        now = run_cells(results, methods, nfes, sorted(baseline["seed"].unique().tolist()))
    checks = compare(baseline, now)
    for c in checks:
        print(c.line())
    for line in speed_lines(baseline, now):
        print(line)
    failed = [c for c in checks if not c.ok]
    print(
        f"regression: {len(failed)} of {len(checks)} checks failed"
        if failed
        else f"regression: all {len(checks)} checks passed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
