"""Exponential moving average of weights, the copy every method samples with."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """EMA with the usual warm-up decay min(decay, (1+n)/(10+n)), so short CPU runs are not dominated by init."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        n = self.num_updates.item()
        d = min(self.decay, (1 + n) / (10 + n))
        ema_params = list(self.module.parameters()) + list(self.module.buffers())
        params = list(model.parameters()) + list(model.buffers())
        floats = [(e, p) for e, p in zip(ema_params, params) if e.dtype.is_floating_point]
        torch._foreach_lerp_([e for e, _ in floats], [p.detach() for _, p in floats], 1 - d)

    def train(self, mode: bool = True) -> EMA:
        # The averaged copy always runs in eval mode (no dropout).
        super().train(mode)
        self.module.eval()
        return self
