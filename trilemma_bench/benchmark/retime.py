"""``trilemma-bench retime``: re-time every cell of a results table in one timing run.

Quality figures do not depend on the machine; timings do, and on a shared machine on the day. So the rows'
timings are taken again, in one process: each row's batch (its own seed's first batch of its batch size) is
timed once per round, the rows in a fixed order rotated by one step each round, so drift and neighbours'
load fall on all cells alike. A row's ms/image is the median of its rounds; every row of the run gets the
same ``timing_run`` id. The samples, and so every quality column, are left as they are: only the timing
columns change. A row whose checkpoint is not the model found here (retrained since, or missing) is skipped
and listed; nothing is trained.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..noise import ImageNoise, initial_noise
from ..report_utils import log
from .config import BenchConfig, dry_run, make_config, sample_shape
from .harness import load_models
from .request import BenchRequest
from .results import KEY, read_results, set_columns
from .timing import _sync, device_name, precision
from .timing_run import TimingRun

REAL = "real"


@dataclass
class Job:
    """One row to time: its batch, how to sample and decode it, and the times of its rounds."""

    key: dict[str, Any]
    label: str
    nfe: int
    sample: Callable[[], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor] | None
    batch_size: int
    gflops_per_image: float
    sampler_ms: list[float] = field(default_factory=list)
    decoder_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def _clocked(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """(result, wall ms, process CPU ms) of one call, synchronised on a GPU."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    _sync(device)
    return out, (time.perf_counter() - t0) * 1000.0, (time.process_time() - c0) * 1000.0


def _jobs_of(method: str, train_seed: int, rows: pd.DataFrame, preset: str, device: str
             ) -> tuple[list[Job], list[str]]:
    """The jobs of one method's rows of one training run, and the rows skipped (with why)."""
    first = rows.iloc[0]
    req = BenchRequest(method=method, preset=preset, dataset=first["dataset"], device=device, train_seed=train_seed,
                       nfe=sorted({int(n) for n in rows["nfe_requested"].fillna(rows["nfe"])}),
                       seeds=sorted({int(s) for s in rows["seed"]}), num_samples=int(first["num_samples"]),
                       batch_size=int(first["batch_size"]))
    cfg: BenchConfig = make_config(req)
    steps = pd.to_numeric(rows.get("train_steps"), errors="coerce").dropna().unique() if "train_steps" in rows else []
    if len(steps) == 1 and int(steps[0]) != cfg.preset.train_config(cfg.method.model).train_steps:
        # the rows' models were trained for other than the preset's length (--steps)
        cfg = make_config(dataclasses.replace(req, steps=int(steps[0])))
    from ..train import has_weights

    missing = [spec.tag for spec in {cfg.spec_for(n) for n in cfg.nfes}
               if not has_weights(spec, cfg.preset, seed=train_seed)]
    if missing:
        return [], [f"{method}: no weights here for {', '.join(missing)} (shipped or cached); run its bench first"]
    warmup = dry_run(cfg).warmup
    models = load_models(cfg)
    jobs, skipped = [], []
    B = cfg.batch_size
    for row in rows.to_dict("records"):
        nfe = int(row["nfe_requested"]) if pd.notna(row.get("nfe_requested")) else int(row["nfe"])
        model, probe, ckpt, _path, decoder = models[cfg.spec_for(nfe)]
        label = f"{method}@{int(row['nfe'])} seed {int(row['seed'])}"
        if ckpt != row["checkpoint"]:
            skipped.append(f"{label}: its checkpoint {row['checkpoint']} is not the model here ({ckpt})")
            continue
        seed = int(row["seed"])
        x_T = initial_noise(sample_shape(model, cfg.preset.dataset), seed, range(B)).to(cfg.device)

        def sample(model=model, x_T=x_T, nfe=nfe, seed=seed, net=probe) -> torch.Tensor:
            with torch.no_grad(), precision(cfg.device, cfg.bf16):
                return cfg.method.sample(model, x_T, nfe, net=net, noise=ImageNoise(seed, range(B)))

        def decode(z: torch.Tensor, decoder=decoder) -> torch.Tensor:
            with torch.no_grad(), precision(cfg.device, cfg.bf16):
                return decoder(z)

        # Warm-up as the bench does: the same kernels and batch shape, at few steps where the method allows.
        with torch.no_grad():
            z = cfg.method.sample(model, x_T, warmup[nfe], net=probe, noise=ImageNoise(seed, range(B)))
            if decoder is not None:
                decoder(z)
        jobs.append(Job({k: row[k] for k in KEY if k in row}, label, int(row["nfe"]), sample,
                        decode if decoder is not None else None, B, float(row.get("gflops_per_image", float("nan")))))
    return jobs, skipped


def retime(results_dir: Path | str, preset: str, *, methods: list[str] | None = None, rounds: int = 3,
           device: str = "cpu") -> tuple[TimingRun, int, list[str]]:
    """Re-time the current rows of ``preset`` (``methods``: only these) in ``results_dir`` in one run of
    ``rounds`` round-robin rounds; returns the run, the rows re-timed and the rows skipped."""
    if rounds < 1:
        raise ValueError(f"--rounds must be positive, got {rounds}")
    table = read_results(results_dir)
    rows = table[(table["method"] != REAL) & (table["preset"] == preset) & (table["device"] == device)]
    if methods:
        unknown = sorted(set(methods) - set(rows["method"]))
        if unknown:
            raise ValueError(f"no {preset} rows of {', '.join(unknown)} in {results_dir}: "
                             f"its methods are {', '.join(sorted(rows['method'].unique()))}")
        rows = rows[rows["method"].isin(methods)]
    if rows.empty:
        raise ValueError(f"no {preset} rows on {device} in {results_dir} to re-time: run `trilemma-bench bench` first")
    jobs: list[Job] = []
    skipped: list[str] = []
    seeds = pd.to_numeric(rows["train_seed"], errors="coerce").fillna(0).astype(int) if "train_seed" in rows else 0
    for (method, train_seed), part in rows.assign(_ts=seeds).groupby(["method", "_ts"], sort=True):
        mine, left = _jobs_of(str(method), int(train_seed), part.drop(columns="_ts"), preset, device)
        jobs += mine
        skipped += left
    if not jobs:
        raise ValueError("no row could be re-timed: " + "; ".join(skipped))
    run = TimingRun.start("retime", "round-robin")
    dev = torch.device(device)
    log(f"retime: {len(jobs)} rows x {rounds} rounds in one run ({run.id}, {run.threads} threads, "
        f"load {run.load_before})")
    for r in range(rounds):
        shift = r * len(jobs) // rounds  # each round starts elsewhere in the order: no cell always goes first
        for job in jobs[shift:] + jobs[:shift]:
            z, wall, cpu = _clocked(job.sample, dev)
            job.sampler_ms.append(wall)
            if job.decode is not None:
                _, d_wall, d_cpu = _clocked(lambda job=job, z=z: job.decode(z), dev)
                job.decoder_ms.append(d_wall)
                wall, cpu = wall + d_wall, cpu + d_cpu
            job.cpu_ms.append(cpu)
        log(f"  round {r + 1}/{rounds} done")
    name = device_name(dev)
    for job in jobs:
        total = [s + d for s, d in zip(job.sampler_ms, job.decoder_ms)] if job.decode else job.sampler_ms
        ms = statistics.median(total) / job.batch_size
        values: dict[str, Any] = {
            "ms_per_image": ms, "ms_per_nfe": statistics.median(job.sampler_ms) / job.nfe,
            "images_per_s": 1000.0 / ms, "cpu_ms_per_image": statistics.median(job.cpu_ms) / job.batch_size,
            "timing_statistic": "median", "timing_repeats": rounds, "warmup_seconds": float("nan"),
            "ms_per_batch_min": min(total), "ms_per_batch_max": max(total),
            # GFLOP per image / sampler ms per image = TFLOP/s (the network's FLOPs run in the sampler)
            "achieved_tflops": job.gflops_per_image / (statistics.median(job.sampler_ms) / job.batch_size),
            "device_name": name,
            "threads": run.threads, **run.columns(),
        }
        if job.decode is not None:
            values["sampler_ms_per_image"] = statistics.median(job.sampler_ms) / job.batch_size
            values["decoder_ms_per_image"] = statistics.median(job.decoder_ms) / job.batch_size
        set_columns(results_dir, job.key, values)
    return run, len(jobs), skipped
