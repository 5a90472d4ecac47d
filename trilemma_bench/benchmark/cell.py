"""One benchmark cell: sample every image of a seed at one NFE under the timing protocol, then its row.

Random draws: image i of seed s starts from its own x_T and draws every later noise from its own
streams (:mod:`trilemma_bench.noise`), so image i is the same whatever the batch size, and every NFE of
a seed starts from the same x_T (a paired comparison across NFEs and methods). The network is wrapped
in a counter: the NFE recorded is the number of network calls per batch, measured.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..grid import save_samples
from ..noise import ImageNoise
from ..report_utils import log
from ..samplers import CountingModel
from .config import BenchConfig
from .timing import FlopProbe, Timing, math_precision, precision, time_batches

GRID_SAMPLES = 64


def sample_cell(
    cfg: BenchConfig,
    model: Any,
    net: torch.nn.Module,
    x_T: Tensor,
    nfe: int,
    seed: int,
    warmup_nfe: int,
    after_batch: Callable[[], None] = lambda: None,
    decoder: torch.nn.Module | None = None,
    first_image: int = 0,
) -> tuple[Tensor, Timing, int, Timing | None]:
    """Timed sampling of all of ``x_T`` at ``nfe``: (samples on CPU in float32, the sampler's timing, measured
    NFE, the decoder's timing). ``x_T`` holds images ``first_image`` on (a process's block of the cell).
    A latent method's ``decoder`` maps the sampler's output to images; it is timed apart, over the same
    fixed batches by the same protocol."""
    counter = CountingModel(net)
    B = cfg.batch_size
    n_full = len(x_T) // B
    counts: list[int] = []
    x_T = x_T.to(cfg.device)  # moved before the clock starts: the timed region is the sampler only

    def run(i: int, n: int = B, at_nfe: int = nfe, record: bool = True) -> Tensor:
        first = i * B
        noise = ImageNoise(seed, range(first_image + first, first_image + first + n))
        counter.nfe = 0
        with precision(cfg.device, cfg.bf16):
            out = cfg.method.sample(model, x_T[first : first + n], at_nfe, net=counter, noise=noise)
        if record:
            counts.append(counter.nfe)
        return out

    outputs, timing = time_batches(
        run,
        n_full,
        B,
        device=cfg.device,
        min_repeats=cfg.min_repeats,
        warmup=lambda: run(0, at_nfe=warmup_nfe, record=False),
        after_batch=lambda i: after_batch(),
    )
    if len(x_T) % B:  # the last, smaller batch is sampled but not timed: the protocol fixes the batch
        outputs.append(run(n_full, len(x_T) % B))
        after_batch()
    if len(set(counts)) != 1:
        log(f"[yellow]warning[/]: {cfg.method.name} made {sorted(set(counts))} network calls per batch at NFE {nfe}")
    decode_timing = None
    if decoder is not None:
        def decode(i: int) -> Tensor:
            with torch.no_grad(), precision(cfg.device, cfg.bf16):
                return decoder(outputs[i])

        decoded, decode_timing = time_batches(decode, n_full, B, device=cfg.device, min_repeats=cfg.min_repeats)
        outputs = decoded + [decode(i) for i in range(n_full, len(outputs))]
    samples = torch.cat([o.float().cpu() for o in outputs])
    return samples, timing, max(counts), decode_timing


def save_grid(cfg: BenchConfig, samples: Tensor, name: str, title: str) -> str:
    """A PNG of the first samples under ``<results>/grids/<dataset>/``; returns its path relative to results."""
    suffix = (
        ("-bf16" if cfg.bf16 else "")
        + ("-compiled" if cfg.compile else "")
        + ("-cuda" if cfg.device.type == "cuda" else "")
    )  # channels_last and CUDA graphs change the speed, not the samples: same grid
    rel = Path("grids") / cfg.preset.dataset / f"{name}{suffix}.png"
    shown = samples if samples.dim() == 2 else samples[:GRID_SAMPLES]  # 2-D points: the whole cloud
    save_samples(shown, cfg.results_dir / rel, title=title)
    return str(rel)


def base_row(cfg: BenchConfig, env: dict[str, Any]) -> dict[str, Any]:
    """The columns every row of this run shares: the setting and the environment."""
    return {
        "dataset": cfg.preset.dataset,
        "preset": cfg.preset.name,
        "device": cfg.device.type,
        "dtype": cfg.dtype,
        "compiled": cfg.compile,
        "world_size": env.get("world_size", 1),
        "channels_last": cfg.channels_last,
        "cuda_graphs": cfg.cuda_graphs,
        "num_samples": cfg.num_samples,
        "batch_size": cfg.batch_size,
        **math_precision(cfg.device, cfg.dtype),
        "device_name": env["device_name"],
        "threads": env["threads"],
        "torch_version": env["torch_version"],
        "git_commit": env["git_commit"],
        "dataset_source": env["dataset_source"],
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def cell_row(
    cfg: BenchConfig,
    env: dict[str, Any],
    *,
    nfe_requested: int,
    nfe: int,
    seed: int,
    model: str,
    checkpoint: str,
    checkpoint_path: str,
    timing: Timing,
    probe: FlopProbe,
    metrics: dict[str, Any],
    decode_timing: Timing | None = None,
    decoder_probe: FlopProbe | None = None,
    images_per_s: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``images_per_s``: the throughput of all processes together (default: this one's)."""
    peak = math_precision(cfg.device, cfg.dtype)["peak_precision"]
    decoding: dict[str, Any] = {}
    ms_per_image = timing.ms_per_image
    if decode_timing is not None and decoder_probe is not None:
        # Sampling and decoding are timed apart; a latent method's time per image is their sum.
        rates = decoder_probe.rates(1, decode_timing, peak)
        decoding = {"sampler_ms_per_image": timing.ms_per_image, "decoder_ms_per_image": decode_timing.ms_per_image,
                    "decoder_gflops_per_image": rates["gflops_per_image"]}
        ms_per_image += decode_timing.ms_per_image
    return {
        **base_row(cfg, env),
        "method": cfg.method.name,
        "sampler": cfg.method.sampler,
        "nfe": nfe,
        "seed": seed,
        "checkpoint": checkpoint,
        "model": model,
        "nfe_requested": nfe_requested,
        "ms_per_image": ms_per_image,
        "ms_per_nfe": timing.ms_per_batch / nfe,
        "images_per_s": images_per_s if images_per_s is not None else 1000.0 / ms_per_image,
        **decoding,
        "cpu_ms_per_image": timing.cpu_ms_per_image,
        "timing_statistic": Timing.STATISTIC,
        "timing_repeats": len(timing.times_ms),
        "warmup_seconds": timing.warmup_ms / 1000.0,
        "ms_per_batch_min": min(timing.times_ms),
        "ms_per_batch_max": max(timing.times_ms),
        "peak_mem_mb": timing.peak_mem_mb,
        "peak_mem_kind": timing.peak_mem_kind,
        **probe.rates(nfe, timing, peak),
        **metrics,
        "checkpoint_path": checkpoint_path,
        **extra,
    }


def real_row(cfg: BenchConfig, env: dict[str, Any], *, sampler: str, seed: int, real_n: int,
             metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A row of real images scored like a cell (method ``real``, NFE 0, no timing)."""
    return {
        **base_row(cfg, env),
        "method": "real",
        "sampler": sampler,
        "nfe": 0,
        "seed": seed,
        "checkpoint": f"data:{env['dataset_source']}",
        "model": "real",
        "nfe_requested": 0,
        "real_n": real_n,
        "ms_per_image": math.nan,
        **metrics,
        **extra,
    }
