"""What our sampler loops cost on top of the network: ours vs a bare loop of forward passes vs diffusers.

    .venv/bin/python benchmarks/bench_sampler_overhead.py [--batch 500] [--nfe 20] [--repeats 9] [--threads 1]

Seven loops drive the same network (the digits preset's UNet, eval mode, no_grad) from the same x_T
for the same number of network calls:

- bare: ``net(x, t)`` NFE times, timestep tensors made beforehand: the floor any sampler pays;
- ours: the ``ddim`` method exactly as the harness runs it (eta = 0, uniform skip, x0 not clipped);
- diffusers: ``DDIMScheduler`` (linear betas 1e-4..0.02, T = 1000, "leading" spacing: the same
  timesteps, asserted; ``clip_sample=False``) with ``scheduler.step`` after each call;
- ours_ancestral: the ``ddpm-fixedsmall`` method as the harness runs it (x0 clipped), drawing its noise
  from per-image streams (one generator per image: the price of batch-independent samples);
- diffusers_ancestral: ``DDPMScheduler`` on the same respaced timesteps (custom timesteps,
  ``fixed_small``, ``clip_sample=True``), one generator for the batch;
- ours_dpmpp: the ``dpmpp-2m`` method as the harness runs it (DPM-Solver++(2M), diffusers' defaults);
- diffusers_dpmpp: ``DPMSolverMultistepScheduler`` with its defaults (dpmsolver++, order 2, midpoint,
  linspace, final sigma 0; the same timesteps, asserted), ``set_timesteps`` then ``scheduler.step``
  after each call, as a user runs it per batch.

Two measurements, both printed and written to ``benchmarks/results/sampler_overhead.json``:

1. end to end: the three loops interleaved in a rotating order within each repeat; wall and process
   CPU time, median and minimum over repeats. On a shared machine these move by +-20% from one run of
   the same loop to the next, more than the 5% being judged;
2. decomposed, which a busy machine disturbs far less: the same loops with the network replaced by one
   that returns a ready tensor (what remains is each sampler's own per-step work), against the
   network's own time per call (minimum over calls). overhead = loop-only time per step / network
   time per call. This is the figure the 5% target is judged by.

The weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from trilemma_bench import samplers
from trilemma_bench.benchmark.timing import device_name
from trilemma_bench.methods import METHODS
from trilemma_bench.noise import ImageNoise
from trilemma_bench.presets import PRESETS
from trilemma_bench.train import build_model

RESULTS = Path(__file__).resolve().parent / "results" / "sampler_overhead.json"
Net = Callable[[Tensor, Tensor], Tensor]


def make_loops(net: Net, model: torch.nn.Module, x_T: Tensor, nfe: int) -> dict[str, Callable[[], object]]:
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    alpha_bar = model.alpha_bar
    batch = x_T.shape[0]
    seq = samplers.ddim_timesteps(len(alpha_bar), nfe)
    t_batches = [torch.full((batch,), t, dtype=torch.long) for t in reversed(seq)]
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="leading",
    )
    scheduler.set_timesteps(nfe)
    assert [int(t) for t in scheduler.timesteps] == list(reversed(seq)), "diffusers walks other timesteps"
    respaced = samplers.ddpm_respaced_timesteps(len(alpha_bar), nfe)
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         clip_sample=True, variance_type="fixed_small")
    ddpm.set_timesteps(timesteps=list(reversed(respaced)))
    dpmpp = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule="linear")
    dpmpp.set_timesteps(nfe)
    assert [int(t) for t in dpmpp.timesteps] == samplers.dpmpp_2m_timesteps(len(alpha_bar), nfe), "other timesteps"

    def bare() -> None:
        for t in t_batches:
            net(x_T, t)

    def ours() -> Tensor:
        return METHODS["ddim"].sample(model, x_T, nfe, net=net, noise=ImageNoise(0, range(batch)))

    def diffusers_loop() -> Tensor:
        x = x_T
        for t in scheduler.timesteps:
            eps = net(x, torch.full((batch,), int(t), dtype=torch.long))
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x

    def ours_ancestral() -> Tensor:
        return METHODS["ddpm-fixedsmall"].sample(model, x_T, nfe, net=net, noise=ImageNoise(0, range(batch)))

    def diffusers_ancestral() -> Tensor:
        x, g = x_T, torch.Generator().manual_seed(0)
        for t in ddpm.timesteps:
            eps = net(x, torch.full((batch,), int(t), dtype=torch.long))
            x = ddpm.step(eps, t, x, generator=g).prev_sample
        return x

    def ours_dpmpp() -> Tensor:
        return METHODS["dpmpp-2m"].sample(model, x_T, nfe, net=net, noise=ImageNoise(0, range(batch)))

    def diffusers_dpmpp() -> Tensor:
        x = x_T
        dpmpp.set_timesteps(nfe)  # resets the multistep history for a new batch
        for t in dpmpp.timesteps:
            eps = net(x, torch.full((batch,), int(t), dtype=torch.long))
            x = dpmpp.step(eps, t, x).prev_sample
        return x

    return {"bare": bare, "ours": ours, "diffusers": diffusers_loop, "ours_ancestral": ours_ancestral,
            "diffusers_ancestral": diffusers_ancestral, "ours_dpmpp": ours_dpmpp, "diffusers_dpmpp": diffusers_dpmpp}


def interleaved(loops: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each loop per repeat, after one warm-up each; order rotates per repeat."""
    names = list(loops)
    out = {kind: {name: [] for name in names} for kind in ("wall", "cpu")}
    for fn in loops.values():
        fn()
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            loops[name]()
            out["wall"][name].append(time.perf_counter() - t0)
            out["cpu"][name].append(time.process_time() - c0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--nfe", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = build_model("ddpm", PRESETS["digits"]).eval()
    net = model.denoiser()
    x_T = torch.randn(args.batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    eps = torch.randn_like(x_T)

    with torch.no_grad():
        full = interleaved(make_loops(net, model, x_T, args.nfe), args.repeats)
        # The loops alone: a network that costs nothing. Cheap, so many repeats and the minimum.
        alone = interleaved(make_loops(lambda x, t: eps, model, x_T, args.nfe), 50)
        t_mid = torch.full((args.batch,), 500, dtype=torch.long)
        per_call = []
        for _ in range(max(10, args.nfe)):
            c0 = time.process_time()
            net(x_T, t_mid)
            per_call.append(time.process_time() - c0)

    net_ms = 1000 * min(per_call)
    loop_ms = {name: 1000 * min(v) / args.nfe for name, v in alone["cpu"].items()}
    compared = ("ours", "diffusers", "ours_ancestral", "diffusers_ancestral", "ours_dpmpp", "diffusers_dpmpp")
    overhead = {name: (loop_ms[name] - loop_ms["bare"]) / net_ms for name in compared}
    stats = {
        kind: {name: {"median": statistics.median(v), "min": min(v)} for name, v in by.items()}
        for kind, by in full.items()
    }
    ratios = {
        f"{kind}_{how}": {f"{name}_over_bare": s[name][how] / s["bare"][how] for name in compared}
        for kind, s in stats.items()
        for how in ("median", "min")
    }
    result = {
        "machine": device_name(torch.device("cpu")),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "network": f"digits UNet, {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters",
        "batch": args.batch,
        "nfe": args.nfe,
        "repeats": args.repeats,
        "decomposed": {
            "network_cpu_ms_per_call_min": net_ms,
            "loop_only_cpu_ms_per_step_min": loop_ms,
            "overhead_over_bare": overhead,
        },
        "end_to_end_seconds": stats,
        "end_to_end_ratios": ratios,
        "end_to_end_all_seconds": full,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    print(
        f"{result['machine']}, torch {result['torch']}, {result['network']}, batch {args.batch}, NFE {args.nfe}, "
        f"{args.repeats} repeats, load average {result['load_average'][0]:.1f}"
    )
    print("end to end (interleaved; on a shared machine +-20% noise between runs of one loop):")
    for name in full["cpu"]:
        c, w = stats["cpu"][name], stats["wall"][name]
        print(
            f"  {name:19s} CPU median {c['median']:7.3f} s (min {c['min']:7.3f})   wall median {w['median']:7.3f} s "
            f"(min {w['min']:7.3f})"
        )
    for key, r in ratios.items():
        print(f"  {key:11s} " + "   ".join(f"{name.removesuffix('_over_bare')} / bare = {v:.3f}" for name, v in r.items()))
    print("decomposed (the figure to judge by):")
    print(f"  network: {net_ms:.2f} CPU ms per call")
    for name in compared:
        print(
            f"  {name:19s} loop alone {loop_ms[name]:.3f} ms per step -> overhead over bare "
            f"{100 * overhead[name]:+.2f}% (target for ours: <= 5%)"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
