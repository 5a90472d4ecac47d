"""A regression that needs no training: every sampler of the DDPM network run on the closed-form,
Bayes-optimal eps of the toy2d mixture, its samples and mode statistics pinned in a committed file.

For x0 ~ sum_k w_k N(mu_k, s^2 I) and x_t = sqrt(a) x0 + sqrt(1 - a) eps, x_t given component k is
N(sqrt(a) mu_k, v I) with v = a s^2 + 1 - a, and Cov(eps, x_t | k) = sqrt(1 - a) I, so

    E[eps | x_t] = sum_k r_k(x_t) sqrt(1 - a) (x_t - sqrt(a) mu_k) / v,
    r_k(x_t) = w_k N(x_t; sqrt(a) mu_k, v I) / sum_j w_j N(x_t; sqrt(a) mu_j, v I),

the minimiser of DDPM's eps-MSE (Ho et al. 2020) over all functions: what a perfectly trained network
returns. Computed in float64, responsibilities through log-softmax, so no sample is a rounding artefact.

The regression runs each method exactly as the harness does (x_T from ``noise.initial_noise``, per-image
``ImageNoise`` streams, ``Method.sample`` on the smoke preset's untrained DDPM model, whose schedule and
options the samplers read), in float64 so that the pins hold to 1e-6 on any machine. Every registered
method whose model is ``ddpm`` joins: a sampler added later on that network is run here without edits,
and fails until its cells are pinned (``python -m trilemma_bench.benchmark.regress --update --only oracle``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import TOY2D_CENTERS, TOY2D_STD
from ..denoisers import Denoiser
from ..noise import ImageNoise, initial_noise
from ..samplers import CountingModel
from .verdict import Check

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline" / "oracle.json"
MODEL = "ddpm"  # the network whose samplers are regressed: methods with ``method.model == MODEL``
PRESET = "smoke"  # toy2d: the preset whose DDPM configuration (T, schedule, clip_x0) the samplers read
NUM_SAMPLES = 1000
SEED = 0
MAX_NFE = 100  # each method's default NFE grid up to here: what a user runs, at a few seconds in all
PINNED = 16  # samples pinned one by one; the rest through their mean and std
SAMPLE_TOL = 1e-6  # float64 end to end: what differs between machines is rounding, ~1e-12 here


class MixtureEps(nn.Module):
    """eps(x_t, t) = E[eps | x_t] of an isotropic Gaussian mixture under the VP schedule ``alpha_bar``.

    ``t`` is index time on the grid of ``alpha_bar`` (fractional t interpolated as the
    :class:`~trilemma_bench.denoisers.Denoiser` contract does); the output has the dtype of ``x``,
    computed in float64.
    """

    def __init__(self, alpha_bar: Tensor, centers: Tensor = TOY2D_CENTERS, std: float = TOY2D_STD,
                 weights: Tensor | None = None):
        super().__init__()
        self.schedule = Denoiser(lambda *args: None, alpha_bar)  # only its alpha_bar_at: the samplers' rule
        self.centers = centers.detach().double().cpu()
        self.std = float(std)
        k = len(self.centers)
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else weights.double().cpu()
        if w.shape != (k,) or bool((w <= 0).any()):
            raise ValueError(f"weights must be {k} positive numbers, one per centre; got shape {tuple(w.shape)}")
        self.log_w = (w / w.sum()).log()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a = self.schedule.alpha_bar_at(torch.as_tensor(t).double().cpu()).expand(x.shape[0]).view(-1, 1, 1)
        v = a * self.std**2 + 1 - a
        diff = x.detach().double().cpu()[:, None, :] - a.sqrt() * self.centers[None]  # [B, K, D]
        log_r = torch.log_softmax(self.log_w - (diff**2).sum(-1) / (2 * v[:, :, 0]), dim=1)
        eps = (log_r.exp()[:, :, None] * diff).sum(1) * (1 - a[:, 0]).sqrt() / v[:, 0]
        return eps.to(x.device, x.dtype)


def methods() -> list[Any]:
    """Every registered method on the DDPM eps network, in registry order."""
    from ..methods import METHODS

    return [m for m in METHODS.values() if m.model == MODEL]


def nfe_grid(method: Any) -> list[int]:
    return [n for n in method.default_nfe if n <= MAX_NFE]


def _model() -> Any:
    from ..presets import PRESETS
    from ..train import build_model

    return build_model(MODEL, PRESETS[PRESET])


def oracle_samples(method: Any, nfe: int, *, n: int = NUM_SAMPLES, seed: int = SEED,
                   model: Any = None) -> tuple[Tensor, int]:
    """Samples (float64) of ``method`` at ``nfe`` on the Bayes-optimal eps, and the network calls counted."""
    from .config import sample_shape

    model = model if model is not None else _model()
    x_T = initial_noise(sample_shape(model, "toy2d"), seed, range(n)).double()
    net = CountingModel(MixtureEps(model.alpha_bar))
    with torch.no_grad():
        out = method.sample(model, x_T, nfe, net=net, noise=ImageNoise(seed, range(n)))
    return out, net.nfe


def cell_record(method: str, nfe_requested: int, samples: Tensor, nfe: int) -> dict[str, Any]:
    """What is pinned of one cell: the first samples, mean and std of all, the mode statistics."""
    from ..metrics import modes_toy2d

    x = samples.double()
    return {
        "method": method,
        "nfe_requested": nfe_requested,
        "nfe": nfe,
        "first": x[:PINNED].tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        **modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD),
    }


def run_cells(only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every (method, NFE) cell of every DDPM-network method (or of ``only``)."""
    model = _model()
    wanted = set(only) if only is not None else None
    records = []
    for method in methods():
        if wanted is not None and method.name not in wanted:
            continue
        for nfe in nfe_grid(method):
            samples, counted = oracle_samples(method, nfe, model=model)
            records.append(cell_record(method.name, nfe, samples, counted))
    return records


def save(records: list[dict[str, Any]], path: Path = BASELINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"num_samples": NUM_SAMPLES, "seed": SEED, "preset": PRESET, "dtype": "float64", "cells": records}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load(path: Path = BASELINE) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    if doc["num_samples"] != NUM_SAMPLES or doc["seed"] != SEED:
        raise ValueError(f"{path} was made with {doc['num_samples']} samples, seed {doc['seed']}; this code "
                         f"draws {NUM_SAMPLES}, seed {SEED}: re-pin with --update --only oracle")
    return doc["cells"]


def _max_diff(a: Any, b: Any) -> float:
    return float((torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)).abs().max())


def compare(baseline: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[Check]:
    """Samples within SAMPLE_TOL, NFE counted and mode statistics exactly as pinned; every cell present."""
    base = {(r["method"], r["nfe_requested"]): r for r in baseline}
    checks: list[Check] = []
    for r in now:
        key = (r["method"], r["nfe_requested"])
        name = f"oracle {r['method']} NFE {r['nfe_requested']}"
        if key not in base:
            checks.append(Check(name, "pinned", 1, 0, "not in the baseline: pin it with --update --only oracle",
                                False))
            continue
        b = base.pop(key)
        checks.append(Check(name, "nfe", b["nfe"], r["nfe"], "must be equal", b["nfe"] == r["nfe"]))
        for field in ("first", "mean", "std"):
            d = _max_diff(b[field], r[field]) if len(b[field]) == len(r[field]) else math.inf
            label = f"samples[:{PINNED}]" if field == "first" else f"sample {field}"
            checks.append(Check(name, label, 0.0, d, f"max |difference| <= {SAMPLE_TOL:g}", d <= SAMPLE_TOL))
        checks.append(Check(name, "modes", b["modes"], r["modes"], "must be equal", b["modes"] == r["modes"]))
        # A share of NUM_SAMPLES and a KL over the same histogram: equal counts give equal values, so
        # the only slack allowed is the summation's rounding.
        hq = round(b["high_quality"] * NUM_SAMPLES) == round(r["high_quality"] * NUM_SAMPLES)
        checks.append(Check(name, "high_quality", b["high_quality"], r["high_quality"], "must be equal", hq))
        kl = math.isclose(b["mode_kl"], r["mode_kl"], rel_tol=1e-9, abs_tol=1e-12)
        checks.append(Check(name, "mode_kl", b["mode_kl"], r["mode_kl"], "must be equal", kl))
    for (method, nfe) in base:
        checks.append(Check(f"oracle {method} NFE {nfe}", "present", 1, 0, "pinned cell not run", False))
    return checks
