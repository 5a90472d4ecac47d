"""Variational Diffusion Models (Kingma et al. 2021) as a LightningModule: the continuous-time variational bound
in bits/dim, a learned gamma schedule, the shared UNet with Fourier features, EMA weights for sampling.

Facts from google-research/vdm (model_vdm.py, experiment_vdm.py, configs/cifar10.py) this follows: data k in
{0..V-1} are encoded as bin centres 2(k + 0.5)/V - 1; z_t = alpha_t x + sigma_t eps with sigma^2 = sigmoid(gamma),
alpha^2 = sigmoid(-gamma); the network sees gamma normalised by the configured endpoints, times 1000, in the
sinusoidal embedding, and predicts eps as its output plus its input z (ScoreUNet's "base measure"); the loss is
the sum of three terms in nats per image, reported in bits/dim, with antithetic t; AdamW (0.9, 0.99), weight
decay 0.01 on every parameter, the schedule's included; evaluation and sampling use the EMA weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..denoisers import Denoiser
from ..ema import EMA
from ..nets import build_net
from ..optim import ClipsGradNorm, with_warmup
from ..presets import TrainConfig
from ..schedules import GAMMA_MAX, GAMMA_MIN, make_gamma
from ..weights import ShipsWeights
from .vdm_denoiser import net_time, vdm_denoiser
from .vdm_schedule import save_schedule, schedule_table

VAL_SEED = 4321  # validation times and noise are the same at every evaluation: the curve shows the model
TERMS = ("diff", "prior", "recon")


# --- data encoding: the DataModule's x = 2k/(V-1) - 1 <-> k <-> VDM's bin centres 2(k + 0.5)/V - 1 --------------

def data_to_levels(x: Tensor, levels: int) -> Tensor:
    """k in {0..V-1} from the DataModule's encoding x = 2k/(V-1) - 1."""
    return torch.round((x + 1) * (levels - 1) / 2).clamp(0, levels - 1).long()


def levels_to_data(k: Tensor, levels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return 2 * k.to(dtype) / (levels - 1) - 1


def bin_centres(k: Tensor, levels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """VDM's encoding of k (EncDec.encode): the centre of k's bin when [-1, 1] is cut into V bins."""
    return 2 * (k.to(dtype) + 0.5) / levels - 1


# --- the three terms of the bound, in nats per image --------------------------------------------------------------

def antithetic_times(u: Tensor | float, n: int) -> Tensor:
    """t_i = (u + i/n) mod 1: one uniform draw spread evenly over [0, 1) (VDM's antithetic time sampling)."""
    u = torch.as_tensor(u, dtype=torch.float32)
    return torch.remainder(u + torch.arange(n, dtype=torch.float32) / n, 1.0)


def decoder_logits(z_rescaled: Tensor, gamma_0: Tensor, levels: int) -> Tensor:
    """log p(x = k | z_0) up to a constant, [..., V]: -0.5 ((z_0/alpha_0 - c_k) exp(-gamma_0/2))^2 (EncDec.decode)."""
    centres = bin_centres(torch.arange(levels, device=z_rescaled.device), levels, z_rescaled.dtype)
    return -0.5 * ((z_rescaled[..., None] - centres) * torch.exp(-0.5 * gamma_0)) ** 2


def recon_nats(k: Tensor, gamma_0: Tensor, eps_0: Tensor, levels: int) -> Tensor:
    """-log p(x | z_0) with z_0 = alpha_0 c_k + sigma_0 eps_0, i.e. z_0 / alpha_0 = c_k + exp(gamma_0 / 2) eps_0."""
    z_rescaled = bin_centres(k, levels, eps_0.dtype) + torch.exp(0.5 * gamma_0) * eps_0
    logp = torch.log_softmax(decoder_logits(z_rescaled, gamma_0, levels), dim=-1)
    return -logp.gather(-1, k[..., None]).squeeze(-1).flatten(1).sum(1)


def prior_nats(f: Tensor, gamma_1: Tensor) -> Tensor:
    """KL(q(z_1 | x) || N(0, I)) = 0.5 sum(alpha_1^2 f^2 + sigma_1^2 - log sigma_1^2 - 1)."""
    var_1 = torch.sigmoid(gamma_1)
    kl = 0.5 * ((1 - var_1) * f**2 + var_1 - nn.functional.logsigmoid(gamma_1) - 1)
    return kl.flatten(1).sum(1)


def diffusion_nats(score: nn.Module, gamma: nn.Module, f: Tensor, t: Tensor, eps: Tensor, *,
                   gamma_min: float, gamma_max: float, create_graph: bool) -> Tensor:
    """0.5 gamma'(t) ||eps - eps_hat(z_t, gamma_t)||^2, gamma' by autograd (the continuous-time limit, T = 0).

    ``create_graph``: keep gamma' differentiable, so that the bound trains the schedule (training); off for
    evaluation under no_grad.
    """
    # gamma' needs autograd even under no_grad or inference_mode (evaluation): a fresh leaf of its own.
    with torch.inference_mode(False), torch.enable_grad():
        t = t.detach().to(f.device, f.dtype).clone().requires_grad_(True)
        g_t = gamma(t)
        (dg,) = torch.autograd.grad(g_t.sum(), t, create_graph=create_graph)
    if not create_graph:
        g_t, dg = g_t.detach(), dg.detach()
    g = g_t.view(-1, *([1] * (f.dim() - 1)))
    z_t = torch.sigmoid(-g).sqrt() * f + torch.sigmoid(g).sqrt() * eps
    eps_hat = score(z_t, net_time(g_t, gamma_min, gamma_max))
    return 0.5 * dg * (eps - eps_hat).pow(2).flatten(1).sum(1)


def vlb_terms(score: nn.Module, gamma: nn.Module, x: Tensor, *, levels: int, t: Tensor, eps: Tensor, eps_0: Tensor,
              gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, create_graph: bool = False) -> dict[str, Tensor]:
    """The bound's three terms for a batch ``x`` in the DataModule's encoding, nats per image ([B] each):
    diffusion (one time t_i per image), prior KL and reconstruction (one eps_0 draw each)."""
    k = data_to_levels(x, levels)
    f = bin_centres(k, levels, x.dtype)
    ends = gamma(torch.tensor([0.0, 1.0], device=x.device, dtype=f.dtype))
    return {
        "diff": diffusion_nats(score, gamma, f, t, eps, gamma_min=gamma_min, gamma_max=gamma_max,
                               create_graph=create_graph),
        "prior": prior_nats(f, ends[1]),
        "recon": recon_nats(k, ends[0], eps_0, levels),
    }


def nats_to_bpd(nats: Tensor, x: Tensor) -> Tensor:
    """Nats per image to bits per dimension: / (H W C ln 2)."""
    return nats / (x[0].numel() * math.log(2))


class VDMScore(nn.Module):
    """eps_hat(z, s) = net(z, s) + z: the official ScoreUNet adds its input to the prediction, and its output
    convolution starts at zero (conv_out's zeros init), so an untrained model predicts eps_hat = z."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        out = getattr(net, "head", None) or getattr(net, "out", None)  # UNet.head, MLPDenoiser.out
        if not isinstance(out, nn.Sequential) or not isinstance(out[-1], (nn.Conv2d, nn.Linear)):
            raise TypeError(f"VDM needs a network whose output layer it can zero-initialise, got {type(net).__name__}")
        nn.init.zeros_(out[-1].weight)
        nn.init.zeros_(out[-1].bias)

    def forward(self, z: Tensor, s: Tensor, **kwargs: Any) -> Tensor:
        return self.net(z, s, **kwargs) + z


class VDM(ShipsWeights, ClipsGradNorm, L.LightningModule):
    """The bound in bits/dim is the training loss; ``gamma_type`` picks the schedule (schedules.GAMMA_TYPES)."""

    raw_prefixes = ("core.",)  # shipped: the EMA copy of score network and schedule, which sampling and bpd run

    def __init__(
        self,
        net: dict[str, Any],
        *,
        levels: int,
        gamma_type: str = "learnable_scalar",
        gamma_min: float = GAMMA_MIN,
        gamma_max: float = GAMMA_MAX,
        lr: float = 2e-4,
        warmup_steps: int = 0,
        ema_decay: float = 0.9999,
        grad_clip: float = 0.0,
        weight_decay: float = 0.01,
        adam_betas: tuple[float, float] = (0.9, 0.99),
        training_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if levels < 2:
            raise ValueError(f"VDM needs data on at least 2 levels, got levels={levels}")
        self.core = nn.ModuleDict({"score": VDMScore(build_net(net)), "gamma": make_gamma(gamma_type, gamma_min, gamma_max)})
        self.ema = EMA(self.core, ema_decay)

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, is_image: bool, training_config: dict[str, Any]) -> VDM:
        from ..data import DATASETS

        dataset = training_config["dataset"]
        levels = DATASETS[dataset].levels
        if not is_image or levels is None:
            raise ValueError(
                f"VDM's decoder and bits/dim are for discrete data (pixels on V levels); {dataset} is continuous. "
                "Use an image preset (digits, small)."
            )
        opts = dict(cfg.options)
        unknown = sorted(set(opts) - {"gamma_type", "gamma_min", "gamma_max", "weight_decay", "adam_betas"})
        if unknown:
            raise ValueError(f"unknown VDM options {unknown}: known are gamma_type, gamma_min, gamma_max, "
                             "weight_decay, adam_betas")
        return cls(cfg.net, levels=levels, lr=cfg.lr, warmup_steps=cfg.warmup_steps, ema_decay=cfg.ema_decay,
                   grad_clip=cfg.grad_clip, training_config=training_config, **opts)

    # --- the bound --------------------------------------------------------------------------------------------

    def terms(self, x: Tensor, *, t: Tensor, eps: Tensor, eps_0: Tensor, ema: bool = False,
              create_graph: bool = False) -> dict[str, Tensor]:
        core = self.ema.module if ema else self.core
        h = self.hparams
        return vlb_terms(core["score"], core["gamma"], x, levels=h.levels, t=t, eps=eps, eps_0=eps_0,
                         gamma_min=h.gamma_min, gamma_max=h.gamma_max, create_graph=create_graph)

    def _log_bpd(self, stage: str, x: Tensor, terms: dict[str, Tensor]) -> Tensor:
        bpd = {name: nats_to_bpd(v, x).mean() for name, v in terms.items()}
        total = sum(bpd.values())
        self.log(f"{stage}/bpd", total, prog_bar=True)
        for name, v in bpd.items():
            self.log(f"{stage}/bpd_{name}", v)
        return total

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x = batch[0]
        t = antithetic_times(torch.rand(()), x.shape[0]).to(x.device)
        terms = self.terms(x, t=t, eps=torch.randn_like(x), eps_0=torch.randn_like(x), create_graph=True)
        with torch.no_grad():
            ends = self.core["gamma"](torch.tensor([0.0, 1.0], device=x.device))
        self.log("schedule/gamma_0", ends[0])
        self.log("schedule/gamma_1", ends[1])
        return self._log_bpd("train", x, terms)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # A generator of its own: the curve moves only with the weights, and training's random stream is untouched.
        x = batch[0]
        g = torch.Generator().manual_seed(VAL_SEED + batch_idx)
        u = torch.rand((), generator=g)
        eps, eps_0 = (torch.randn(x.shape, generator=g).to(x.device) for _ in range(2))
        self._log_bpd("val", x, self.terms(x, t=antithetic_times(u, x.shape[0]).to(x.device), eps=eps, eps_0=eps_0))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.ema.update(self.core)

    def configure_optimizers(self) -> Any:
        h = self.hparams
        opt = torch.optim.AdamW(self.core.parameters(), lr=h.lr, betas=tuple(h.adam_betas), eps=1e-8,
                                weight_decay=h.weight_decay)
        return with_warmup(opt, h.warmup_steps)

    # --- what samplers and evaluation use ----------------------------------------------------------------------

    def restore_raw(self) -> None:
        self.core.load_state_dict(self.ema.module.state_dict())

    def denoiser(self, ema: bool = True) -> nn.Module:
        """The eps(z, s) network samplers run on (s: net_time of gamma): the EMA copy unless asked otherwise."""
        return (self.ema.module if ema else self.core)["score"].eval()

    def as_denoiser(self, net: nn.Module) -> Denoiser:
        """``net`` with the EMA schedule it was averaged with, in continuous time."""
        return vdm_denoiser(net, self)

    def finish(self, x: Tensor) -> Tensor:
        return self.decode(x)

    def gamma(self, ema: bool = True) -> nn.Module:
        return (self.ema.module if ema else self.core)["gamma"]

    @torch.no_grad()
    def decode(self, z_rescaled: Tensor, ema: bool = True) -> Tensor:
        """The decoder's most likely level for z_0 / alpha_0 (generate_x without sample_softmax), in the
        DataModule's encoding."""
        levels = self.hparams.levels
        g0 = self.gamma(ema)(torch.zeros((), device=z_rescaled.device)).float()
        k = decoder_logits(z_rescaled.float(), g0, levels).argmax(-1)
        return levels_to_data(k, levels).to(z_rescaled.dtype)

    def schedule_table(self) -> dict[str, list[float]]:
        """log-SNR against t of the learned (EMA) schedule, with DDPM's linear one (the report draws both)."""
        return schedule_table(self)

    def write_artifacts(self, ckpt: Path) -> None:
        """The learned log-SNR against t beside the checkpoint (csv and png), with DDPM's linear schedule."""
        save_schedule(self, ckpt.with_suffix(".schedule.csv"), ckpt.with_suffix(".schedule.png"))
