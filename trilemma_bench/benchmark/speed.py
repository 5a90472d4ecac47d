"""Sampling as fast as the hardware allows, each option recorded in the row: bf16 autocast (timing.precision),
channels_last, ``torch.compile`` with static shapes, and CUDA graphs for few-step samplers.

CUDA graphs come through ``torch.compile(mode="reduce-overhead")``, which records the compiled network's
kernels into a graph replayed at every call: what removes the launch overhead that dominates a few-step
sampler at small batch. The sampler's own few elementwise operations and its per-image noise (drawn on the
CPU, see noise.py) stay outside the graph. Compilation happens in the untimed warm-up; its cost is recorded
apart (``warmup_seconds``) and never enters ms/image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def check_options(device: torch.device, *, compile: bool, channels_last: bool, cuda_graphs: bool) -> None:
    """Refuse combinations that cannot run, before any work."""
    if cuda_graphs and device.type != "cuda":
        raise ValueError("--cuda-graphs needs a CUDA device (graphs replay GPU kernels); drop it or use --device cuda")
    if cuda_graphs and not compile:
        raise ValueError("--cuda-graphs works through torch.compile(mode='reduce-overhead'): add --compile")


class ChannelsLast(nn.Module):
    """Runs ``net`` with its weights and 4-D inputs in channels_last memory format (NHWC kernels)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x, *args, **kwargs).contiguous()


def accelerated(net: nn.Module, *, compile: bool, channels_last: bool, cuda_graphs: bool) -> Callable[..., Tensor] | None:
    """The network as the timed runs call it, or None when no option is on (the eager network itself)."""
    if not (compile or channels_last):
        return None
    fast: nn.Module = ChannelsLast(net) if channels_last else net
    if compile:
        # Static shapes: the timed batches all have one shape; a last, smaller batch recompiles untimed.
        fast = torch.compile(fast, dynamic=False, mode="reduce-overhead" if cuda_graphs else "default")
    return fast
