"""``trilemma-bench diagnose``: tell a broken pipeline from an under-trained network.

The oracle is the exact denoiser of the model's own training distribution, the finite set of training points
{x_i} (a latent model: their scaled latent means). For x_t = sqrt(a) x0 + sqrt(1 - a) eps with x0 uniform over
the points, the posterior over them is softmax_i(-||x_t - sqrt(a) x_i||^2 / 2(1 - a)), so

    E[eps | x_t] = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a),   E[x0 | x_t] = sum_i r_i(x_t) x_i,

the minimiser of the eps-MSE over all functions (computed in float64, chunked over the points). A GAN's
generator is replaced by a draw from that posterior. The oracle runs through the method's own sampler and
decoder at each NFE, beside the learned network, and both are compared with the training points: if the oracle
fails too, the pipeline is at fault; if only the network fails, the network is. The learned eps's error
against the oracle's, per noise level, names where the network is weakest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .denoisers import Denoiser
from .generate import generate
from .metrics.fid import fid as frechet_distance

BLOCK_VALUES = 2**24  # float64 logits per block of the softmax over training points (128 MB)


def posterior_mean(x_t: Tensor, a: Tensor, points: Tensor) -> Tensor:
    """E[x0 | x_t] under x0 uniform over ``points`` [N, D] (x_t [B, D], a [B] the alpha-bar), float64,
    the softmax accumulated over blocks of points (a running log-sum-exp)."""
    x, a = x_t.double(), a.double().view(-1, 1)
    var = (1 - a).clamp_min(1e-12)
    top = torch.full((len(x), 1), -math.inf, dtype=torch.float64)
    num = torch.zeros_like(x)
    den = torch.zeros(len(x), 1, dtype=torch.float64)
    chunk = max(1, BLOCK_VALUES // max(1, len(x)))  # a [B, chunk] block of logits at a time
    for block in points.double().split(chunk):
        # -||x - sqrt(a) p||^2 / 2(1 - a) less its ||x||^2 term, the same for every point (the softmax drops it):
        # a matrix product, 30x faster on a CPU than the [B, chunk, D] differences (MNIST latents: minutes, not
        # hours); in float64 the rounding it adds is ~1e-13 against logit gaps of order one.
        logit = (2 * a.sqrt() * (x @ block.T) - a * (block * block).sum(1)) / (2 * var)
        new_top = torch.maximum(top, logit.max(1, keepdim=True).values)
        scale = (top - new_top).exp()
        w = (logit - new_top).exp()
        num, den, top = num * scale + w @ block, den * scale + w.sum(1, keepdim=True), new_top
    return num / den


def posterior_draw(x_t: Tensor, a: Tensor, points: Tensor, u: Tensor) -> Tensor:
    """A training point drawn from the posterior given x_t, by the uniforms ``u`` [B] (inverse CDF)."""
    x, a = x_t.double(), a.double().view(-1, 1)
    # ||x - sqrt(a) p||^2 = a ||x / sqrt(a) - p||^2, distances computed directly (no Gram-matrix cancellation)
    d2 = torch.cdist(x / a.sqrt(), points.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    logit = -d2 * a / (2 * (1 - a))
    cdf = torch.softmax(logit, 1).cumsum(1)
    idx = torch.searchsorted(cdf, u.double().clamp(0, 1 - 1e-12)[:, None]).clamp(max=len(points) - 1)
    return points[idx[:, 0]]


class OracleEps(nn.Module):
    """eps(x, t) on the index grid of ``alpha_bar`` (fractional t interpolated as the samplers' Denoiser
    does): the exact eps of the empirical distribution of ``points`` [N, *shape]."""

    def __init__(self, alpha_bar: Tensor, points: Tensor):
        super().__init__()
        self.schedule = Denoiser(lambda *args: None, alpha_bar)
        self.points = points.flatten(1).double()

    def forward(self, x: Tensor, t: Tensor, *args: Any) -> Tensor:
        a = self.schedule.alpha_bar_at(torch.as_tensor(t).double().cpu()).expand(x.shape[0])
        flat = x.detach().double().cpu().flatten(1)
        mean = posterior_mean(flat, a, self.points)
        eps = (flat - a.sqrt().view(-1, 1) * mean) / (1 - a).sqrt().view(-1, 1)
        return eps.view_as(x).to(x.device, x.dtype)


class OracleGenerator(nn.Module):
    """G(x_t, t, z) -> x0 for DDGAN: a training point drawn from the posterior, the choice made by z's first
    coordinate (a standard normal, so Phi(z_0) is uniform): the exact conditional a perfect G samples."""

    def __init__(self, alpha_bar: Tensor, points: Tensor):
        super().__init__()
        self.alpha_bar, self.points = alpha_bar.double(), points.flatten(1).double()

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        a = self.alpha_bar[torch.as_tensor(t).long().cpu()].expand(x.shape[0])
        u = torch.special.ndtr(z[:, 0].double().cpu())
        return posterior_draw(x.detach().double().cpu().flatten(1), a, self.points, u).view_as(x).to(x.device, x.dtype)


@dataclass(frozen=True)
class SampleCheck:
    """Samples of one NFE against the training points, in the space the model samples in."""

    nfe: int
    frechet: float  # Frechet distance of the flattened samples to the training points
    spread: float  # std of the samples / std of the points (1: as wide as the data)
    largest: float  # the largest |value| among the samples, against the points' own largest


def check_samples(samples: Tensor, points: Tensor, nfe: int) -> SampleCheck:
    s, p = samples.detach().double().flatten(1), points.double().flatten(1)
    return SampleCheck(nfe, float(frechet_distance(p, s)), float(s.std() / p.std()), float(s.abs().max()))


def eps_errors(net: nn.Module, oracle: OracleEps, points: Tensor, alpha_bar: Tensor, ts: list[int],
               n: int = 256, seed: int = 0) -> tuple[dict[int, float], dict[int, float]]:
    """Mean squared error per dimension of the learned eps against the oracle's, at each index time in ``ts``,
    on x_t made from training points (the same points and noise at every t); and, for images (latents included),
    the part of it in each channel's spatial mean: the share a norm that averages over one channel's map cannot
    pass on (the digits and MNIST f = 4 defects)."""
    g = torch.Generator().manual_seed(seed)
    x0 = points[torch.randint(0, len(points), (n,), generator=g)].float()
    noise = torch.randn(x0.shape, generator=g)
    total, level = {}, {}
    with torch.no_grad():
        for t in ts:
            a = float(alpha_bar[t])
            x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
            tt = torch.full((n,), t)
            d = net(x_t, tt).double() - oracle(x_t, tt).double()
            total[t] = float(d.pow(2).mean())
            if d.dim() == 4 and d.shape[-1] * d.shape[-2] > 1:
                level[t] = float(d.mean(dim=(2, 3)).pow(2).mean())  # mean^2 per channel = its share per value
    return total, level


def draw(method: Any, model: Any, net: nn.Module, shape: tuple[int, ...], nfe: int, n: int, seed: int) -> Tensor:
    """n samples at ``nfe`` by the method's sampler on ``net``, from the bench's initial noise and streams."""
    return generate(method, model, nfe, seed=seed, images=n, shape=shape, net=net, decode=False)


@dataclass(frozen=True)
class Diagnosis:
    method: str
    oracle: list[SampleCheck]
    learned: list[SampleCheck]
    eps_error: dict[int, float]  # index time -> learned eps MSE against the oracle's (eps models only)
    eps_level: dict[int, float]  # the part of it in each channel's spatial mean (images and latents only)
    points_largest: float
    decoded: list[tuple[int, float, float]]  # latent models: (NFE, oracle FD, learned FD) of decoded images
    scored: list[tuple[int, float, float]]  # images: (NFE, oracle FID, learned FID) in the bench's features

    def verdict(self) -> list[str]:
        """What the figures say: pipeline or network, and where the network is weakest."""
        lines = []
        worst_oracle = max(self.oracle, key=lambda c: c.frechet)
        worst_learned = max(self.learned, key=lambda c: c.frechet)
        bad_oracle = [c.nfe for c in self.oracle if not 0.8 < c.spread < 1.25]
        if bad_oracle:
            lines.append(f"PIPELINE: the exact denoiser of the training points gives samples of the wrong width at NFE "
                         f"{bad_oracle} (spread {', '.join(f'{c.spread:.2f}' for c in self.oracle)}): there the "
                         "sampler (its discretisation at that NFE), the schedule or the decoder limits the samples, "
                         "whatever the network.")
        else:
            lines.append(f"pipeline sound: the oracle's samples are data-like at every NFE (Frechet distance at most "
                         f"{worst_oracle.frechet:.3g}, spread {min(c.spread for c in self.oracle):.2f}-"
                         f"{max(c.spread for c in self.oracle):.2f}).")
        ratio = worst_learned.frechet / max(worst_oracle.frechet, 1e-12)
        wide = [c.nfe for c in self.learned if not 0.8 < c.spread < 1.25]
        lines.append(f"network: its samples reach Frechet distance {worst_learned.frechet:.3g} "
                     f"({ratio:.0f}x the oracle's worst) and spread {min(c.spread for c in self.learned):.2f}-"
                     f"{max(c.spread for c in self.learned):.2f}" + (f"; too wide or narrow at NFE {wide}" if wide else "")
                     + ".")
        far = [(nfe, fo, fl) for nfe, fo, fl in self.scored if fl > 3 * max(fo, 1e-12)]
        if far:
            nfe, fo, fl = max(far, key=lambda c: c[2] / max(c[1], 1e-12))
            lines.append(f"in the bench's features the network's images are far from the oracle's (FID {fl:.3g} against "
                         f"{fo:.3g} at NFE {nfe}): what the model samples in may look close while the images do not.")
        trend = [c.frechet for c in self.learned]
        if len(trend) > 1 and trend[-1] > trend[0] * 1.2:
            lines.append("the learned model gets worse with more steps while the oracle does not: an eps error the "
                         "ODE follows more exactly at more steps (a network deficit).")
        # Below ~t = 200 the oracle snaps to single training points (it memorises); there its error measures how
        # far the network generalises, not a defect, so the weakest levels are named among the noisier ones.
        high = {t: e for t, e in self.eps_error.items() if t >= 200}
        if high:
            worst = sorted(high, key=high.get, reverse=True)[:3]
            lines.append("eps error against the oracle (t >= 200, where the oracle averages many training points) is "
                         "largest at t = " + ", ".join(f"{t} ({high[t]:.3g})" for t in worst)
                         + f"; smallest {min(high.values()):.3g}.")
            share = {t: self.eps_level[t] / e for t, e in high.items() if t in self.eps_level and e > 0}
            if share and max(share.values()) > 0.3:
                top = max(share, key=share.get)
                lines.append(f"{share[top]:.0%} of that error at t = {top} is each channel's mean level over its map: "
                             "the network cannot pass channel levels on (a group norm averaging one channel's map "
                             "erases them; see nets/unet.py's norm_min_values).")
        return lines


EPS_TIMES = (0, 50, 100, 200, 400, 600, 800, 900, 950, 999)


def diagnose(method: Any, model: Any, x_train: Tensor, nfes: list[int], *, n: int = 500, seed: int = 0,
             features: Callable[[Tensor], Tensor] | None = None) -> Diagnosis:
    """The oracle and the learned network through ``method``'s sampler at each NFE (a model per NFE where the
    method has one: pass the model of that NFE), against the model's training points. ``features`` (images: the
    bench's extractor, quantized input) adds both samples' FID against the training images in those features,
    the bench's own score: a latent Frechet distance near the oracle's can hide images the metrics see as far."""
    points = model.training_points(x_train)
    oracle_net = model.oracle_network(points)
    shape = tuple(points.shape[1:])
    oracle, learned, decoded, scored = [], [], [], []
    train_features = None if features is None else features(x_train).double()
    decoder = method.decoder(model) if method.decoder is not None else None
    for nfe in nfes:
        got, fids = {}, {}
        for name, net in (("oracle", oracle_net), ("learned", model.denoiser())):
            s = draw(method, model, net, shape, nfe, n, seed)
            (oracle if name == "oracle" else learned).append(check_samples(s, points, nfe))
            with torch.no_grad():
                images = decoder(s) if decoder is not None else s
            if decoder is not None:
                got[name] = float(frechet_distance(images.double().flatten(1), x_train.double().flatten(1)))
            if features is not None and train_features is not None:
                fids[name] = float(frechet_distance(features(images.float()).double(), train_features))
        if decoder is not None:
            decoded.append((nfe, got["oracle"], got["learned"]))
        if fids:
            scored.append((nfe, fids["oracle"], fids["learned"]))
    errors, level = {}, {}
    if isinstance(oracle_net, OracleEps):
        steps = len(oracle_net.schedule.alpha_bar)
        ts = [t for t in EPS_TIMES if t < steps]
        errors, level = eps_errors(model.denoiser(), oracle_net, points, oracle_net.schedule.alpha_bar, ts, seed=seed)
    return Diagnosis(method.name, oracle, learned, errors, level, float(points.abs().max()), decoded, scored)


def print_diagnosis(result: Diagnosis, title: str) -> None:
    """The diagnosis on the console: per NFE the oracle's and the network's samples, the eps errors, the verdict."""
    from rich.table import Table

    from .report_utils import console

    table = Table(title=title)
    for col in ("NFE", "oracle FD", "oracle spread", "learned FD", "learned spread", "learned max |x|"):
        table.add_column(col, justify="right")
    for o, lrn in zip(result.oracle, result.learned):
        table.add_row(str(o.nfe), f"{o.frechet:.4g}", f"{o.spread:.3f}", f"{lrn.frechet:.4g}", f"{lrn.spread:.3f}",
                      f"{lrn.largest:.3g} (data {result.points_largest:.3g})")
    console.print(table)
    for nfe, fo, fl in result.decoded:
        console.print(f"decoded images, NFE {nfe}: pixel-space Frechet distance oracle {fo:.4g}, learned {fl:.4g}")
    for nfe, fo, fl in result.scored:
        console.print(f"images, NFE {nfe}: FID in the bench's features against the training images oracle {fo:.4g}, "
                      f"learned {fl:.4g}")
    if result.eps_error:
        console.print("learned eps MSE against the oracle's, by index time t: "
                      + ", ".join(f"t={t}: {e:.3g}" for t, e in result.eps_error.items()))
    if result.eps_level:
        console.print("of which each channel's mean level over its map: "
                      + ", ".join(f"t={t}: {e:.3g}" for t, e in result.eps_level.items()))
    for line in result.verdict():
        console.print(f"- {line}")
