"""What the diffusion models share in their optimization: the learning-rate schedule (linear warm-up, then
constant; Ho et al. 2020) and gradient clipping to a global norm set per model."""

from __future__ import annotations

from typing import Any

import torch


def with_warmup(opt: torch.optim.Optimizer, warmup_steps: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer: ``opt`` with its rate ramped over ``warmup_steps`` steps."""
    warmup = max(1, warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ClipsGradNorm:
    """A LightningModule mixin: clip the optimizer's parameters to the global norm ``hparams.grad_clip`` (Ho et
    al.'s 1.0; 0 turns it off) before every step.

    The limit is the model's, not the Trainer's ``gradient_clip_val``: one Trainer trains every model, and a
    checkpoint then says how its model was clipped. Lightning's ``clip_gradients`` does the clipping."""

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        if self.hparams.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
