"""Training compute, counted: the counter agrees with torch's FlopCounterMode on a forward pass, a denoiser's
forward and backward is the 3 forward passes the curves' GFLOPs assume, and DDGAN's count (G and D, R1) lies
within the bounds its two steps allow."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from trilemma_bench.flops import counted_flops, forward_flops
from trilemma_bench.presets import PRESETS
from trilemma_bench.train import build_model


def test_the_counter_agrees_with_torchs_on_a_forward_pass() -> None:
    net = build_model("ddpm", PRESETS["digits"]).net
    x, t = torch.randn(3, 1, 8, 8), torch.full((3,), 500)
    with FlopCounterMode(display=False) as reference:
        net(x, t)
    assert forward_flops(lambda: net(x, t)) == reference.get_total_flops() > 0


def test_a_denoisers_training_step_counts_three_forward_passes() -> None:
    """Backward is about twice the forward (weights' and inputs' gradients; the input layer's input gradient
    is not needed), which is what ``ShipsWeights.train_passes = 3`` assumes for DDPM, VDM and latent models."""
    model = build_model("ddpm", PRESETS["digits"])
    x0 = torch.zeros(4, 1, 8, 8)
    forward = forward_flops(lambda: model.net(x0, torch.full((4,), 500)))
    assert counted_flops(lambda: model.loss(x0)) / forward == pytest.approx(3.0, rel=0.01)


def test_ddgan_counts_its_generator_and_discriminator_and_leaves_the_random_stream_alone() -> None:
    """Per iteration: D's step runs G forward (no graph), D forward on a real and a fake pair and back (4-6 D),
    G's step runs G forward and back (3 G) and D forward and back to its input (2-3 D); R1 adds a little every
    lazy_reg iterations. In units of G's forward: between 4 + 6 D/G and 4 + 10 D/G."""
    model = build_model("ddgan", PRESETS["digits"])
    x0, t = torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)
    g = forward_flops(lambda: model.gen(x0, t, torch.zeros(2, model.nz)))
    d = forward_flops(lambda: model.disc(x0, x0, t))
    torch.manual_seed(0)
    passes = model.train_passes
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))  # counting drew nothing from the global stream
    assert 4 + 6 * d / g < passes < 4 + 10 * d / g
    assert all(p.grad is None for p in model.parameters()) and all(p.requires_grad for p in model.disc.parameters())
    toy = build_model("ddgan", PRESETS["smoke"])  # a point model counts too
    assert toy.train_passes > 4
