"""The shared networks: sizes from the presets, the paper's parameter count, conditioning options, EMA."""

from __future__ import annotations

import pytest
import torch

from trilemma_bench.ema import EMA
from trilemma_bench.nets import MLPDenoiser, UNet, build_net, count_params
from trilemma_bench.presets import PRESETS


def test_paper_preset_is_the_ddpm_cifar10_network() -> None:
    # Ho et al. 2020, App. B: 35.7M parameters for CIFAR-10.
    assert abs(count_params(build_net(PRESETS["paper"].train_config("ddpm").net)) / 1e6 - 35.7) < 0.05


@pytest.mark.parametrize("name", ["smoke", "digits", "small"])
def test_preset_networks_keep_the_data_shape(name: str) -> None:
    from trilemma_bench.data import DATASETS

    preset = PRESETS[name]
    shape = DATASETS[preset.dataset].shape
    x = torch.randn(3, *shape)
    out = build_net(preset.train_config("ddpm").net)(x, torch.tensor([0, 500, 999]))
    assert out.shape == x.shape


def test_unet_depends_on_time_z_and_fourier_features() -> None:
    torch.manual_seed(0)
    net = UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
               fourier=(6, 7), z_dim=4).eval()
    x, z = torch.randn(2, 1, 8, 8), torch.randn(2, 4)
    base = net(x, torch.tensor([10, 10]), z)
    assert not torch.allclose(base, net(x, torch.tensor([900, 900]), z))
    assert not torch.allclose(base, net(x, torch.tensor([10, 10]), torch.randn(2, 4)))
    with pytest.raises(ValueError, match="z_dim"):
        net(x, torch.tensor([1, 1]))


def test_unknown_network_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown network type"):
        build_net({"type": "transformer"})


def test_ema_follows_the_warmup_decay() -> None:
    net = MLPDenoiser(hidden=8, depth=1)
    ema = EMA(net, decay=0.9)
    start = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    d = min(0.9, 2 / 11)  # first update: (1 + n) / (10 + n) with n = 1
    for s, e, p in zip(start, ema.module.parameters(), net.parameters()):
        torch.testing.assert_close(e, d * s + (1 - d) * p)
    assert not ema.module.training
