"""Quality against training compute: each model's kept checkpoints (``trilemma-bench curve``), benched at one
NFE, drawn against the GFLOPs their training took, with a verdict on whether the curve has flattened.

A model is *converged* at a metric when its last two checkpoints (the last doubling of training) do not differ
significantly, paired by seed; otherwise *still changing*, and its benchmark rows describe a budget, not the
method. Rows of the results folder's ``curves/results.csv`` only; the main table is never mixed in.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from ..benchmark.results import read_results
from .stats import paired_difference, t_interval
from .tables import fmt

CURVE_DIR = "curves"
METRICS = (("fid", "FID", "{:.3g}"), ("coverage", "coverage", "{:.3f}"))


def read_curves(*results_dirs: Path | str | None) -> pd.DataFrame:
    """The curve rows of each folder's ``curves/`` (folders without one add nothing)."""
    frames = [read_results(Path(d) / CURVE_DIR) for d in results_dirs if d is not None]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["method"] != "real"].copy()
    # ddpm-digits-s000500-<digest> -> the training run's name, ddpm-digits
    rows["run"] = rows["checkpoint"].str.replace(r"-s\d+-[0-9a-f]+$", "", regex=True)
    return rows


def _by_seed(rows: pd.DataFrame, metric: str) -> dict[int, float]:
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric])}


def curve_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (dataset, run, method, NFE, checkpoint): steps, GFLOPs, CPU seconds, each metric's mean ±
    95% t interval over seeds; and per run its verdict (the last doubling's paired change)."""
    out = []
    for (dataset, run, method, nfe), part in rows.groupby(["dataset", "run", "method", "nfe"], sort=True):
        steps = sorted(part["train_steps"].dropna().unique())
        verdicts = {m: verdict(part, m, steps) for m, *_ in METRICS if m in part}
        for s in steps:
            at = part[part["train_steps"] == s]
            line = {"dataset": dataset, "model": run, "method": method, "NFE": int(nfe), "train steps": int(s),
                    "train GFLOPs": f"{at['train_gflops'].iloc[0]:.3g}",
                    "train CPU s": f"{at['train_cpu_seconds'].iloc[0]:.0f}", "seeds": len(at)}
            for metric, title, pattern in METRICS:
                iv = t_interval(at[metric])
                line[title] = fmt(iv.mean, iv.half, pattern)
            line["verdict"] = "; ".join(f"{t}: {verdicts[m]}" for m, t, _ in METRICS if m in verdicts) \
                if s == steps[-1] else ""
            out.append(line)
    return pd.DataFrame(out)


def verdict(part: pd.DataFrame, metric: str, steps: list) -> str:
    """``converged`` when the last two checkpoints do not differ significantly (paired by seed), else ``still
    changing``, with the paired change and its interval."""
    if len(steps) < 2:
        return "one checkpoint: no verdict"
    last, before = (part[part["train_steps"] == s] for s in (steps[-1], steps[-2]))
    d = paired_difference(_by_seed(last, metric), _by_seed(before, metric))
    if d.significant is None:
        return "too few seeds for a verdict"
    change = f"{int(steps[-2])}->{int(steps[-1])} steps: {d.mean:+.3g} ± {d.half:.2g}"
    return f"{'still changing' if d.significant else 'converged'} ({change})"


def training_status(rows: pd.DataFrame) -> dict[tuple[str, int, int], bool]:
    """(model, training seed, steps) -> whether its FID had flattened at that checkpoint: the change to the next
    kept checkpoint (at a run's end, from the one before) not significant, paired by seed. A longer run of a model
    (``<model>-<N>steps``) passes through the preset run's checkpoints and speaks for them."""
    status: dict[tuple[str, int, int], bool] = {}
    if rows.empty:
        return status
    for (run, _method, _nfe), part in rows.groupby(["run", "method", "nfe"], sort=True):
        model = re.sub(r"-\d+steps$", "", str(run))
        seeds = pd.to_numeric(part.get("train_seed", pd.Series([0])), errors="coerce").fillna(0)
        steps = sorted(part["train_steps"].dropna().unique())
        for i, at in enumerate(steps):
            pair = (at, steps[i + 1]) if i + 1 < len(steps) else (steps[i - 1], at) if i else None
            if pair is None:
                continue
            before, after = (part[part["train_steps"] == s] for s in pair)
            d = paired_difference(_by_seed(after, "fid"), _by_seed(before, "fid"))
            if d.significant is not None:
                status[(model, int(seeds.iloc[0]), int(at))] = not d.significant
    return status


def plot_curves(rows: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Per dataset: FID and coverage against training GFLOPs (log axis), one line per run and method, error bars
    the 95% t interval over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saved = {}
    out.mkdir(parents=True, exist_ok=True)
    for dataset, data in rows.groupby("dataset"):
        # GFLOPs where every run has them counted (rows benched before DDGAN's count, flops.py, lack them):
        # else training steps, for every run alike.
        by_flops = bool(data["train_gflops"].notna().all())
        xcol = "train_gflops" if by_flops else "train_steps"
        fig, axes = plt.subplots(1, len(METRICS), figsize=(5.2 * len(METRICS), 3.8))
        for ax, (metric, title, _) in zip(axes, METRICS):
            for (run, method, nfe), part in data.groupby(["run", "method", "nfe"]):
                pts = []
                for _, at in part.groupby("train_steps"):
                    iv = t_interval(at[metric])
                    pts.append((float(at[xcol].iloc[0]), iv.mean, iv.half if math.isfinite(iv.half) else 0.0))
                x, y, e = zip(*sorted(pts))
                ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, lw=1, label=f"{run}: {method}@{int(nfe)}")
            ax.set(xscale="log", ylabel=title,
                   xlabel="training GFLOPs (counted; latent: with the autoencoder's training)" if by_flops else "training steps",
                   title=f"{dataset}: {title} against training compute")
            if metric == "fid":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{dataset}-training-compute.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        saved[f"{dataset} training compute"] = path
    return saved
