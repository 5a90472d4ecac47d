"""Latent diffusion (Rombach et al. 2022) as a LightningModule: the project's DDPM on the scaled latents of a
frozen KL autoencoder trained before it (:mod:`.autoencoder`).

- Training: each batch is encoded by the frozen encoder and a posterior sample is drawn, as the reference's
  ``LatentDiffusion.get_input`` does (CompVis/latent-diffusion, ``ldm/models/diffusion/ddpm.py``); the eps-MSE,
  noise schedule, EMA and optimizer are DDPM's (this class subclasses :class:`~.ddpm.DDPM`). The schedule is
  Ho et al.'s linear 1e-4..0.02, not the reference configs' 0.0015..0.0195 in sqrt space, so latent and pixel
  rows differ only in the space they diffuse in.
- Scale: latents are multiplied by 1/std of the training latents. The reference (``scale_by_std``) takes that
  std from the posterior samples of the first training batch; here it is taken over the whole training split
  (one seeded posterior sample per image) before the first step. That is a change: the scale then does not
  depend on which images the first batch held. It is a buffer, so it travels in the checkpoint.
- Sampling never clips x0: latents are not bounded to [-1, 1] (``clip_x0`` is False, and the DDPM samplers
  read it from the model).
- The autoencoder's weights travel inside the checkpoint with its identity (training configuration and weight
  digest); a checkpoint whose autoencoder is not the one now trained for the preset is refused.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..checkpoints import CheckpointError
from ..flops import counted_flops, forward_flops, own_random_stream
from ..nets import build_net
from ..nets.autoencoder import KLAutoencoder
from ..nets.unet import level_sizes
from ..presets import TrainConfig
from .autoencoder import Autoencoder
from .base import ModelSpec
from .ddpm import DDPM

SCALE_SEED = 0  # the posterior draws the scale is measured on
SCALE_BATCH = 500


def autoencoder_spec(f: int, channels: int) -> ModelSpec:
    """The first stage a latent model of factor ``f`` trains on: its own checkpoint, ``kl-ae-f<f>-<preset>.ckpt``."""
    return ModelSpec("kl-ae", {"f": f, "channels": channels}, tag=f"kl-ae-f{f}")


def weights_digest(module: nn.Module) -> str:
    from ..metrics._cache import digest_tensors

    return digest_tensors(module.state_dict())


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


class LatentDecoder(nn.Module):
    """Latents (as sampled, scaled) -> images in [-1, 1]: undo the scale, decode, clamp to the data range."""

    def __init__(self, autoencoder: KLAutoencoder, scale: Tensor):
        super().__init__()
        self.autoencoder = autoencoder
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, z: Tensor) -> Tensor:
        return self.autoencoder.decode(z / self.scale).clamp(-1, 1)


class LatentDiffusion(DDPM):
    frozen_prefixes = ("autoencoder.",)  # shipped as its own model; its digest is checked on every load
    def __init__(
        self,
        net: dict[str, Any],
        *,
        autoencoder_net: dict[str, Any],
        autoencoder_config: dict[str, Any],
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        lr: float = 2e-4,
        warmup_steps: int = 0,
        ema_decay: float = 0.9999,
        grad_clip: float = 1.0,
        clip_x0: bool = False,
        training_config: dict[str, Any] | None = None,
    ):
        if clip_x0:
            raise ValueError("latent diffusion never clips x0: latents are not bounded to [-1, 1]")
        super().__init__(net, num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, lr=lr,
                         warmup_steps=warmup_steps, ema_decay=ema_decay, grad_clip=grad_clip, clip_x0=False,
                         training_config=training_config)
        self.autoencoder: KLAutoencoder = build_net(autoencoder_net).requires_grad_(False).eval()
        self.register_buffer("scale_factor", torch.tensor(1.0))
        self.sample_shape = tuple(self.autoencoder.latent_shape)  # the harness draws x_T in this shape
        self.autoencoder_digest: str | None = None  # set when the trained autoencoder is taken in
        self.reconstruction: dict[str, Any] = {}  # the autoencoder's figures: the quality ceiling

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, is_image: bool, training_config: dict[str, Any],
                    prerequisites: dict[str, L.LightningModule] | None = None) -> LatentDiffusion:
        ae = (prerequisites or {}).get("autoencoder")
        if not isinstance(ae, Autoencoder):
            raise TypeError("latent diffusion is built on its autoencoder: build it with train.build_model, which "
                            "passes the autoencoder named by LatentDiffusion.prerequisites")
        c, side, _ = ae.net.latent_shape
        # Levels that would shrink the latent below 2x2 are dropped (digits at f = 4: 2x2, no downsampling): a
        # 1x1 map has nothing to convolve, and GroupNorm over one value per group returns zeros.
        sizes = level_sizes(side, len(cfg.net["ch_mult"]))
        ch_mult = tuple(cfg.net["ch_mult"])[: max(1, sum(s >= 2 for s in sizes))]
        net = {**cfg.net, "in_channels": c, "image_size": side, "ch_mult": ch_mult}
        return cls(net, autoencoder_net=dict(ae.hparams.net), autoencoder_config=ae.hparams.training_config,
                   num_train_timesteps=cfg.options["num_train_timesteps"], beta_schedule=cfg.options["beta_schedule"],
                   lr=cfg.lr, warmup_steps=cfg.warmup_steps, ema_decay=cfg.ema_decay, grad_clip=cfg.grad_clip,
                   training_config=training_config)

    @staticmethod
    def prerequisites(cfg: TrainConfig) -> dict[str, ModelSpec]:
        """The models to train (or reuse) before this one: the autoencoder of the configured f and channels."""
        return {"autoencoder": autoencoder_spec(cfg.options["f"], cfg.options["channels"])}

    # ---------------------------------------------------------------- the autoencoder, taken in or checked

    def use_prerequisites(self, models: dict[str, L.LightningModule]) -> None:
        """Before training: take the trained autoencoder's weights and identity."""
        ae = self._autoencoder_of(models)
        self.autoencoder.load_state_dict(ae.net.state_dict())
        self.autoencoder_digest = weights_digest(self.autoencoder)
        self.reconstruction = dict(ae.reconstruction)
        self.pretrain_gflops = ae.training_gflops()

    def check_prerequisites(self, models: dict[str, L.LightningModule]) -> None:
        """On reuse: refuse this checkpoint unless it was trained on the latents of exactly this autoencoder."""
        ae = self._autoencoder_of(models)
        have = weights_digest(self.autoencoder)
        if self.autoencoder_digest is not None and have != self.autoencoder_digest:
            raise CheckpointError("this latent diffusion checkpoint is corrupt: its autoencoder weights are not the "
                                  "ones it recorded. Delete it, or pass --retrain.")
        want = weights_digest(ae.net)
        if have != want:
            raise CheckpointError(
                f"latent diffusion checkpoint was trained on the latents of autoencoder weights {have[:10]}, but the "
                f"autoencoder checkpoint for this preset now holds {want[:10]} (retrained?): its latent space is "
                "another. It is never used silently: pass --retrain (trains both anew) or delete it.")
        self.autoencoder_digest = have  # checked: a kept checkpoint's file records none of its own
        self.reconstruction = dict(ae.reconstruction)
        self.pretrain_gflops = ae.training_gflops()

    def _autoencoder_of(self, models: dict[str, L.LightningModule]) -> Autoencoder:
        ae = models.get("autoencoder")
        if not isinstance(ae, Autoencoder):
            raise TypeError(f"latent diffusion needs its trained autoencoder, got {type(ae).__name__}")
        want, have = ae.hparams.training_config, self.hparams.autoencoder_config
        if _canonical(want) != _canonical(have):
            keys = sorted(k for k in set(want) | set(have) if _canonical(want.get(k)) != _canonical(have.get(k)))
            details = "; ".join(f"{k}: latent model has {have.get(k)!r}, autoencoder has {want.get(k)!r}" for k in keys)
            raise CheckpointError(
                f"latent diffusion model was made for another autoencoder configuration ({details}). Its latents "
                "would mean something else: pass --retrain, or ask for the configuration it was made with.")
        return ae

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["autoencoder"] = {"weights": self.autoencoder_digest, "reconstruction": self.reconstruction}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stored = checkpoint.get("autoencoder") or {}
        self.autoencoder_digest = stored.get("weights")
        self.reconstruction = stored.get("reconstruction", {})

    def row_info(self) -> dict[str, Any]:
        """What a results row should carry about the first stage: the reconstruction figures (``recon_fid`` is
        the FID ceiling of any sampler on this model), the latent shape and scale, the autoencoder's digest."""
        c, h, w = self.sample_shape
        info = {"recon_fid": math.nan, "recon_psnr": math.nan, "recon_mse": math.nan, **self.reconstruction}
        return {**info, "latent_shape": f"{c}x{h}x{w}", "latent_scale": float(self.scale_factor),
                "autoencoder": f"kl-ae-f{self.autoencoder.f}-{(self.autoencoder_digest or 'untrained')[:10]}"}

    # ---------------------------------------------------------------------------------- latents

    def training_points(self, x: Tensor) -> Tensor:
        """The scaled latent means of the training images: the points latent diffusion learned to sample."""
        return torch.cat([self.encode(b, sample=False) for b in x.split(SCALE_BATCH)])

    def encode(self, x: Tensor, generator: torch.Generator | None = None, *, sample: bool = True) -> Tensor:
        """Scaled latents of images: a posterior sample (or the mean), times the scale factor."""
        with torch.no_grad():
            mean, logvar = self.autoencoder.encode(x)
            if sample:
                noise = torch.randn(mean.shape, generator=generator).to(mean) if generator else torch.randn_like(mean)
                mean = mean + (0.5 * logvar).exp() * noise
        return mean * self.scale_factor

    def decoder(self) -> LatentDecoder:
        """The network the harness times apart: sampled latents -> images in [-1, 1]."""
        return LatentDecoder(self.autoencoder, self.scale_factor).eval()

    @torch.no_grad()
    def fit_scale(self, images: Tensor) -> float:
        """Set the scale to 1/std of one seeded posterior sample of every image in ``images``; returns it."""
        self.scale_factor.fill_(1.0)
        g = torch.Generator().manual_seed(SCALE_SEED)
        z = torch.cat([self.encode(b.to(self.device), g).cpu() for b in images.split(SCALE_BATCH)])
        self.scale_factor.fill_(1.0 / z.double().std().item())
        return float(self.scale_factor)

    # ---------------------------------------------------------------------------------- training

    @cached_property
    def train_passes(self) -> float:  # type: ignore[override]
        """One step's FLOPs per example in units of the latent UNet's forward, counted (``flops.py``): its
        forward and backward and the frozen encoder's forward on the batch, which at f = 4 on digits costs more
        than the UNet itself. The autoencoder's own training is ``pretrain_gflops``."""
        c, side, _ = self.sample_shape
        ae = self.hparams.autoencoder_net
        x = torch.zeros(2, ae["in_channels"], ae["image_size"], ae["image_size"], device=self.device)
        with own_random_stream(self.device):
            with torch.no_grad():
                unet = forward_flops(lambda: self.net(torch.zeros(2, c, side, side, device=self.device),
                                                      torch.zeros(2, dtype=torch.long, device=self.device)))
            step = counted_flops(lambda: self.loss(self.encode(x)))
        for p in self.parameters():
            p.grad = None
        return step / unet
    
    def on_fit_start(self) -> None:
        if self.autoencoder_digest is None:
            raise RuntimeError("latent diffusion has no trained autoencoder: train it with train.train_model, which "
                               "trains (or reuses) the autoencoder first")
        self.autoencoder.eval()
        if self.trainer.datamodule is None:
            raise RuntimeError("latent diffusion measures its latent scale on the training split: fit it with a "
                               "TrilemmaDataModule (train.train_model does)")
        images = self.trainer.datamodule.train_dataloader().dataset.tensors[0]
        scale = self.fit_scale(images)
        from ..report_utils import log

        log(f"latent scale 1/std = {scale:.4g} over the {len(images)} training images")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return super().training_step((self.encode(batch[0]), batch[1]), batch_idx)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # Posterior means: the validation loss then moves only with the weights, as DDPM's does.
        super().validation_step((self.encode(batch[0], sample=False), batch[1]), batch_idx)

    def train(self, mode: bool = True) -> LatentDiffusion:
        super().train(mode)
        self.autoencoder.eval()  # frozen: never in training mode
        return self
