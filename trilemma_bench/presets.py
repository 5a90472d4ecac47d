"""Size presets: a dataset, a network and a training budget, from seconds on a CPU to the DDPM paper's size.

Costs measured on the 2-core development CPU are in the README; each preset states what it is for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str
    net: dict[str, Any]
    train_steps: int
    batch_size: int = 128
    lr: float = 2e-4
    warmup_steps: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    # Evaluation defaults for the benchmark harness.
    num_samples: int = 1000
    sample_batch_size: int = 500
    nfe: tuple[int, ...] = (10, 20, 50, 100)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def training_config(self) -> dict[str, Any]:
        """Everything that changes the trained weights: a checkpoint made under another one is refused."""
        keys = ("dataset", "net", "train_steps", "batch_size", "lr", "warmup_steps", "ema_decay", "grad_clip",
                "num_train_timesteps", "beta_schedule")
        return {k: getattr(self, k) for k in keys}

    def replace(self, **changes: Any) -> Preset:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="smoke",
            dataset="toy2d",
            net={"type": "mlp", "dim": 2, "hidden": 128, "depth": 3},
            train_steps=8000,
            batch_size=256,
            lr=2e-3,
            warmup_steps=100,
            ema_decay=0.995,
            num_samples=2000,
            sample_batch_size=2000,
            note="25-Gaussian grid, MLP denoiser: seconds on a CPU; what CI regresses on.",
        ),
        Preset(
            name="digits",
            dataset="digits",
            net={"type": "unet", "in_channels": 1, "image_size": 8, "ch": 32, "ch_mult": (1, 2),
                 "num_res_blocks": 1, "attn_resolutions": (4,), "dropout": 0.1},
            # 8,000 steps, not 4,000: deterministic DDIM needs the better-trained eps far more than ancestral
            # DDPM does (2,000 samples: DDIM@50 FID 0.98 -> 0.46 from 4k to 8k steps, DDPM@1000 0.68 -> 0.39).
            # 2,000 samples: FID's bias and seed spread at 1,000 made DDIM/DDPM ratios swing 1.5-2.9x.
            train_steps=8000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            ema_decay=0.999,
            num_samples=2000,
            note="scikit-learn's 8x8 digits, 0.7M-parameter UNet: about 15 minutes on a 2-core CPU; the default.",
        ),
        Preset(
            name="small",
            dataset="mnist",
            # ch 16 at 28x28 with the width in the 14x14 and 7x7 levels (ch_mult 1,2,4): 0.34 s a step on 2
            # CPU threads against 0.68 s for ch 32 (1,2,2), so 6,000 steps (16 epochs) fit in about an hour.
            net={"type": "unet", "in_channels": 1, "image_size": 28, "ch": 16, "ch_mult": (1, 2, 4),
                 "num_res_blocks": 1, "attn_resolutions": (7,), "dropout": 0.1},
            train_steps=6000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            ema_decay=0.999,
            num_samples=2000,
            note="MNIST 28x28, 0.7M-parameter UNet: minutes on a GPU, about an hour on a 2-core CPU.",
        ),
        Preset(
            name="paper",
            dataset="cifar10",
            net={"type": "unet", "in_channels": 3, "image_size": 32, "ch": 128, "ch_mult": (1, 2, 2, 2),
                 "num_res_blocks": 2, "attn_resolutions": (16,), "dropout": 0.1},
            train_steps=800_000,
            batch_size=128,
            lr=2e-4,
            warmup_steps=5000,
            ema_decay=0.9999,
            num_samples=50_000,
            nfe=(10, 20, 50, 100),
            note="CIFAR-10 at the DDPM paper's size (35.7M parameters, 800k steps): a GPU job.",
        ),
    ]
}

DEFAULT_PRESET = "digits"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
