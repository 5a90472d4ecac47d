"""Bits per dimension of test images: VDM's variational bound and DDPM's (Ho et al. 2020), on the same discrete data.

Both bound -log2 P(k) / D for the same pixels k in {0..V-1} (V = the dataset's levels), so the numbers compare:
each model embeds k as it was trained (DDPM: 2k/(V-1) - 1, the DataModule's encoding; VDM: the bin centre
2(k + 0.5)/V - 1) and ends in a decoder that is a distribution over the V values of k:

- DDPM: a Gaussian at the clipped x0 prediction from t = 1, integrated over k's bin [x - 1/(V-1), x + 1/(V-1)],
  the end bins running to -inf and +inf (Ho et al.'s discretized decoder, written for any V, with the exact normal
  CDF where their code uses a tanh approximation); the full bound sums the prior KL, the T - 1 KL terms and the
  decoder, each at its own draw of x_t (their ``calc_bpd_loop``, clip_denoised=True): T network calls per batch.
- VDM: a softmax over the V values with logits -0.5 ((z_0/alpha_0 - c_k) / sigma_0 * alpha_0)^2, plus the prior KL
  and the continuous-time diffusion term, whose integral over t is estimated per image at ``time_samples``
  stratified times (u + j/n) mod 1 (one uniform u per image: unbiased).

Draws come from the "likelihood" stream of each test image (:mod:`trilemma_bench.noise`), so image i's estimate is
the same whatever the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .denoisers import Denoiser, NoiseSource, eps_denoiser
from .methods.ddpm import DDPM
from .methods.vdm import VDM, data_to_levels, nats_to_bpd
from .schedules import posterior_coefficients_from_alpha_bar

TIME_SAMPLES = 64  # VDM: times per image for the diffusion term
# Methods whose model has a likelihood bound, and how the bound is taken (DDPM: the sampler's variance).
def likelihood_of(method: str) -> str | None:
    """The bound a method declares (``Method.likelihood``), None when it has none or is unknown."""
    from .methods import METHODS, get_method

    return get_method(method).likelihood if method in METHODS else None


def _with_likelihood() -> list[str]:
    from .methods import METHODS

    return [m.name for m in METHODS.values() if m.likelihood is not None]


def _uniform(noise: NoiseSource, x: Tensor) -> Tensor:
    """One U(0, 1) per image, from the first coordinate of a standard normal draw of its stream."""
    return torch.special.ndtr(noise.randn_like(x, "likelihood").flatten(1)[:, 0].double()).float()


# --- VDM ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def vdm_bpd_terms(model: VDM, x: Tensor, *, noise: NoiseSource, time_samples: int = TIME_SAMPLES) -> dict[str, Tensor]:
    """Per image, bits/dim: the bound's diffusion, prior and reconstruction terms (EMA weights), and their sum."""
    if time_samples < 1:
        raise ValueError(f"time_samples must be positive, got {time_samples}")
    u = _uniform(noise, x)
    sums: dict[str, Tensor] = {}
    for j in range(time_samples):
        t = torch.remainder(u + j / time_samples, 1.0).to(x.device)
        eps, eps_0 = noise.randn_like(x, "likelihood"), noise.randn_like(x, "likelihood")
        for name, v in model.terms(x, t=t, eps=eps, eps_0=eps_0, ema=True).items():
            sums[name] = sums.get(name, 0) + v.double() / time_samples
    out = {name: nats_to_bpd(v, x) for name, v in sums.items()}
    out["bpd"] = sum(out.values())
    return out


# --- DDPM --------------------------------------------------------------------------------------------------------

def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _log1mexp(a: Tensor) -> Tensor:
    """log(1 - e^a) for a <= 0, accurate at both ends."""
    return torch.where(a > -math.log(2), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def discretized_gaussian_log_prob(k: Tensor, mean: Tensor, log_scale: Tensor, levels: int) -> Tensor:
    """log P(k) of a Gaussian (float64) integrated over k's bin in the encoding x = 2k/(V-1) - 1: bins of width
    2/(V-1) centred on x, the first and last bins open to -inf and +inf."""
    x = 2 * k.double() / (levels - 1) - 1
    half, inv = 1.0 / (levels - 1), torch.exp(-log_scale.double())
    hi = torch.where(k == levels - 1, math.inf, (x + half - mean) * inv)
    lo = torch.where(k == 0, -math.inf, (x - half - mean) * inv)
    # Both ends into the left tail, where log_ndtr keeps its digits: P = Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi).
    flip = (lo + hi) > 0
    hi, lo = torch.where(flip, -lo, hi), torch.where(flip, -hi, lo)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + _log1mexp(log_lo - log_hi)


def ddpm_model_log_variance(alpha_bar: Tensor, variance: str) -> Tensor:
    """Ho et al.'s fixed log-variances per timestep; at t = 0 both use beta-tilde_1 (their decoder's variance)."""
    q = posterior_coefficients_from_alpha_bar(alpha_bar)
    beta, post = q["beta"], q["variance"]
    if variance == "fixedlarge":
        return torch.log(torch.cat([post[1:2], beta[1:]]))
    if variance == "fixedsmall":
        return torch.log(torch.cat([post[1:2], post[1:]]))
    raise ValueError(f"unknown variance {variance!r}: use 'fixedlarge' or 'fixedsmall'")


@torch.no_grad()
def ddpm_bpd_terms(model: Denoiser, x: Tensor, *, levels: int, variance: str, clip_x0: bool,
                   noise: NoiseSource) -> dict[str, Tensor]:
    """Ho et al.'s full bound per image, bits/dim: prior KL(q(x_T | x0) || N(0, I)), the sum over t >= 1 of
    KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), and the discretized decoder -log p(x0 | x_1), each term at its
    own draw of x_t. ``model`` is the eps Denoiser on its grid (index t = 0 is x_1)."""
    a = model.alpha_bar.double()
    T = len(a)
    q = posterior_coefficients_from_alpha_bar(a)
    post, coef0, coef_t = q["variance"], q["x0"], q["xt"]
    post_logvar = torch.log(torch.cat([post[1:2], post[1:]]))  # clipped: beta-tilde is 0 at t = 0
    model_logvar = ddpm_model_log_variance(a, variance)
    k = data_to_levels(x, levels)
    x0 = x.double()
    per_image = lambda v: v.flatten(1).sum(1)
    prior = per_image(normal_kl(a[-1].sqrt() * x0, torch.log1p(-a[-1]).expand_as(x0), torch.zeros_like(x0),
                                torch.zeros_like(x0)))
    kl = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    decoder = torch.zeros_like(kl)
    for t in reversed(range(T)):
        x_t = a[t].sqrt() * x0 + (1 - a[t]).sqrt() * noise.randn_like(x, "likelihood").double()
        eps = model(x_t.to(x.dtype), torch.full((len(x),), t, device=x.device, dtype=torch.long)).double()
        x0_hat = (x_t - (1 - a[t]).sqrt() * eps) / a[t].sqrt()
        if clip_x0:
            x0_hat = x0_hat.clamp(-1, 1)
        mean = coef0[t] * x0_hat + coef_t[t] * x_t
        if t == 0:
            decoder = -per_image(discretized_gaussian_log_prob(k, mean, 0.5 * model_logvar[0].expand_as(mean), levels))
        else:
            true_mean = coef0[t] * x0 + coef_t[t] * x_t
            kl += per_image(normal_kl(true_mean, post_logvar[t].expand_as(x0), mean, model_logvar[t].expand_as(x0)))
    out = {"prior": nats_to_bpd(prior, x), "kl": nats_to_bpd(kl, x), "decoder": nats_to_bpd(decoder, x)}
    out["bpd"] = out["prior"] + out["kl"] + out["decoder"]
    return out


# --- one call for any model with a likelihood --------------------------------------------------------------------

def _levels(model: torch.nn.Module) -> int:
    from .data import DATASETS

    dataset = (model.hparams.get("training_config") or {}).get("dataset")
    levels = DATASETS[dataset].levels if dataset in DATASETS else None
    if levels is None:
        raise ValueError(f"bits/dim needs discrete data; this model was trained on {dataset!r}, which has no pixel levels")
    return levels


def bpd_terms(model: torch.nn.Module, x: Tensor, *, variance: str = "fixedlarge", noise: NoiseSource | None = None,
              time_samples: int = TIME_SAMPLES) -> dict[str, Tensor]:
    """Per image bits/dim of ``x`` (DataModule encoding) and the terms of the bound; ``variance`` picks DDPM's
    (its sampler's); ``noise`` defaults to the "likelihood" streams of images 0..B-1 of seed 0."""
    from .noise import ImageNoise

    noise = noise if noise is not None else ImageNoise(0, range(len(x)))
    if isinstance(model, VDM):
        return vdm_bpd_terms(model, x, noise=noise, time_samples=time_samples)
    if isinstance(model, DDPM):
        den = eps_denoiser(model.denoiser(), model.alpha_bar)
        return ddpm_bpd_terms(den, x, levels=_levels(model), variance=variance, clip_x0=model.hparams.clip_x0,
                              noise=noise)
    raise ValueError(f"no likelihood for {type(model).__name__}: bits/dim is defined for VDM and DDPM")


def bits_per_dim(model: torch.nn.Module, x: Tensor, **kwargs) -> Tensor:
    """Per image bits/dim bound of ``x`` under ``model`` (VDM or DDPM); keyword arguments as :func:`bpd_terms`."""
    return bpd_terms(model, x, **kwargs)["bpd"]


@dataclass(frozen=True)
class BpdResult:
    mean: float
    sem: float  # standard error of the mean over images
    n: int
    terms: dict[str, float]


def check_request(method: str, dataset: str, split: str, num_images: int | None) -> tuple[Tensor, int]:
    """The split's images and how many to score, or a ValueError saying what to change (before any training)."""
    from .data import DATASETS, load_split

    if likelihood_of(method) is None:
        raise ValueError(f"method {method!r} has no likelihood here: use one of {', '.join(_with_likelihood())}")
    if DATASETS[dataset].levels is None:
        raise ValueError(f"bits/dim needs discrete data; {dataset} has no pixel levels")
    x, _ = load_split(dataset, split)
    n = len(x) if num_images is None else num_images
    if not 2 <= n <= len(x):
        raise ValueError(f"--num-images must be between 2 and {len(x)} (the {dataset} {split} split), got {n}")
    return x, n


def evaluate_bpd(method: str, model: torch.nn.Module, dataset: str, *, split: str = "test", num_images: int | None = None,
                 batch_size: int = 500, seed: int = 0, time_samples: int = TIME_SAMPLES,
                 device: torch.device | str = "cpu") -> BpdResult:
    """Mean bits/dim over the first ``num_images`` of a split (all by default) with its standard error."""
    from .noise import ImageNoise

    x, n = check_request(method, dataset, split, num_images)
    model = model.to(device).eval()
    rows: dict[str, list[Tensor]] = {}
    for start in range(0, n, batch_size):
        idx = range(start, min(n, start + batch_size))
        terms = bpd_terms(model, x[idx.start:idx.stop].to(device), variance=likelihood_of(method),
                          noise=ImageNoise(seed, idx), time_samples=time_samples)
        for name, v in terms.items():
            rows.setdefault(name, []).append(v.cpu())
    per = {name: torch.cat(v) for name, v in rows.items()}
    bpd = per.pop("bpd")
    return BpdResult(float(bpd.mean()), float(bpd.std() / math.sqrt(n)), n, {k: float(v.mean()) for k, v in per.items()})


def bpd_columns(method: str, model: torch.nn.Module, dataset: str, *, num_images: int, split: str = "test",
                device: torch.device | str = "cpu") -> dict[str, float | int | str]:
    """The results table's likelihood columns for ``method``'s model: bits/dim of the first ``num_images`` of
    ``split`` (the whole split if smaller), or {} where there is no bound (no likelihood, no pixel levels, 0)."""
    from .data import DATASETS, load_split

    if num_images == 0 or likelihood_of(method) is None or DATASETS[dataset].levels is None:
        return {}
    n = min(num_images, len(load_split(dataset, split)[0]))
    res = evaluate_bpd(method, model, dataset, split=split, num_images=n, device=device)
    return {"bpd": res.mean, "bpd_sem": res.sem, "bpd_n": res.n, "bpd_split": split}
