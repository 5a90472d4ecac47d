"""How close one network call gets to the hardware's limit: every method's network at the `paper` size,
eager against compiled against compiled-bf16, batch 1 and 256.

    .venv/bin/python benchmarks/bench_gpu_timing.py                      # on a GPU: the README's table
    .venv/bin/python benchmarks/bench_gpu_timing.py --device cpu --preset digits --batches 1,8 --modes eager

For each network the `paper` preset configures (the DDPM paper's 35.7M-parameter CIFAR-10 UNet, and each
other model's network where its preset has one; a latent model's decoder too), each mode and batch:
warm-up calls (compilation included, timed apart), then the timed calls (CUDA events on a GPU,
perf_counter on a CPU), median of repeats. FLOPs per call are counted once per network with
``torch.utils.flop_counter`` (matmuls, convolutions, attention); achieved FLOP/s are compared with the
datasheet peak of the precision that ran (bf16 under autocast; TF32 when float32 matmuls may use it).

The weights are random: a dense network's kernels do the same work whatever the values (no data-
dependent branches, no sparsity), so timing needs no trained weights.

Writes ``benchmarks/results/gpu_timing.json`` (or ``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from trilemma_bench.benchmark.timing import device_name, math_precision, peak_flops
from trilemma_bench.data import DATASETS
from trilemma_bench.methods import METHODS, MODELS
from trilemma_bench.presets import get_preset
from trilemma_bench.train import build_model

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_timing.json"
MODES = ("eager", "compiled", "compiled-bf16")


def networks(preset_name: str) -> dict[str, tuple[nn.Module, tuple[int, ...], Callable[[int], tuple]]]:
    """name -> (network, input shape per image, extra inputs for a batch) for every model of the preset."""
    preset = get_preset(preset_name)
    out = {}
    for name in MODELS:
        if name not in preset.models:
            continue
        model = build_model(name, preset).eval()
        if not hasattr(model, "denoiser"):  # an autoencoder alone: timed as the latent model's decoder
            continue
        shape = tuple(getattr(model, "sample_shape", None) or DATASETS[preset.dataset].shape)
        net = model.denoiser()
        # DDGAN's generator takes the integer step index (0..T-1) and a latent z; the others a timestep of 1000.
        nz = getattr(model, "nz", 0)
        t = 1 if nz else 500
        out[name] = (net, shape, lambda b, t=t, nz=nz: (torch.full((b,), t, dtype=torch.long),
                                                         *((torch.randn(b, nz),) if nz else ())))
        decoders = [m.decoder for m in METHODS.values() if m.model == name and m.decoder is not None]
        if decoders:
            out[f"{name}-decoder"] = (decoders[0](model), shape, lambda b: ())
    return out


def count_flops(net: nn.Module, x: Tensor, extra: tuple) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, *extra)
    return counter.get_total_flops()


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> tuple[float, list[float]]:
    """(warm-up seconds, per-call ms of the timed repeats)."""
    w0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warm = time.perf_counter() - w0
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return warm, times


def measure(net: nn.Module, shape: tuple[int, ...], extra_for: Callable[[int], tuple], batch: int, mode: str,
            device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    x = torch.randn(batch, *shape, device=device)
    extra = tuple(e.to(device) for e in extra_for(batch))
    flops = count_flops(net, x, extra)
    run = torch.compile(net, dynamic=False) if mode.startswith("compiled") else net
    dtype = "bfloat16" if mode.endswith("bf16") else "float32"

    def call() -> Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            return run(x, *extra)

    warm, times = time_calls(call, device, warmup, repeats)
    ms = statistics.median(times)
    precision = math_precision(device, dtype)["peak_precision"]
    achieved = flops / (ms / 1000)
    peak = peak_flops(device_name(device), precision) if device.type == "cuda" else float("nan")
    return {"batch": batch, "mode": mode, "precision": precision, "ms_per_call": ms, "ms_per_image": ms / batch,
            "ms_min": min(times), "ms_max": max(times), "repeats": repeats, "warmup_seconds": warm,
            "gflops_per_image": flops / batch / 1e9, "achieved_tflops": achieved / 1e12,
            "pct_of_peak": 100 * achieved / peak}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: run on a GPU, or pass --device cpu for a check of the script")
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, (net, shape, extra) in networks(args.preset).items():
        net = net.to(device).eval()
        params = sum(p.numel() for p in net.parameters())
        for batch in (int(b) for b in args.batches.split(",")):
            for mode in modes:
                row = {"network": name, "params_m": params / 1e6,
                       **measure(net, shape, extra, batch, mode, device, args.warmup, args.repeats)}
                rows.append(row)
                print(f"{name:14s} batch {batch:4d} {mode:14s} {row['ms_per_image']:9.4f} ms/image "
                      f"{row['achieved_tflops']:8.2f} TFLOP/s ({row['pct_of_peak']:.1f}% of {row['precision']} peak)",
                      flush=True)
    result = {"device": device_name(device), "torch": torch.__version__, "preset": args.preset,
              "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
              "threads": torch.get_num_threads(), "weights": "random (see the docstring)", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{result['device']}, torch {result['torch']}\n")
    print("| network | batch | mode | ms/image | GFLOP/image | TFLOP/s | % of peak (precision) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['network']} | {r['batch']} | {r['mode']} | {r['ms_per_image']:.4g} | {r['gflops_per_image']:.3g} "
              f"| {r['achieved_tflops']:.3g} | {r['pct_of_peak']:.1f} ({r['precision']}) |")
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
