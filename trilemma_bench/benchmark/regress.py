"""CI regression: an exact one that needs no training, then the trained ``smoke`` preset against a baseline.

    python -m trilemma_bench.benchmark.regress            # (make regress) exit 1 on a regression
    python -m trilemma_bench.benchmark.regress --update   # re-make benchmarks/baseline/{oracle.json,smoke.csv}

1. Oracle (:mod:`.oracle`): every sampler of the DDPM network on the closed-form Bayes-optimal eps of the
   toy2d mixture, in float64. Samples must match the pinned ones to 1e-6, NFE and mode statistics exactly.
2. Smoke: train (or reuse) the smoke checkpoint, bench every (method, NFE, seed) of the baseline into a
   temporary results folder at 1 thread, and check each (method, NFE) over its seeds:

   - NFE: the counted network calls must equal the baseline's, exactly;
   - FID and mode KL must not rise, coverage and high-quality share must not fall, beyond the tolerance;
   - CPU time per image, normalised by a reference workload timed in the same run (:mod:`.cputime`),
     must not exceed the baseline's by more than 2x.

Tolerance: two sources of change that are not regressions, each measured by the baseline itself.

- Same checkpoint (the weights' digest equals the baseline's: training reproduced bit for bit, as it
  does on the machine that made the baseline): only code can move a figure, and a change that merely
  redraws the random numbers moves it by the seed-to-seed spread. sigma_seed is the sample standard
  deviation over the baseline's seeds of the per-seed metric; allowed: ``TOL_SIGMAS * sigma_seed``.
- Another checkpoint (another CPU's rounding, or a change to training): the model itself moved. The
  baseline holds ``CHECKPOINTS`` models trained with training seeds 0, 1, ...; sigma_ckpt is the standard
  deviation over them of a cell's seed-mean; allowed: ``max(TOL_SIGMAS * sigma_seed, TOL_CKPT * sigma_ckpt)``.

A cell fails when its seed-mean moves the wrong way by more than that (``benchmarks/baseline/README.md``
has the measured spreads and why the factors are what they are).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

from . import cputime, oracle
from .verdict import Check, failed

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline" / "smoke.csv"
PRESET = "smoke"
METHODS = ("ddim", "ddpm-fixedlarge", "ddpm-fixedsmall")
NFE = (10, 20, 50, 100)
SEEDS = (0, 1, 2)
BATCH = 500  # 4 batches of the smoke preset's 2000 samples (the fifth timed repeat is batch 0 again)
THREADS = 1
CHECKPOINTS = 6  # training seeds 0..5 in the baseline; CI trains seed 0

# Same checkpoint: a change that only redraws the random numbers moves a 3-seed mean by sd 0.82 sigma_seed
# (the difference of two means of 3), so 4 sigma_seed is about 5 sd of that.
TOL_SIGMAS = 4.0
# Another checkpoint: measured. Each retrained checkpoint of the baseline, judged by the sd of the others
# (leave one out), moved at most 9.9 of their sd the wrong way (mode KL of training seed 5); 12 leaves a margin.
TOL_CKPT = 12.0
TOL_ABS = {"fid": 0.0, "coverage": 0.0, "high_quality": 0.0, "mode_kl": 0.0}
# +1: a higher value is better; -1: lower is better.
DIRECTION = {"fid": -1, "coverage": +1, "high_quality": +1, "mode_kl": -1}
CELL = ["method", "sampler", "nfe_requested"]
TRAINING_SEED = "training_seed"


def _sd(values: pd.Series) -> float:
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return 0.0 if pd.isna(sd) else float(sd)


def tolerance(metric: str, per_seed: pd.Series, checkpoint_means: pd.Series | None = None) -> float:
    """How far a cell's seed-mean may move the wrong way: ``per_seed`` are the baseline checkpoint's
    values, ``checkpoint_means`` (None: the checkpoint reproduced) the seed-means of every checkpoint."""
    tol = max(TOL_SIGMAS * _sd(per_seed), TOL_ABS[metric])
    if checkpoint_means is not None:
        tol = max(tol, TOL_CKPT * _sd(checkpoint_means))
    return tol


def _split(baseline: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the method rows of training seed 0: what CI reproduces, the method rows of every checkpoint)."""
    cells = baseline[baseline["method"] != "real"]
    if TRAINING_SEED not in cells:
        return cells, cells.assign(**{TRAINING_SEED: 0})
    return cells[cells[TRAINING_SEED] == 0], cells


def same_checkpoint(baseline: pd.DataFrame, now: pd.DataFrame) -> bool:
    ref, _ = _split(baseline)
    cur = now[now["method"] != "real"]
    return set(ref["checkpoint"]) == set(cur["checkpoint"])


def compare(baseline: pd.DataFrame, now: pd.DataFrame) -> list[Check]:
    """Every metric check of ``now`` against ``baseline``'s method cells; a regression is ``ok`` False."""
    ref, every = _split(baseline)
    same = same_checkpoint(baseline, now)
    checks: list[Check] = []
    for key, base in ref.groupby(CELL, sort=True):
        name = f"{key[0]} NFE {key[2]}"
        cur = now[(now["method"] == key[0]) & (now["sampler"] == key[1]) & (now["nfe_requested"] == key[2])]
        if cur.empty:
            checks.append(Check(name, "present", 1, 0, "cell not run", False))
            continue
        base_nfe, cur_nfe = sorted(base["nfe"].unique()), sorted(cur["nfe"].unique())
        checks.append(Check(name, "nfe", float(base_nfe[0]), float(cur_nfe[0]), "must be equal", base_nfe == cur_nfe))
        missing = set(base["seed"]) - set(cur["seed"])
        if missing:
            checks.append(Check(name, f"seeds {sorted(missing)}", 1, 0, "seeds not run", False))
        group = every[(every["method"] == key[0]) & (every["sampler"] == key[1]) & (every["nfe_requested"] == key[2])]
        ckpt_means = None if same else group.groupby(TRAINING_SEED)
        for metric, sign in DIRECTION.items():
            means = None if ckpt_means is None else ckpt_means[metric].mean()
            tol = tolerance(metric, base[metric], means)
            b, c = float(base[metric].mean()), float(cur[metric].mean())
            worse = (b - c) if sign > 0 else (c - b)
            rule = f"allowed {'-' if sign > 0 else '+'}{tol:.3g}"
            checks.append(Check(name, metric, b, c, rule, bool(worse <= tol)))
    return checks


def spread_lines(baseline: pd.DataFrame, now: pd.DataFrame) -> list[str]:
    """Which noise the tolerances are drawn from, and what real held-out data scores (FID's floor)."""
    ref, every = _split(baseline)
    cur = sorted(set(now.loc[now["method"] != "real", "checkpoint"]))
    if same_checkpoint(baseline, now):
        head = (f"checkpoint {', '.join(cur)} is the baseline's, bit for bit: tolerances are "
                f"{TOL_SIGMAS:g} sd over the baseline's {ref['seed'].nunique()} seeds")
    else:
        head = (f"checkpoint {', '.join(cur)} is not the baseline's ({', '.join(sorted(set(ref['checkpoint'])))}): "
                f"tolerances widened to {TOL_CKPT:g} sd over its {every[TRAINING_SEED].nunique()} training seeds' "
                "checkpoints")
    lines = [head]
    real = baseline[baseline["method"] == "real"]
    if TRAINING_SEED in real:
        real = real[real[TRAINING_SEED] == 0]
    lines += [f"floor {sampler}: FID {group['fid'].mean():.4g} (mean of {len(group)} seeds), "
              f"coverage {group['coverage'].mean():.3f}, high_quality {group['high_quality'].mean():.3f}"
              for sampler, group in real.groupby("sampler")]
    return lines


def run_cells(results: Path, methods: list[str], nfes: dict[str, list[int]], seeds: list[int]) -> pd.DataFrame:
    """Bench the smoke preset into ``results``; returns its table, every row with the run's reference CPU time."""
    from .harness import run_bench
    from .request import BenchRequest
    from .results import read_results

    references = [cputime.reference_ms()]
    for method in methods:
        # The typed request the CLI builds: every other option keeps the default a user would get.
        run_bench(BenchRequest(method=method, preset=PRESET, device="cpu", threads=THREADS, nfe=nfes[method],
                               seeds=seeds, batch_size=BATCH, results=results))
        references.append(cputime.reference_ms())  # timed through the run: the median follows its load
    print(f"reference workload: {statistics.median(references):.3f} CPU ms (median of "
          f"{', '.join(f'{r:.3f}' for r in references)})")
    return read_results(results).assign(**{cputime.COLUMN: statistics.median(references)})


def train_with_seed(seed: int, cache: Path) -> None:
    """Point the cache at ``cache`` and train the smoke checkpoint there with training seed ``seed``."""
    from ..presets import PRESETS
    from ..train import train_model

    os.environ["TRILEMMA_BENCH_CACHE"] = str(cache)
    train_model("ddpm", PRESETS[PRESET], device="cpu", retrain=True, seed=seed)


def update(args: argparse.Namespace, tmp: Path) -> None:
    """The baseline: training seed 0 from the cache (what CI trains), seeds 1.. in temporary caches."""
    tables = []
    for seed in range(args.checkpoints):
        if seed > 0:
            train_with_seed(seed, tmp / f"cache-{seed}")
        table = run_cells(tmp / f"results-{seed}", list(METHODS), {m: list(NFE) for m in METHODS}, list(SEEDS))
        tables.append(table.assign(**{TRAINING_SEED: seed}))
    table = pd.concat(tables, ignore_index=True)
    args.baseline.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.baseline, index=False)
    print(f"smoke baseline of {len(table)} rows ({args.checkpoints} checkpoints) -> {args.baseline}")


def smoke(args: argparse.Namespace, tmp: Path) -> list[Check]:
    if not args.baseline.exists():
        return [Check("smoke", "baseline", 1, 0, f"none at {args.baseline}: make one with --update", False)]
    baseline = pd.read_csv(args.baseline)
    cells, _ = _split(baseline)
    methods = sorted(cells["method"].unique())
    nfes = {m: sorted(cells.loc[cells["method"] == m, "nfe_requested"].unique().tolist()) for m in methods}
    if args.training_seed is not None:
        train_with_seed(args.training_seed, tmp / "cache")
    now = run_cells(args.results or tmp / "results", methods, nfes, sorted(cells["seed"].unique().tolist()))
    for line in spread_lines(baseline, now):
        print(line)
    return compare(baseline, now) + cputime.compare(baseline, now)


def exact(args: argparse.Namespace) -> list[Check]:
    records = oracle.run_cells()
    if args.update:
        oracle.save(records, args.oracle_baseline)
        print(f"oracle baseline of {len(records)} cells -> {args.oracle_baseline}")
        return []
    if not args.oracle_baseline.exists():
        return [Check("oracle", "baseline", 1, 0, f"none at {args.oracle_baseline}: make one with --update", False)]
    return oracle.compare(oracle.load(args.oracle_baseline), records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trilemma_bench.benchmark.regress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--oracle-baseline", type=Path, default=oracle.BASELINE)
    parser.add_argument("--update", action="store_true", help="re-make the baselines instead of comparing")
    parser.add_argument("--checkpoints", type=int, default=CHECKPOINTS,
                        help="with --update: smoke models trained with seeds 0..N-1 (default: %(default)s)")
    parser.add_argument("--only", choices=["oracle", "smoke"], default=None, help="run one of the two parts")
    parser.add_argument("--results", type=Path, default=None, help="keep the smoke run's rows here (default: a temp dir)")
    parser.add_argument("--training-seed", type=int, default=None,
                        help="train the smoke model with this seed in a fresh temporary cache first: measures the "
                             "checkpoint-to-checkpoint spread (CI trains with seed 0)")
    args = parser.parse_args(argv)
    if args.update and args.training_seed is not None:
        parser.error("--training-seed compares another checkpoint with the baseline; it cannot make one")
    if args.checkpoints < 1:
        parser.error(f"--checkpoints must be at least 1, got {args.checkpoints}")

    from .timing import set_threads

    set_threads(THREADS)  # the baseline's CPU times were taken at 1 thread
    checks: list[Check] = []
    cache = os.environ.get("TRILEMMA_BENCH_CACHE")
    try:
        if args.only in (None, "oracle"):
            checks += exact(args)
        if args.only in (None, "smoke"):
            with tempfile.TemporaryDirectory(prefix="trilemma-regress-") as tmp:
                if args.update:
                    update(args, Path(tmp))
                else:
                    checks += smoke(args, Path(tmp))
    finally:  # a temporary cache never outlives the run
        if cache is None:
            os.environ.pop("TRILEMMA_BENCH_CACHE", None)
        else:
            os.environ["TRILEMMA_BENCH_CACHE"] = cache
    if args.update:
        return 0
    for c in checks:
        print(c.line())
    bad = failed(checks)
    print(f"regression: {len(bad)} of {len(checks)} checks failed" if bad else f"regression: all {len(checks)} checks passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
