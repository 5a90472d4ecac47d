"""Training compute, counted: the FLOPs of the ops torch's flop counter knows (matmuls, convolutions, attention,
their backward ops; not elementwise ops) while a piece of training runs.

The count goes through a plain dispatch mode over ``torch.utils.flop_counter``'s formulas rather than
``FlopCounterMode``, whose module tracker cannot run inside ``torch.autograd.grad`` (R1's gradient penalty)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def forward_flops(forward: Callable[[], Any]) -> int:
    """FLOPs of one call of ``forward``."""
    with _Counter() as counter:
        forward()
    return counter.total


def counted_flops(loss: Callable[[], Tensor]) -> int:
    """FLOPs of computing ``loss()`` and its backward pass, as they run (gradients are left on the parameters:
    clear them after)."""
    with _Counter() as counter:
        loss().backward()
    return counter.total


def own_random_stream(device: torch.device) -> AbstractContextManager[Any]:
    """Random draws made while counting (a loss's noise and t) come from a fork: training's and the bench's
    streams stay where they were."""
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])
