"""Latent diffusion's first stage as a LightningModule: the KL autoencoder (Rombach et al. 2022, Sec. 3), and the
reconstruction figures that cap what diffusion in its latent space can reach.

The loss, against the reference's ``LPIPSWithDiscriminator`` (CompVis/latent-diffusion,
``ldm/modules/losses/contperceptual.py``) and its KL configs (``configs/autoencoder/autoencoder_kl_*.yaml``):

- reconstruction: L1 summed over pixels, averaged over images. The reference divides it by exp(logvar) and adds
  logvar, a learned scalar initialised at 0 that ``AutoencoderKL.configure_optimizers`` puts in no optimizer,
  so it stays 0 and the term is this plain L1 sum;
- LPIPS: dropped, not replaced (it needs pretrained VGG weights that cannot be had offline); expect blurrier
  reconstructions, and so a weaker reconstruction FID, than the paper's;
- KL to N(0, I), summed per image, at weight 1e-6 (the configs' ``kl_weight``);
- the PatchGAN hinge term with its adaptive weight: not used. The configs switch it on at step 50,001
  (``disc_start``), after reconstruction has converged: in the CPU budgets here (a few thousand steps) the
  reference's own schedule would never reach it, and each step would pay a discriminator pass and two
  gradient norms for nothing.

Adam with betas (0.5, 0.9) as the reference; learning rate, warm-up and steps are the preset's.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..flops import counted_flops, own_random_stream
from ..nets import build_net
from ..nets.autoencoder import KLAutoencoder, kl_to_standard_normal, levels_for
from ..optim import ClipsGradNorm, with_warmup
from ..presets import TrainConfig
from ..weights import ShipsWeights

VAL_SEED = 4321  # validation draws the same posterior noise at every evaluation


class Autoencoder(ShipsWeights, ClipsGradNorm, L.LightningModule):
    """``recon_split``: after training, score reconstructions of that split (the one benchmark rows are scored
    against) with the ``recon_extractor`` features; None skips it (tests)."""

    def __init__(
        self,
        net: dict[str, Any],
        *,
        kl_weight: float = 1e-6,
        lr: float = 1e-3,
        warmup_steps: int = 0,
        grad_clip: float = 0.0,
        recon_split: str | None = None,
        recon_extractor: str = "domain",
        training_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net: KLAutoencoder = build_net(net)
        self.reconstruction: dict[str, Any] = {}  # measured after training, stored in the checkpoint

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, is_image: bool, training_config: dict[str, Any]) -> Autoencoder:
        if not is_image:
            raise ValueError("the KL autoencoder is convolutional: it needs an image dataset, not 2-D points")
        opts = cfg.options
        levels, base = levels_for(opts["f"]), tuple(cfg.net["ch_mult"])
        if len(base) < levels:
            raise ValueError(f"f={opts['f']} needs {levels} levels, but the preset's autoencoder ch_mult {base} has "
                             f"{len(base)}: give it more levels or ask for f <= {2 ** (len(base) - 1)}")
        net = {**cfg.net, "ch_mult": base[:levels], "z_channels": opts["channels"]}
        return cls(net, kl_weight=opts["kl_weight"], lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                   grad_clip=cfg.grad_clip, recon_split=opts.get("recon_split"),
                   recon_extractor=opts.get("recon_extractor", "domain"), training_config=training_config)

    def loss(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        recon, mean, logvar = self.net(x, noise)
        l1 = (x - recon).abs()
        kl = kl_to_standard_normal(mean, logvar)
        loss = l1.flatten(1).sum(1).mean() + self.hparams.kl_weight * kl.mean()
        return loss, {"l1": l1.mean(), "kl": kl.mean() / mean[0].numel()}

    def training_gflops(self) -> float:
        """This autoencoder's whole training, counted (``flops.py``): one step's FLOPs per image, forward and
        backward as training runs them, x batch x steps of its training configuration."""
        cfg, net = self.hparams.training_config or {}, self.hparams.net
        x = torch.zeros(2, net["in_channels"], net["image_size"], net["image_size"], device=self.device)
        trains = [p.requires_grad for p in self.parameters()]
        self.requires_grad_(True)
        with own_random_stream(self.device):
            per_image = counted_flops(lambda: self.loss(x)[0]) / len(x)
        for p, was in zip(self.parameters(), trains):
            p.requires_grad_(was)
            p.grad = None
        return per_image * cfg.get("batch_size", math.nan) * cfg.get("train_steps", math.nan) / 1e9

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, parts = self.loss(batch[0])
        # Both positive: the loss plot takes a log scale. kl is per latent element.
        self.log("train/l1", parts["l1"], prog_bar=True)
        self.log("train/kl", parts["kl"])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x = batch[0]
        g = torch.Generator().manual_seed(VAL_SEED + batch_idx)
        noise = torch.randn((x.shape[0], *self.net.latent_shape), generator=g).to(x.device)
        _, parts = self.loss(x, noise)
        self.log("val/l1", parts["l1"], prog_bar=True)
        self.log("val/mse", nn.functional.mse_loss(self.reconstruct(x), x))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))
        return with_warmup(opt, self.hparams.warmup_steps)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """Decoded posterior means (deterministic), in batches."""
        out = [self.net.decode(self.net.encode(b.to(self.device))[0]) for b in x.split(batch_size)]
        return torch.cat(out).to(x.device)

    def on_fit_end(self) -> None:
        if self.hparams.recon_split:
            self.reconstruction = reconstruction_metrics(
                self, self.hparams.training_config["dataset"], fid_split=self.hparams.recon_split,
                extractor=self.hparams.recon_extractor)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["reconstruction"] = self.reconstruction

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.reconstruction = checkpoint.get("reconstruction", {})


def psnr(mse: float, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2): 10 log10(2^2 / MSE), the usual figure of [0, 1] images."""
    return 10 * math.log10(peak_to_peak**2 / mse) if mse > 0 else math.inf


def reconstruction_metrics(ae: Autoencoder, dataset: str, *, fid_split: str, extractor: str = "domain") -> dict[str, Any]:
    """Reconstructions scored as benchmark samples are: quantized to the data's grid, in the benchmark's features.

    - ``recon_mse`` and ``recon_psnr`` on the held-out test split;
    - ``recon_fid``: reconstructions of ``fid_split`` against that split's statistics (the paper's rFID,
      reconstructions against their originals), where ``fid_split`` is the split benchmark rows are scored
      against, so the figure is the FID a perfect latent model would reach on the rows' scale.
    """
    from ..data import DATASETS, load_split
    from ..metrics import fid_from_stats
    from ..metrics.features import get_extractor
    from ..metrics.reference import reference_stats
    from ..quantize import quantize  # scored exactly as samples are
    from ..report_utils import log

    levels = DATASETS[dataset].levels
    test, _ = load_split(dataset, "test")
    mse = float(nn.functional.mse_loss(quantize(ae.reconstruct(test), levels), test))
    images, _ = load_split(dataset, fid_split)
    with torch.enable_grad():  # a domain classifier not cached yet is trained here, inside a Lightning hook
        features = get_extractor(extractor, dataset, device=ae.device)
    stats = reference_stats(dataset, fid_split, features, device=ae.device)
    fid = fid_from_stats((stats["mu"], stats["sigma"]), features(quantize(ae.reconstruct(images), levels)))
    out = {"recon_mse": mse, "recon_psnr": psnr(mse), "recon_fid": fid, "recon_fid_split": fid_split,
           "recon_fid_n": len(images), "recon_extractor": features.name}
    log(f"autoencoder f={ae.net.f}: test MSE {mse:.4g}, PSNR {out['recon_psnr']:.2f} dB; "
        f"reconstruction FID {fid:.3f} on {fid_split} ({features.name})")
    return out
