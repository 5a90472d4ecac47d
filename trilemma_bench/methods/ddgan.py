"""Denoising Diffusion GANs (Xiao et al. 2022) as a LightningModule: one conditional GAN per large denoising step.

Facts from the official code (NVlabs/denoising-diffusion-gan, train_ddgan.py): T steps of the VP-SDE on the
grid t_k = 0.001 + 0.999 k / T (:func:`~trilemma_bench.schedules.ddgan_betas`); G predicts x_0 from (x_t, t, z)
and a fake x_{t-1} is drawn from the posterior q(x_{t-1} | x_t, x_0 = G(x_t, t, z)); D judges the pair
(x_{t-1}, x_t) at step t. Non-saturating losses; D and G each draw their own t, pairs and z; R1 on the real,
less noisy input every ``lazy_reg`` iterations (not rescaled by ``lazy_reg``, as theirs); Adam(0.5, 0.9) for
both; cosine learning-rate decay to 1e-5; an EMA of G samples. The EMA warms up as the project's does
(decay min(d, (1 + n) / (10 + n)), so it averages about the last ninth of a short run): the official 0.9999
without warm-up would still hold 67% of the initial weights after 4,000 steps. In D's step G runs without a
graph (theirs builds one and discards its gradients); no validation loop, a GAN's losses on held-out pairs
say little.

Manual optimization (Lightning's GAN pattern): each training step makes one D update and one G update, so
Lightning's ``global_step`` (it counts optimizer steps) advances by 2 per iteration; ``train_steps`` counts
iterations, and ``train.py`` multiplies ``max_steps`` by :attr:`DDGAN.optimizer_steps_per_batch`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import samplers
from ..denoisers import Denoiser, NoiseSource
from ..ema import EMA
from ..flops import counted_flops, forward_flops, own_random_stream
from ..nets import build_net
from ..presets import TrainConfig
from ..schedules import check_ddgan_steps, ddgan_betas, posterior_coefficients
from ..weights import ShipsWeights
from .base import Method, ModelSpec


class DDGAN(ShipsWeights, L.LightningModule):
    optimizer_steps_per_batch = 2  # one discriminator and one generator update per training step
    raw_prefixes = ("gen.", "disc.")  # shipped: G's EMA copy; D only trains it

    def __init__(
        self,
        net: dict[str, Any],
        disc: dict[str, Any],
        *,
        num_timesteps: int = 4,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        lr_g: float = 1.6e-4,
        lr_d: float = 1.25e-4,
        lr_min: float = 1e-5,
        adam_betas: tuple[float, float] = (0.5, 0.9),
        r1_gamma: float = 0.02,
        lazy_reg: int = 15,
        ema_decay: float = 0.999,
        train_steps: int = 1,
        training_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        check_ddgan_steps(num_timesteps)
        if lazy_reg < 1 or r1_gamma < 0 or train_steps < 1:
            raise ValueError(f"DDGAN needs lazy_reg >= 1, r1_gamma >= 0 and train_steps >= 1; got {lazy_reg}, "
                             f"{r1_gamma}, {train_steps}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.gen = build_net(net)
        self.disc = build_net(disc)
        if getattr(self.gen, "mapping", None) is None:
            raise ValueError("DDGAN's generator needs a latent: give its network a z_dim (the paper's nz is 100)")
        self.nz = self.gen.mapping.z_dim
        self.ema = EMA(self.gen, ema_decay)
        betas = ddgan_betas(num_timesteps, beta_min, beta_max)
        # Plain float64 attributes, not buffers, so precision plugins never cast them down.
        self.alpha_bar = torch.cumprod(1 - betas.double(), dim=0)
        self.posterior = posterior_coefficients(betas)

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, is_image: bool, training_config: dict[str, Any]) -> DDGAN:
        if cfg.warmup_steps or cfg.grad_clip:
            raise ValueError("DDGAN trains without learning-rate warm-up or gradient clipping, as the official code: "
                             f"set warmup_steps=0 and grad_clip=0 (got {cfg.warmup_steps}, {cfg.grad_clip})")
        o = cfg.options
        return cls(cfg.net, o["disc"], num_timesteps=o["num_timesteps"], beta_min=o["beta_min"],
                   beta_max=o["beta_max"], lr_g=cfg.lr, lr_d=o["lr_d"], r1_gamma=o["r1_gamma"], lazy_reg=o["lazy_reg"],
                   ema_decay=cfg.ema_decay, train_steps=cfg.train_steps, training_config=training_config)

    # The forward process and its posterior, per sample at step t (network time: x_t has alpha_bar[t]).

    def _coef(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_pair(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """A real pair (x_{t-1}, x_t): x_{t-1} ~ q(x_{t-1} | x_0), then one forward step (x_{-1} is x_0)."""
        a = self.alpha_bar.to(x0.device)
        a_prev = torch.cat([a.new_ones(1), a[:-1]])
        x_prev = self._coef(a_prev.sqrt(), t, x0) * x0 + self._coef((1 - a_prev).sqrt(), t, x0) * torch.randn_like(x0)
        beta = 1 - a / a_prev
        x_t = self._coef((1 - beta).sqrt(), t, x0) * x_prev + self._coef(beta.sqrt(), t, x0) * torch.randn_like(x0)
        return x_prev, x_t

    def q_posterior_sample(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """x_{t-1} ~ q(x_{t-1} | x_t, x_0); no noise at t = 0, where the variance is 0."""
        p = self.posterior
        mean = self._coef(p["x0"], t, x_t) * x0 + self._coef(p["xt"], t, x_t) * x_t
        return mean + self._coef(p["variance"].sqrt(), t, x_t) * torch.randn_like(x_t)

    def fake_pair(self, x_t: Tensor, t: Tensor) -> Tensor:
        """G's x_{t-1} for x_t: x_0 = G(x_t, t, z) with a fresh z, then the posterior sample."""
        z = torch.randn(x_t.shape[0], self.nz, device=x_t.device, dtype=x_t.dtype)
        return self.q_posterior_sample(self.gen(x_t, t, z), x_t, t)

    def _draw_t(self, x0: Tensor) -> Tensor:
        return torch.randint(0, self.hparams.num_timesteps, (x0.shape[0],), device=x0.device)

    # Losses (non-saturating: softplus(-D) for what should read real, softplus(D) for what should read fake).

    def r1_due(self, iteration: int) -> bool:
        return self.hparams.r1_gamma > 0 and iteration % self.hparams.lazy_reg == 0

    def discriminator_loss(self, x0: Tensor, with_r1: bool) -> dict[str, Tensor]:
        t = self._draw_t(x0)
        x_prev, x_t = self.q_pair(x0, t)
        x_prev.requires_grad_(with_r1)
        d_real = self.disc(x_prev, x_t, t)
        out = {"d_real": F.softplus(-d_real).mean()}
        if with_r1:
            (grad,) = torch.autograd.grad(d_real.sum(), x_prev, create_graph=True)
            out["r1"] = self.hparams.r1_gamma / 2 * grad.flatten(1).pow(2).sum(1).mean()
        with torch.no_grad():
            fake = self.fake_pair(x_t, t)
        out["d_fake"] = F.softplus(self.disc(fake, x_t, t)).mean()
        out["d_loss"] = out["d_real"] + out["d_fake"] + out.get("r1", 0.0)
        return out

    def generator_loss(self, x0: Tensor) -> Tensor:
        t = self._draw_t(x0)
        _, x_t = self.q_pair(x0, t)
        return F.softplus(-self.disc(self.fake_pair(x_t, t), x_t, t)).mean()

    # Training compute.

    @cached_property
    def train_passes(self) -> float:  # type: ignore[override]
        """One iteration's FLOPs per example in units of G's forward pass, counted (not the 3 of a denoiser's
        forward and backward: D trains too): D's step, its R1 term weighted by 1 / ``lazy_reg``, and G's step,
        forward and backward as they run in training (D frozen in G's step, as Lightning toggles it)."""
        h, net = self.hparams, self.hparams.net
        shape = (net["in_channels"], net["image_size"], net["image_size"]) if "image_size" in net else (net["dim"],)
        x0 = torch.zeros(2, *shape, device=self.device)
        t = torch.zeros(2, dtype=torch.long, device=self.device)
        with own_random_stream(self.device):  # the bench's random streams stay where they were
            with torch.no_grad():
                g = forward_flops(lambda: self.gen(x0, t, torch.zeros(2, self.nz, device=self.device)))
            d_step = counted_flops(lambda: self.discriminator_loss(x0, with_r1=False)["d_loss"])
            r1 = (counted_flops(lambda: self.discriminator_loss(x0, with_r1=True)["d_loss"]) - d_step) / h.lazy_reg \
                if h.r1_gamma > 0 else 0.0
            trains_d = [p.requires_grad for p in self.disc.parameters()]
            self.disc.requires_grad_(False)
            g_step = counted_flops(lambda: self.generator_loss(x0))
            for p, was in zip(self.disc.parameters(), trains_d):
                p.requires_grad_(was)
        for p in self.parameters():
            p.grad = None
        return (d_step + r1 + g_step) / g

    # Lightning.

    @property
    def iteration(self) -> int:
        """Training steps done (one D and one G update each), whatever Lightning counts."""
        return self.global_step // self.optimizer_steps_per_batch

    def discriminator_step(self, x0: Tensor) -> None:
        opt_d = self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        losses = self.discriminator_loss(x0, with_r1=self.r1_due(self.iteration))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(losses["d_loss"])
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items() if k in ("d_loss", "r1")}, prog_bar=True)

    def generator_step(self, x0: Tensor) -> None:
        opt_g = self.optimizers()[0]
        self.toggle_optimizer(opt_g)
        loss = self.generator_loss(x0)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.log("train/g_loss", loss.detach(), prog_bar=True)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x0 = batch[0]
        self.discriminator_step(x0)
        self.generator_step(x0)
        self.ema.update(self.gen)
        for sched in self.lr_schedulers():
            sched.step()

    def configure_optimizers(self) -> Any:
        h = self.hparams
        opt_g = torch.optim.Adam(self.gen.parameters(), lr=h.lr_g, betas=tuple(h.adam_betas))
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=h.lr_d, betas=tuple(h.adam_betas))
        # Cosine decay to lr_min over the run, stepped per iteration (theirs per epoch over 1200-1800 epochs).
        scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=h.train_steps, eta_min=h.lr_min)
                  for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    def restore_raw(self) -> None:
        self.gen.load_state_dict(self.ema.module.state_dict())  # D stays at its initialisation: sampling never reads it

    def oracle_network(self, points: Tensor) -> nn.Module:
        from ..diagnose import OracleGenerator

        return OracleGenerator(self.alpha_bar, points)

    def denoiser(self, ema: bool = True) -> nn.Module:
        """The generator G(x_t, t, z) -> x_0 that sampling runs: the EMA copy unless asked otherwise."""
        return (self.ema.module if ema else self.gen).eval()


class _FreshLatent(nn.Module):
    """G(x_t, t) with a fresh z at every call, drawn from each image's "latent" stream: what the Denoiser wraps."""

    def __init__(self, gen: nn.Module, nz: int, noise: NoiseSource):
        super().__init__()
        self.gen, self.nz, self.noise = gen, nz, noise

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        z = self.noise.randn_like(x.new_empty(x.shape[0], self.nz), "latent")
        return self.gen(x, t, z)


def _sample(net: nn.Module, model: DDGAN, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
    # DDGAN's sampling (official sample_from_model) is the DDPM posterior step with the beta-tilde variance on its
    # own T-step table, G's x_0 in place of the eps network's, unclipped (tanh already bounds images); the last
    # step returns x_0 without noise. So it runs the shared ancestral sampler, not a copy of it.
    T = model.hparams.num_timesteps
    if nfe != T:
        raise ValueError(f"this DDGAN generator was trained for T = {T} denoising steps, so it samples at NFE {T} "
                         f"only, not {nfe}: its T is its NFE (bench trains one model per NFE asked for)")
    den = Denoiser(_FreshLatent(net, model.nz, noise), model.alpha_bar, prediction="x0")
    return samplers.ddpm_sample(den, x, variance="fixedsmall", clip_x0=False, noise=noise)


def _variant(nfe: int) -> ModelSpec:
    check_ddgan_steps(nfe)
    return ModelSpec("ddgan", {"num_timesteps": nfe}, tag=f"ddgan-T{nfe}")


DDGAN_METHODS: list[Method] = [
    Method("ddgan", "ddgan", "ddgan-posterior", _sample, (4,),
           "Xiao et al. 2022 denoising diffusion GAN: T = NFE steps, each G(x_t, t, z) -> x_0 then "
           "x_{t-1} ~ q(x_{t-1} | x_t, x_0); one model per T (the paper's 4 by default; 1, 2, 8 in its ablation)",
           variant=_variant),
]
