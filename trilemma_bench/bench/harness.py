"""``trilemma-bench bench``: train (or reuse) a method's model, then for each seed and NFE time the
sampling, measure quality and diversity, and write one results row as soon as the cell is done.

Cell protocol, in order:

1. noise: image i of seed s starts from noise seeded ``s * 1_000_000 + i`` (whatever the batch size),
   so every NFE of a seed starts from the same x_T (a paired comparison across NFEs and methods);
   stochastic samplers get a generator seeded from (seed, batch index);
2. sampling, timed by :func:`.timing.time_batches` in fixed batches; the network is wrapped in a
   counter, so the NFE recorded is the number of network calls per batch, measured;
3. metrics, outside the timed region: features of the samples, FID against the cached statistics of
   the real train split, KID and precision/recall/density/coverage (k = 5) against an equally large
   subset of it, mode statistics where the dataset has labelled modes;
4. a sample grid, then the row (``results.py`` writes it atomically).

Bad input (unknown method or dataset, an NFE the sampler refuses, too few samples for k-NN metrics)
is refused before any training or sampling: every NFE is dry-run first on an untrained copy of the
model whose network is replaced by zeros, which costs only the sampler's arithmetic.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from torch import Tensor

from ..data import DATASETS, TOY2D_CENTERS, TOY2D_STD, dataset_source
from ..grid import save_samples
from ..methods import Method, get_method
from ..presets import PRESETS, Preset
from ..report_utils import console, log
from ..samplers import CountingModel, per_image_noise
from .results import upsert_row
from .timing import FlopProbe, Timing, precision, set_threads, time_batches

PRDC_K = 5
# KID subsets of 1000 as Binkowski et al., but at most half of each set: subsets of the whole set would all
# be the same samples, and kid_std (the spread over subsets) would read 0.
KID_SUBSET = 1000
NOISE_SEED_STRIDE = 1_000_000  # image i of seed s uses noise seed s * stride + i
GRID_SAMPLES = 64
REFERENCE_SPLIT = "train"  # digits has 180 test images; FID is computed against the train split everywhere


@dataclass(frozen=True)
class BenchConfig:
    method: Method
    preset: Preset
    nfes: tuple[int, ...]
    seeds: tuple[int, ...]
    num_samples: int
    batch_size: int
    device: torch.device
    bf16: bool
    compile: bool
    extractor: str
    results_dir: Path
    retrain: bool = False
    min_repeats: int = 3

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.bf16 else "float32"


# ------------------------------------------------------------------------------------------ config


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Validate the command line into a config; raises ValueError with what to change."""
    from ..metrics.features import KINDS, default_extractor
    from ..train import resolve_preset

    method = get_method(args.method)
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}: choose one of {', '.join(PRESETS)}")
    preset = resolve_preset(PRESETS[args.preset], getattr(args, "dataset", None))
    if getattr(args, "steps", None) is not None:
        preset = preset.replace(train_steps=args.steps)

    nfes = tuple(getattr(args, "nfe", None) or method.default_nfe)
    seeds = tuple(getattr(args, "seeds", None) or (0,))
    bad = [n for n in nfes if not isinstance(n, int) or n < 1]
    if bad:
        raise ValueError(f"NFE must be positive integers, got {bad}")
    if len(set(nfes)) != len(nfes) or len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated NFE or seed in --nfe {list(nfes)} --seeds {list(seeds)}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {list(seeds)}")

    num_samples = getattr(args, "num_samples", None) or preset.num_samples
    if num_samples < PRDC_K + 1:
        raise ValueError(
            f"--num-samples {num_samples} is too few: precision/recall/density/coverage use the {PRDC_K}-th "
            f"nearest neighbour, so at least {PRDC_K + 1} samples are needed (hundreds for a meaningful number)"
        )
    min_repeats = int(getattr(args, "repeats", None) or 3)
    batch_size = getattr(args, "batch_size", None)
    if batch_size is None:
        # The preset's batch, made small enough that the sample set itself gives min_repeats timed batches:
        # otherwise batch 0 is sampled again only to be timed (1000 digits at 500 a batch: +50% work).
        batch_size = max(1, min(preset.sample_batch_size, num_samples // min_repeats))
    batch_size = min(batch_size, num_samples)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    if getattr(args, "repeats", None) is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be positive, got {args.repeats}")

    device = _resolve_device(getattr(args, "device", "auto"))
    extractor = getattr(args, "extractor", None) or default_extractor(preset.dataset)
    if extractor not in KINDS:
        raise ValueError(f"unknown extractor {extractor!r}: choose one of {', '.join(KINDS)}")
    if not DATASETS[preset.dataset].is_image and extractor != "raw":
        raise ValueError(
            f"{preset.dataset} is not an image dataset: its extractor is 'raw', not {extractor!r}"
        )
    return BenchConfig(
        method=method,
        preset=preset,
        nfes=nfes,
        seeds=seeds,
        num_samples=num_samples,
        batch_size=batch_size,
        device=device,
        bf16=bool(getattr(args, "bf16", False)),
        compile=bool(getattr(args, "compile", False)),
        extractor=extractor,
        results_dir=Path(getattr(args, "results", None) or "results"),
        retrain=bool(getattr(args, "retrain", False)),
        min_repeats=min_repeats,
    )


def _resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device here; use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


WARMUP_NFE = 10  # warm-up runs the sampler this many steps (fewer if the grid's smallest NFE is smaller)


def dry_run_nfe(cfg: BenchConfig) -> tuple[dict[int, int], int]:
    """Check every NFE on an untrained model whose network returns zeros.

    Returns requested -> counted NFE, and the NFE to warm up at: the same kernels at the same batch
    shape as the timed runs, but few steps, so a 1000-NFE cell does not pay a whole extra batch.
    """
    from ..train import build_model

    model = build_model(cfg.method.model, cfg.preset)
    x = torch.zeros(2, *DATASETS[cfg.preset.dataset].shape)

    def count(nfe: int) -> int:
        zero = CountingModel(lambda x_t, *args, **kwargs: torch.zeros_like(x_t))
        cfg.method.sample(model, x, nfe, net=zero, generator=torch.Generator().manual_seed(0))
        return zero.nfe

    counted = {}
    for nfe in cfg.nfes:
        try:
            counted[nfe] = count(nfe)
        except ValueError as err:
            raise ValueError(f"method {cfg.method.name} cannot sample at NFE {nfe}: {err}") from None
    warmup = min(cfg.nfes)
    if warmup > WARMUP_NFE:
        try:
            count(WARMUP_NFE)
            warmup = WARMUP_NFE
        except ValueError:
            pass  # a method with a fixed set of step counts: warm up at the smallest asked for
    return counted, warmup


# ------------------------------------------------------------------------------------------ context


@dataclass
class Reference:
    """The real data a cell's samples are compared with, all from one extractor."""

    extractor: Any
    stats: tuple[Tensor, Tensor]
    stats_n: int
    features: Tensor
    split: str
    source: str
    modes: Callable[[Tensor], dict[str, float]] | None


def _mode_metric(dataset: str, device: torch.device) -> Callable[[Tensor], dict[str, float]] | None:
    """Mode statistics where the dataset's modes are known (toy2d: 25 Gaussians; StackedMNIST: 1000)."""
    from ..metrics import modes_stacked, modes_toy2d

    if dataset == "toy2d":
        return lambda x: {**modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD), "modes_total": len(TOY2D_CENTERS)}
    if dataset == "stacked-mnist":
        from ..metrics.classifier import classify_stacked

        return lambda x: {**modes_stacked(classify_stacked(x, device=device)), "modes_total": 1000}
    return None


def load_reference(cfg: BenchConfig) -> Reference:
    from ..metrics.features import get_extractor
    from ..metrics.reference import reference_features, reference_stats

    ds = cfg.preset.dataset
    extractor = get_extractor(cfg.extractor, ds, device=cfg.device)
    stats = reference_stats(ds, REFERENCE_SPLIT, extractor, device=cfg.device)
    # k-NN metrics compare equally many real and generated samples (Naeem et al. 2020); FID takes the
    # whole split's statistics, the usual protocol.
    n_real = cfg.num_samples if cfg.num_samples < stats["n"] else None
    features = reference_features(ds, REFERENCE_SPLIT, extractor, n_real, device=cfg.device)
    return Reference(
        extractor=extractor,
        stats=(stats["mu"], stats["sigma"]),
        stats_n=int(stats["n"]),
        features=features.to(cfg.device),
        split=REFERENCE_SPLIT,
        source=stats["source"],
        modes=_mode_metric(ds, cfg.device),
    )


def git_commit() -> str:
    """Short commit of the package's checkout, ``+dirty`` when tracked files differ from it."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def checkpoint_id(model: torch.nn.Module, path: Path) -> str:
    """``<model>-<preset>-<weights SHA-1>``: names the weights, not where the cache happens to be."""
    from ..metrics._cache import digest_tensors

    return f"{path.stem}-{digest_tensors(model.state_dict())[:10]}"


# ------------------------------------------------------------------------------------------ one cell


def sample_cell(
    cfg: BenchConfig,
    model: Any,
    net: torch.nn.Module,
    x_T: Tensor,
    nfe: int,
    seed: int,
    warmup_nfe: int,
    on_batch: Callable[[], None] = lambda: None,
) -> tuple[Tensor, Timing, int]:
    """Timed sampling of all of ``x_T`` at ``nfe``: (samples on CPU in float32, timing, measured NFE)."""
    counter = CountingModel(net)
    B = cfg.batch_size
    n_full = len(x_T) // B
    counts: list[int] = []
    x_T = x_T.to(cfg.device)  # moved before the clock starts: the timed region is the sampler only

    def run(i: int, n: int = B, at_nfe: int = nfe, record: bool = True) -> Tensor:
        x = x_T[i * B : i * B + n]
        generator = torch.Generator(cfg.device).manual_seed(seed * NOISE_SEED_STRIDE + i)
        counter.nfe = 0
        with precision(cfg.device, cfg.bf16):
            out = cfg.method.sample(model, x, at_nfe, net=counter, generator=generator)
        if record:
            counts.append(counter.nfe)
        return out

    def timed(i: int) -> Tensor:
        out = run(i)
        on_batch()
        return out

    outputs, timing = time_batches(
        timed,
        n_full,
        B,
        device=cfg.device,
        min_repeats=cfg.min_repeats,
        warmup=lambda: run(0, at_nfe=warmup_nfe, record=False),
    )
    if len(x_T) % B:  # the last, smaller batch is sampled but not timed: the protocol fixes the batch
        outputs.append(run(n_full, len(x_T) % B))
        on_batch()
    if len(set(counts)) != 1:
        log(
            f"[yellow]warning[/]: {cfg.method.name} made {sorted(set(counts))} network calls per batch at NFE {nfe}"
        )
    samples = torch.cat([o.float().cpu() for o in outputs])
    return samples, timing, max(counts)


def cell_metrics(samples: Tensor, ref: Reference, device: torch.device) -> dict[str, Any]:
    """Quality and diversity of one cell's samples against the reference (all outside the timed region)."""
    from ..metrics import fid_from_stats, kid, prdc

    feats = ref.extractor(samples).to(device)
    real = ref.features
    m = max(2, min(KID_SUBSET, len(real) // 2, len(feats) // 2))
    kid_mean, kid_std = kid(real, feats, subset_size=m, generator=torch.Generator().manual_seed(0))
    row: dict[str, Any] = {
        "fid": fid_from_stats(ref.stats, feats),
        "kid": kid_mean,
        "kid_std": kid_std,
        **prdc(real, feats, k=PRDC_K),
        "prdc_k": PRDC_K,
        "prdc_real_n": len(real),
        "modes": math.nan,
        "modes_total": math.nan,
        "high_quality": math.nan,
        "mode_kl": math.nan,
    }
    if ref.modes is not None:
        row.update(ref.modes(samples))
    return row


# ------------------------------------------------------------------------------------------ the bench


def run_bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The ``bench`` command: every (seed, NFE) cell of one method, one row each. Returns the rows."""
    from ..train import train_model

    cfg = config_from_args(args)
    set_threads(getattr(args, "threads", None))  # recorded in every row (timing.threads)
    expected_nfe, warmup_nfe = dry_run_nfe(cfg)
    ds, shape = cfg.preset.dataset, DATASETS[cfg.preset.dataset].shape
    log(
        f"bench {cfg.method.name} on {ds} (preset {cfg.preset.name}): NFE {list(cfg.nfes)}, seeds {list(cfg.seeds)}, "
        f"{cfg.num_samples} samples in batches of {cfg.batch_size} on {cfg.device} ({cfg.dtype}"
        f"{', compiled' if cfg.compile else ''}) -> {cfg.results_dir}"
    )

    model, ckpt_path = train_model(
        cfg.method.model, cfg.preset, device=str(cfg.device.type), retrain=cfg.retrain
    )
    model = model.to(cfg.device).eval()
    ckpt = checkpoint_id(model, ckpt_path)
    ref = load_reference(cfg)
    eager = model.denoiser()
    probe = FlopProbe(eager, then=torch.compile(eager) if cfg.compile else None)
    env = {
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "dataset_source": dataset_source(ds),
        "checkpoint": ckpt,
        "checkpoint_path": str(ckpt_path),
    }

    rows: list[dict[str, Any]] = []
    n_full, partial = divmod(cfg.num_samples, cfg.batch_size)
    n_batches = max(n_full, cfg.min_repeats) + (1 if partial else 0)  # timed repeats, then the untimed rest
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        cells = progress.add_task("cells", total=len(cfg.seeds) * len(cfg.nfes))
        batches = progress.add_task("batches", total=n_batches)
        for seed in cfg.seeds:
            seeds = range(seed * NOISE_SEED_STRIDE, seed * NOISE_SEED_STRIDE + cfg.num_samples)
            x_T = per_image_noise(shape, seeds, "cpu")
            for nfe in cfg.nfes:
                progress.update(cells, description=f"{cfg.method.name} NFE {nfe} seed {seed}")
                progress.reset(batches, total=n_batches, description="  sampling batches")
                t0 = time.perf_counter()
                samples, timing, counted = sample_cell(
                    cfg, model, probe, x_T, nfe, seed, warmup_nfe, lambda: progress.advance(batches)
                )
                if counted != expected_nfe[nfe]:
                    log(
                        f"[yellow]warning[/]: NFE {nfe} counted {counted} calls, the dry run {expected_nfe[nfe]}"
                    )
                t1 = time.perf_counter()
                progress.update(batches, description="  metrics")
                if DATASETS[ds].is_image:
                    samples = samples.clamp(-1, 1)
                metrics = cell_metrics(samples, ref, cfg.device)
                grid = _save_grid(cfg, samples, nfe, counted, seed)
                row = _row(
                    cfg,
                    nfe,
                    counted,
                    seed,
                    timing,
                    probe,
                    metrics,
                    ref,
                    env,
                    grid,
                    sample_seconds=t1 - t0,
                    metric_seconds=time.perf_counter() - t1,
                )
                upsert_row(cfg.results_dir, row)
                rows.append(row)
                progress.advance(cells)
    console.print(summary_table(rows, cfg))
    return rows


def _save_grid(cfg: BenchConfig, samples: Tensor, nfe_requested: int, nfe: int, seed: int) -> str:
    suffix = (
        ("-bf16" if cfg.bf16 else "")
        + ("-compiled" if cfg.compile else "")
        + ("-cuda" if cfg.device.type == "cuda" else "")
    )
    rel = (
        Path("grids")
        / cfg.preset.dataset
        / f"{cfg.method.name}-{cfg.preset.name}-nfe{nfe_requested}-seed{seed}{suffix}.png"
    )
    shown = samples if samples.dim() == 2 else samples[:GRID_SAMPLES]  # 2-D points: the whole cloud
    save_samples(shown, cfg.results_dir / rel, title=f"{cfg.method.name}, {nfe} NFE, seed {seed}")
    return str(rel)


def _row(
    cfg: BenchConfig,
    nfe_requested: int,
    nfe: int,
    seed: int,
    timing: Timing,
    probe: FlopProbe,
    metrics: dict[str, Any],
    ref: Reference,
    env: dict[str, Any],
    grid: str,
    **extra: float,
) -> dict[str, Any]:
    return {
        "dataset": cfg.preset.dataset,
        "preset": cfg.preset.name,
        "method": cfg.method.name,
        "sampler": cfg.method.sampler,
        "nfe": nfe,
        "seed": seed,
        "checkpoint": env["checkpoint"],
        "device": cfg.device.type,
        "dtype": cfg.dtype,
        "compiled": cfg.compile,
        "model": cfg.method.model,
        "nfe_requested": nfe_requested,
        "num_samples": cfg.num_samples,
        "batch_size": cfg.batch_size,
        "ms_per_image": timing.ms_per_image,
        "ms_per_nfe": timing.ms_per_batch / nfe,
        "images_per_s": timing.images_per_s,
        "cpu_ms_per_image": timing.cpu_ms_per_image,
        "timing_repeats": len(timing.times_ms),
        "ms_per_batch_min": min(timing.times_ms),
        "ms_per_batch_max": max(timing.times_ms),
        "peak_mem_mb": timing.peak_mem_mb,
        "peak_mem_kind": timing.peak_mem_kind,
        **probe.rates(nfe, timing, cfg.dtype),
        **metrics,
        "feature_extractor": ref.extractor.name,
        "extractor_accuracy": ref.extractor.accuracy if ref.extractor.accuracy is not None else math.nan,
        "reference_split": ref.split,
        "reference_n": ref.stats_n,
        "device_name": timing.device_name,
        "threads": timing.threads,
        "torch_version": env["torch_version"],
        "git_commit": env["git_commit"],
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset_source": env["dataset_source"],
        "checkpoint_path": env["checkpoint_path"],
        "grid": grid,
        **extra,
    }


def summary_table(rows: list[dict[str, Any]], cfg: BenchConfig) -> Table:
    table = Table(
        title=f"{cfg.method.name} on {cfg.preset.dataset} ({cfg.preset.name}, {cfg.device}, {cfg.dtype})"
    )
    cols = [
        ("NFE", "nfe", "{}"),
        ("seed", "seed", "{}"),
        ("ms/image", "ms_per_image", "{:.3f}"),
        ("FID", "fid", "{:.3f}"),
        ("precision", "precision", "{:.3f}"),
        ("recall", "recall", "{:.3f}"),
        ("coverage", "coverage", "{:.3f}"),
    ]
    if any(not math.isnan(r["modes"]) for r in rows):
        cols.append(("modes", "modes", "{:.0f}"))
    for title, _, _ in cols:
        table.add_column(title, justify="right")
    for r in rows:
        table.add_row(*(fmt.format(r[key]) for _, key, fmt in cols))
    return table
