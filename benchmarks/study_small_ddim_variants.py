"""Why DDIM stalls on `small` (MNIST, 6,000 steps): DDIM at 50 NFE, three variants, same network and noise.

    .venv/bin/python benchmarks/study_small_ddim_variants.py      # after `trilemma-bench train --preset small`

eta=0 unclipped (the benchmark's DDIM, as in Song et al.'s code), eta=0 with x0 clipped and eps recomputed
from the clipped x0 (diffusers' ``use_clipped_model_output``), and eta=1 (stochastic). 1,000 samples, seed 0
noise as in the benchmark, scored as the benchmark scores them. Prints one JSON line per variant; the
figures in the README came from this script, saved to ``benchmarks/results/small_ddim_variants.jsonl``.

The committed figures predate the scoring rules of issue 8 (they scored unquantized samples against the
training split, with one noise generator per batch); run now, the script scores as the harness does today.
"""

from __future__ import annotations

import json
import time
import types

import torch
from torch import Tensor, nn

from trilemma_bench.benchmark.scoring import load_reference, score
from trilemma_bench.data import DATASETS
from trilemma_bench.denoisers import eps_denoiser
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import get_preset
from trilemma_bench.quantize import quantize
from trilemma_bench.samplers import ddim_sample
from trilemma_bench.train import train_model

N = 1000


class ClippedEps(nn.Module):
    """The eps implied by the clipped x0 prediction, so DDIM steps along the clipped x0."""

    def __init__(self, net: nn.Module, alpha_bar: Tensor) -> None:
        super().__init__()
        self.net, self.alpha_bar = net, alpha_bar.double()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a = self.alpha_bar[t].view(-1, 1, 1, 1).to(x.dtype)
        x0 = ((x - (1 - a).sqrt() * self.net(x, t)) / a.sqrt()).clamp(-1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


def main() -> None:
    torch.set_num_threads(1)
    preset = get_preset("small")
    model, _ = train_model("ddpm", preset)
    net = model.denoiser()
    cfg = types.SimpleNamespace(preset=preset, extractor="domain", device=torch.device("cpu"), num_samples=N)
    ref = load_reference(cfg)
    x_T = initial_noise(DATASETS["mnist"].shape, 0, range(N))
    variants = [("eta0-unclipped", net, 0.0), ("eta0-clip-recompute-eps", ClippedEps(net, model.alpha_bar), 0.0),
                ("eta1-unclipped", net, 1.0)]
    for name, eps_model, eta in variants:
        start = time.perf_counter()
        x = torch.cat([
            ddim_sample(eps_denoiser(eps_model, model.alpha_bar), x_T[i : i + 250], nfe=50, eta=eta,
                        noise=ImageNoise(0, range(i, i + 250)))
            for i in range(0, N, 250)
        ])
        m = score(quantize(x, ref.levels), ref, torch.device("cpu"))
        print(json.dumps({"variant": name, "nfe": 50, "n": N, **{k: round(m[k], 3) for k in
                          ("fid", "precision", "recall", "coverage")}, "sec": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
