"""Size presets: a dataset, a network and a training budget, from seconds on a CPU to the DDPM paper's size.

Costs measured on the 2-core development CPU are in the README; each preset states what it is for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained for a preset: everything that changes its weights (a checkpoint made
    under another configuration is refused). ``options`` holds the model's own knobs: DDPM's schedule,
    DDGAN's number of steps and discriminator, VDM's gamma schedule."""

    net: dict[str, Any]
    train_steps: int
    batch_size: int = 128
    lr: float = 2e-4
    warmup_steps: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    hflip: bool = False  # random horizontal flips of training images
    options: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_options(self, **options: Any) -> TrainConfig:
        return self.replace(options={**self.options, **options})


@dataclass(frozen=True)
class Preset:
    """A dataset, the training configuration of every model that has one at this size, and the
    evaluation defaults of the benchmark harness."""

    name: str
    dataset: str
    models: dict[str, TrainConfig]
    num_samples: int = 1000
    sample_batch_size: int = 500
    note: str = ""

    def train_config(self, model: str) -> TrainConfig:
        if model not in self.models:
            have = [name for name, p in PRESETS.items() if model in p.models]
            raise ValueError(
                f"preset {self.name!r} has no configuration for model {model!r}"
                + (f": presets that have one: {', '.join(have)}" if have else "")
            )
        return self.models[model]

    def training_config(self, model: str, variant: dict[str, Any] | None = None) -> dict[str, Any]:
        """The identity a checkpoint of ``model`` (with ``variant`` options) must carry to be reused."""
        cfg = self.train_config(model)
        if variant:
            cfg = cfg.with_options(**variant)
        return {"dataset": self.dataset, "model": model, **dataclasses.asdict(cfg)}

    def replace(self, **changes: Any) -> Preset:
        return dataclasses.replace(self, **changes)

    def with_steps(self, steps: int, model: str | None = None) -> Preset:
        """``model`` (every model of the preset when None) trained for ``steps`` steps (``--steps``). Naming the
        model leaves what it is trained on (latent diffusion's autoencoder) as the preset has it."""
        if steps < 1:
            raise ValueError(f"--steps must be positive, got {steps}")
        return self.replace(models={m: c.replace(train_steps=steps) if model in (None, m) else c
                                    for m, c in self.models.items()})

    def validate_every(self, model: str) -> int:
        """Steps between validations: a tenth of the run, but never more than a tenth of the named preset's
        length. A run longer than the preset's (``--steps``) then validates where the preset's run does, and as
        each validation draws from the global random stream (the loader's seed), its first steps are that run's
        bit for bit: a longer curve continues the shipped one instead of restarting it."""
        total = self.train_config(model).train_steps
        return max(1, min(total, self.nominal_steps(model) or total) // 10)

    def nominal_steps(self, model: str) -> int | None:
        """``model``'s training steps in the preset of this name as defined (None for a preset made elsewhere)."""
        nominal = PRESETS[self.name].models.get(model) if self.name in PRESETS else None
        return None if nominal is None else nominal.train_steps


def _ddpm(net: dict[str, Any], train_steps: int, **kwargs: Any) -> TrainConfig:
    """DDPM's configuration: Ho et al.'s linear schedule over T = 1000 unless said otherwise."""
    return TrainConfig(net, train_steps, options={"num_train_timesteps": 1000, "beta_schedule": "linear"}, **kwargs)


def _vdm(net: dict[str, Any], train_steps: int, **kwargs: Any) -> TrainConfig:
    """VDM's configuration: the official CIFAR-10 run's learnable_scalar schedule between gamma -13.3 and 5.0,
    Fourier features 2^6 and 2^7 of the input, AdamW (0.9, 0.99) with weight decay 0.01."""
    return TrainConfig({**net, "fourier": (6, 7)}, train_steps,
                       options={"gamma_type": "learnable_scalar", "gamma_min": -13.3, "gamma_max": 5.0,
                                "weight_decay": 0.01, "adam_betas": (0.9, 0.99)}, **kwargs)


# The networks VDM shares with DDPM at each size, so that their likelihoods compare.
DIGITS_UNET = {"type": "unet", "in_channels": 1, "image_size": 8, "ch": 32, "ch_mult": (1, 2), "num_res_blocks": 1,
               "attn_resolutions": (4,), "dropout": 0.1}
MNIST_UNET = {"type": "unet", "in_channels": 1, "image_size": 28, "ch": 16, "ch_mult": (1, 2, 4), "num_res_blocks": 1,
              "attn_resolutions": (7,), "dropout": 0.1}


def _ddgan(net: dict[str, Any], disc: dict[str, Any], train_steps: int, *, lr_d: float, r1_gamma: float,
           lazy_reg: int, **kwargs: Any) -> TrainConfig:
    """DDGAN's configuration (Xiao et al. 2022): T = 4 unless a variant asks for another (``--nfe``), the VP-SDE
    with beta 0.1..20, G's learning rate in ``lr``, D's in ``options``; no warm-up and no clipping, as theirs."""
    options = {"num_timesteps": 4, "beta_min": 0.1, "beta_max": 20.0, "disc": disc, "lr_d": lr_d,
               "r1_gamma": r1_gamma, "lazy_reg": lazy_reg}
    return TrainConfig(net, train_steps, warmup_steps=0, grad_clip=0.0, options=options, **kwargs)


def _autoencoder(net: dict[str, Any], train_steps: int, recon_split: str, **kwargs: Any) -> TrainConfig:
    """Latent diffusion's KL autoencoder: ``ch_mult`` lists the levels of the largest f; a model variant picks
    f (the first log2(f) + 1 levels) and its latent channels. KL weight 1e-6 as the reference's configs;
    ``recon_split`` is the split benchmark rows are scored against (its reconstruction FID is their ceiling)."""
    options = {"f": 2, "channels": 2, "kl_weight": 1e-6, "recon_split": recon_split, "recon_extractor": "domain"}
    return TrainConfig({"type": "kl-autoencoder", **net}, train_steps, options=options, **kwargs)


def _latent(net: dict[str, Any], train_steps: int, **kwargs: Any) -> TrainConfig:
    """Latent diffusion: DDPM's schedule on latents; the UNet's input size and channels come from the
    autoencoder of the variant's f (options ``f`` and ``channels``)."""
    options = {"num_train_timesteps": 1000, "beta_schedule": "linear", "f": 2, "channels": 2}
    return TrainConfig({"type": "unet", **net}, train_steps, options=options, **kwargs)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="smoke",
            dataset="toy2d",
            models={
                "ddpm": _ddpm({"type": "mlp", "dim": 2, "hidden": 128, "depth": 3}, 8000, batch_size=256, lr=2e-3,
                              warmup_steps=100, ema_decay=0.995),
                # G has no tanh: toy2d's modes lie in [-2, 2] (points to 2.2), outside tanh's range. Both MLPs see
                # Fourier features of their points: without them D stayed at chance for 900 steps, unable to
                # resolve the 0.05-std modes, and samples stayed blurred (7% within 3 std). G adds its input to
                # its output: from outputs near 0, the sharp D pulled every point onto the 5 central modes in
                # every setting tried. 400 steps: 25 modes, 84-86% within 3 std on 3 seeds (1,000: 21-24 modes).
                "ddgan": _ddgan({"type": "mlp", "dim": 2, "hidden": 128, "depth": 3, "z_dim": 100, "z_emb_dim": 128,
                                 "n_mlp": 2, "fourier": (-1, 0, 1, 2), "skip": True},
                                {"type": "mlp_discriminator", "dim": 2, "hidden": 128, "depth": 3,
                                 "fourier": (-1, 0, 1, 2)},
                                400, batch_size=256, lr=1e-3, lr_d=1e-3, r1_gamma=0.05, lazy_reg=15, ema_decay=0.995),
            },
            num_samples=2000,
            sample_batch_size=2000,
            note="25-Gaussian grid, MLP denoiser: seconds on a CPU; what CI regresses on.",
        ),
        Preset(
            name="digits",
            dataset="digits",
            models={
                # 8,000 steps, not 4,000: deterministic DDIM needs the better-trained eps far more than ancestral
                # DDPM does (2,000 samples: DDIM@50 FID 0.98 -> 0.46 from 4k to 8k steps, DDPM@1000 0.68 -> 0.39).
                "ddpm": _ddpm(DIGITS_UNET, 8000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
                # DDPM's network (plus Fourier features) and training budget, so that their bits/dim and FID
                # compare at equal training. VDM's step costs ~1.13x DDPM's (measured at 1 thread), so
                # `make bench METHOD=vdm` from a fresh clone needs ~26 min, like DDPM's own 1000-NFE grid.
                "vdm": _vdm(DIGITS_UNET, 8000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
                # DDPM's UNet as G (AdaGN from z, tanh, no dropout as the official G), a 0.25M-parameter D; the
                # official CIFAR-10 G learning rate, R1 weight and lazy_reg. D's rate is 8x G's, not the official
                # 1.25e-4: at that rate D's loss stayed near chance (1.386) all run (1.381 over the last 1,000 of
                # 4,000 iterations) and FID ended at 21.8; at 1e-3 D leaves chance within 1,000 and reaches 21.3 there
                # (5e-4: 41.1); benchmarks/study_ddgan_digits_length.py, seed 0, 2,000 samples.
                "ddgan": _ddgan({**DIGITS_UNET, "dropout": 0.0, "z_dim": 100, "z_emb_dim": 128, "n_mlp": 3,
                                 "output": "tanh"},
                                {"type": "discriminator", "in_channels": 1, "ch": 32, "ch_mult": (1, 2, 2), "t_dim": 128},
                                4000, batch_size=128, lr=1.6e-4, lr_d=1e-3, r1_gamma=0.02, lazy_reg=15,
                                ema_decay=0.999),
                # 2,000 steps: at f = 2 the reconstruction FID went 1.06, 0.44, 0.12, 0.11 at 500, 1k, 2k, 3k steps
                # (benchmarks/study_latent_autoencoder.py); lr 3e-3 and ch 32 reached the lowest validation MSE at 600
                # steps of {1e-3, 3e-3} x {16, 32}.
                "kl-ae": _autoencoder({"in_channels": 1, "image_size": 8, "ch": 32, "ch_mult": (1, 2, 2),
                                       "num_res_blocks": 1, "mid_attention": True},
                                      2000, recon_split="train", batch_size=128, lr=3e-3, warmup_steps=100, grad_clip=0.0),
                # The pixel model's UNet and budget on latents: rows differ only in the space they diffuse in.
                "ldm": _latent({"ch": 32, "ch_mult": (1, 2), "num_res_blocks": 1, "attn_resolutions": (4,), "dropout": 0.1},
                               8000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
            },
            # 2,000 samples: FID's bias and seed spread at 1,000 made DDIM/DDPM ratios swing 1.5-2.9x.
            num_samples=2000,
            note="scikit-learn's 8x8 digits, 0.7M-parameter UNet: about 40 minutes for `make bench METHOD=ddim` on a 2-core CPU; the default.",
        ),
        Preset(
            name="small",
            dataset="mnist",
            models={
                # ch 16 at 28x28 with the width in the 14x14 and 7x7 levels (ch_mult 1,2,4): 0.34 s a step on 2
                # CPU threads against 0.68 s for ch 32 (1,2,2), so 6,000 steps (16 epochs) fit in about an hour.
                "ddpm": _ddpm(MNIST_UNET, 6000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
                "vdm": _vdm(MNIST_UNET, 6000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
                # No middle attention in the autoencoder: at f = 1 it would attend over 784 pixels, costing more
                # than the rest of the network.
                "kl-ae": _autoencoder({"in_channels": 1, "image_size": 28, "ch": 16, "ch_mult": (1, 2, 2),
                                       "num_res_blocks": 1, "mid_attention": False},
                                      3000, recon_split="test", batch_size=128, lr=3e-3, warmup_steps=100, grad_clip=0.0),
                # The pixel model's UNet and budget on latents of 28 / f: 28x28, 14x14 (14 -> 7 -> 4) or 7x7 (7 -> 4 -> 2).
                # Each group norm averages at least 256 values: with 16 (one channel per group on the 7x7 map) the
                # network lost each channel's level, 58% of its eps error at high noise (docs/results.md, MNIST).
                "ldm": _latent({"ch": 16, "ch_mult": (1, 2, 4), "num_res_blocks": 1, "attn_resolutions": (7,),
                                "dropout": 0.1, "norm_min_values": 256}, 6000, batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999),
            },
            num_samples=2000,
            note="MNIST 28x28, 0.7M-parameter UNet: minutes on a GPU, about an hour on a 2-core CPU.",
        ),
        Preset(
            name="stacked",
            dataset="stacked-mnist",
            models={
                # StackedMNIST at 28x28 (no padding to 32: the UNet's three levels run at 28, 14 and 7), G the
                # width of the small preset's UNet with 3 channels, D 16 wide; DDPM the same UNet for comparison.
                # D's rate 8x G's, as digits: at the official 1.25e-4 both D's (T = 1 and 4) fell back to chance
                # after ~400 of 4,000 iterations (mean loss 1.38-1.40 over iterations 500-720, from 1.07-1.20 at
                # 300), the failure the digits study traced to that rate.
                "ddgan": _ddgan({"type": "unet", "in_channels": 3, "image_size": 28, "ch": 16, "ch_mult": (1, 2, 4),
                                 "num_res_blocks": 1, "attn_resolutions": (7,), "dropout": 0.0, "z_dim": 100,
                                 "z_emb_dim": 128, "n_mlp": 3, "output": "tanh"},
                                {"type": "discriminator", "in_channels": 3, "ch": 16, "ch_mult": (1, 2, 4, 4),
                                 "t_dim": 128},
                                10_000, batch_size=64, lr=1.6e-4, lr_d=1e-3, r1_gamma=0.02, lazy_reg=15,
                                ema_decay=0.999),
                "ddpm": _ddpm({"type": "unet", "in_channels": 3, "image_size": 28, "ch": 16, "ch_mult": (1, 2, 4),
                               "num_res_blocks": 1, "attn_resolutions": (7,), "dropout": 0.1},
                              10_000, batch_size=64, lr=1e-3, warmup_steps=200, ema_decay=0.999),
            },
            # The mode-coverage protocol of VEEGAN, PacGAN and DDGAN: 26,000 samples, 1000 modes.
            num_samples=26_000,
            note="StackedMNIST 3x28x28, 1000 modes, 1M-parameter G: hours on a 2-core CPU, minutes on a GPU.",
        ),
        Preset(
            name="paper",
            dataset="cifar10",
            models={
                "ddpm": _ddpm({"type": "unet", "in_channels": 3, "image_size": 32, "ch": 128, "ch_mult": (1, 2, 2, 2),
                               "num_res_blocks": 2, "attn_resolutions": (16,), "dropout": 0.1},
                              800_000, batch_size=128, lr=2e-4, warmup_steps=5000, ema_decay=0.9999, hflip=True),
            },
            num_samples=50_000,
            note="CIFAR-10 at the DDPM paper's size (35.7M parameters, 800k steps): a GPU job.",
        ),
    ]
}

DEFAULT_PRESET = "digits"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
