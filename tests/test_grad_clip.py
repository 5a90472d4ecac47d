"""Gradient clipping: each model clips its optimizer's gradients to its own ``grad_clip`` (not the Trainer's).

One real Lightning step per model on digits with tiny networks; the gradients left after the step are the ones
the optimizer used. A limit far below a fresh network's gradient norm must bind; 0 must leave it alone."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from trilemma_bench.data import TrilemmaDataModule
from trilemma_bench.methods.latent import autoencoder_spec
from trilemma_bench.presets import Preset, TrainConfig, get_preset
from trilemma_bench.train import build_model

TINY_UNET = {"ch": 8, "ch_mult": (1, 2), "num_res_blocks": 1, "attn_resolutions": (), "dropout": 0.0}
AE = {"type": "kl-autoencoder", "in_channels": 1, "image_size": 8, "ch": 8, "ch_mult": (1, 2),
      "num_res_blocks": 1, "mid_attention": False}
LIMIT = 1e-4  # a fresh network's gradient norm is orders of magnitude above this


def _preset(grad_clip: float) -> Preset:
    digits = get_preset("digits")
    return Preset(
        name="clip-test", dataset="digits", num_samples=8, sample_batch_size=8,
        models={
            **{m: digits.models[m].replace(net={**digits.models[m].net, **TINY_UNET}, grad_clip=grad_clip,
                                           warmup_steps=0) for m in ("ddpm", "vdm")},
            "kl-ae": TrainConfig(AE, 1, batch_size=32, lr=1e-3, grad_clip=grad_clip,
                                 options={"f": 2, "channels": 2, "kl_weight": 1e-6, "recon_split": None}),
        },
    )


def _grad_norm_after_one_step(model: str, grad_clip: float) -> float:
    spec = autoencoder_spec(2, 2) if model == "kl-ae" else model
    module = build_model(spec, _preset(grad_clip))
    torch.manual_seed(0)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=TrilemmaDataModule("digits", batch_size=32))
    grads = [p.grad for group in trainer.optimizers[0].param_groups for p in group["params"] if p.grad is not None]
    assert grads, "the step left no gradients to measure"
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@pytest.mark.parametrize("model", ["ddpm", "vdm", "kl-ae"])
def test_each_model_clips_to_its_own_grad_clip(model: str) -> None:
    free = _grad_norm_after_one_step(model, 0.0)
    clipped = _grad_norm_after_one_step(model, LIMIT)
    assert free > 100 * LIMIT
    assert clipped == pytest.approx(LIMIT, rel=1e-3)
