"""The learning-rate schedule the diffusion models share: linear warm-up, then constant (Ho et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch


def with_warmup(opt: torch.optim.Optimizer, warmup_steps: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer: ``opt`` with its rate ramped over ``warmup_steps`` steps."""
    warmup = max(1, warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
