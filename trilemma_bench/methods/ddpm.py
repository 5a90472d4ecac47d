"""DDPM (Ho et al. 2020) as a LightningModule: eps-prediction MSE (L_simple), EMA weights for sampling."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..denoisers import Denoiser, eps_denoiser
from ..ema import EMA
from ..nets import build_net
from ..optim import ClipsGradNorm, with_warmup
from ..presets import TrainConfig
from ..schedules import alphas_cumprod, make_betas
from ..weights import ShipsWeights

VAL_SEED = 1234  # validation noise and times are the same at every evaluation: the curve shows the model


class DDPM(ShipsWeights, ClipsGradNorm, L.LightningModule):
    """``clip_x0`` clamps predicted x0 to [-1, 1] when sampling: right for images scaled there, wrong for
    toy2d, whose modes lie in [-2, 2] (clipping there deletes the outer ring of modes)."""

    raw_prefixes = ("net.",)  # shipped: the EMA copy, which every sampler runs

    def __init__(
        self,
        net: dict[str, Any],
        *,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        lr: float = 2e-4,
        warmup_steps: int = 0,
        ema_decay: float = 0.9999,
        grad_clip: float = 1.0,
        clip_x0: bool = True,
        training_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_net(net)
        self.ema = EMA(self.net, ema_decay)
        # Kept as a plain float64 attribute, not a buffer, so precision plugins never cast it down.
        self.alpha_bar = alphas_cumprod(make_betas(beta_schedule, num_train_timesteps))

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, is_image: bool, training_config: dict[str, Any]) -> DDPM:
        return cls(cfg.net, num_train_timesteps=cfg.options["num_train_timesteps"],
                   beta_schedule=cfg.options["beta_schedule"], lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                   ema_decay=cfg.ema_decay, grad_clip=cfg.grad_clip, clip_x0=is_image,
                   training_config=training_config)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps (Ho et al. Eq. 4)."""
        a = self.alpha_bar.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def loss(self, x0: Tensor, t: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        if t is None:
            t = torch.randint(0, self.hparams.num_train_timesteps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        return nn.functional.mse_loss(self.net(self.q_sample(x0, t, noise), t), noise)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch[0])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # Fixed noise and an even grid of t (stratified over the batch), drawn from a generator of its own:
        # the validation curve then moves only with the weights, and training's random stream is untouched.
        x0 = batch[0]
        g = torch.Generator().manual_seed(VAL_SEED + batch_idx)
        T, n = self.hparams.num_train_timesteps, x0.shape[0]
        t = ((torch.arange(n) + 0.5) * T / n).long().clamp(max=T - 1).to(x0.device)
        noise = torch.randn(x0.shape, generator=g).to(x0.device)
        self.log("val/loss", self.loss(x0, t, noise), prog_bar=True)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.ema.update(self.net)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        return with_warmup(opt, self.hparams.warmup_steps)

    def restore_raw(self) -> None:
        self.net.load_state_dict(self.ema.module.state_dict())

    def oracle_network(self, points: Tensor) -> nn.Module:
        from ..diagnose import OracleEps

        return OracleEps(self.alpha_bar, points)

    def denoiser(self, ema: bool = True) -> nn.Module:
        """The eps(x, t) network samplers run on: the EMA copy unless asked otherwise."""
        return (self.ema.module if ema else self.net).eval()

    def as_denoiser(self, net: nn.Module) -> Denoiser:
        return eps_denoiser(net, self.alpha_bar)
