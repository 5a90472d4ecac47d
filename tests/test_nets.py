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


def test_unet_depends_on_time_and_fourier_features() -> None:
    torch.manual_seed(0)
    net = UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
               fourier=(6, 7)).eval()
    x = torch.randn(2, 1, 8, 8)
    base = net(x, torch.tensor([10, 10]))
    assert not torch.allclose(base, net(x, torch.tensor([900, 900])))
    without = UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0).eval()
    without.load_state_dict({k: v for k, v in net.state_dict().items() if k != "stem.weight"}, strict=False)
    with torch.no_grad():
        without.stem.weight.copy_(net.stem.weight[:, :1])
    assert not torch.allclose(base, without(x, torch.tensor([10, 10])))  # the Fourier channels matter


def _latent_unet(**kwargs) -> UNet:
    torch.manual_seed(0)
    return UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
                z_dim=4, z_emb_dim=16, n_mlp=2, **kwargs).eval()


def test_unet_latent_reaches_every_res_block_through_adaptive_group_norm_not_the_time_embedding() -> None:
    from trilemma_bench.nets.embeddings import AdaGroupNorm
    from trilemma_bench.nets.unet import Attention, ResBlock

    net = _latent_unet()
    blocks = [m for m in net.modules() if isinstance(m, ResBlock)]
    assert blocks and all(isinstance(b.block1[0], AdaGroupNorm) and isinstance(b.block2[0], AdaGroupNorm)
                          for b in blocks)
    # The other group norms (attention, output head) stay plain, as in DDGAN's NCSN++.
    plain = sum(isinstance(m, torch.nn.GroupNorm) and m.affine for m in net.modules())
    assert plain == 1 + sum(isinstance(m, Attention) for m in net.modules())
    seen: list[torch.Tensor] = []
    net.embed.register_forward_hook(lambda module, args, out: seen.append(out))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 3])
    a, b = net(x, t, torch.randn(2, 4)), net(x, t, torch.randn(2, 4))
    assert not torch.allclose(a, b, atol=1e-4)  # z changes the output ...
    torch.testing.assert_close(seen[0], seen[1], rtol=0, atol=0)  # ... but never the time embedding
    assert not any("embed.z" in name for name, _ in net.named_parameters())  # the old z-in-time path is gone
    with pytest.raises(ValueError, match="z_dim=4"):
        net(x, t)


def test_adaptive_group_norm_is_a_per_channel_scale_and_shift_of_the_normalised_input() -> None:
    from trilemma_bench.nets.embeddings import AdaGroupNorm

    torch.manual_seed(0)
    ada = AdaGroupNorm(2, 4, 3)
    x, style = torch.randn(5, 4, 6, 6), torch.randn(5, 3)
    gamma_beta = style @ ada.film.style.weight.T + ada.film.style.bias
    normed = torch.nn.functional.group_norm(x, 2, eps=1e-6)
    want = gamma_beta[:, :4, None, None] * normed + gamma_beta[:, 4:, None, None]
    torch.testing.assert_close(ada(x, style), want)
    fresh = AdaGroupNorm(2, 4, 3)
    with torch.no_grad():
        fresh.film.style.weight.zero_()
    torch.testing.assert_close(fresh(x, style), normed)  # identity modulation at initialisation


def test_unet_tanh_output_is_bounded() -> None:
    net = _latent_unet(output="tanh")
    out = net(100 * torch.randn(2, 1, 8, 8), torch.tensor([0, 1]), torch.randn(2, 4))
    assert out.abs().max() <= 1
    with pytest.raises(ValueError, match="unknown output"):
        UNet(1, image_size=8, ch=8, ch_mult=(1,), output="sigmoid")


def test_discriminators_judge_a_pair_at_a_step_and_any_batch_size() -> None:
    from trilemma_bench.nets import Discriminator, MLPDiscriminator

    torch.manual_seed(0)
    for net, shape in ((Discriminator(3, ch=8, ch_mult=(1, 2, 2), t_dim=16), (3, 28, 28)),
                       (MLPDiscriminator(2, hidden=16, depth=2, fourier=(0, 1)), (2,))):
        for batch in (1, 5, 8):  # 5: the stddev group shrinks to a divisor of the batch
            x_prev, x_t = torch.randn(batch, *shape), torch.randn(batch, *shape)
            t = torch.zeros(batch, dtype=torch.long)
            out = net(x_prev, x_t, t)
            assert out.shape == (batch,)
        # Each input matters: the less noisy sample, the noisy one and the step.
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))  # leave the zero initialisation of the official last layers
        base = net(x_prev, x_t, t)
        assert not torch.allclose(base, net(torch.randn_like(x_prev), x_t, t))
        assert not torch.allclose(base, net(x_prev, torch.randn_like(x_t), t))
        assert not torch.allclose(base, net(x_prev, x_t, t + 3))


def test_minibatch_stddev_matches_the_grouped_standard_deviation() -> None:
    from trilemma_bench.nets.discriminator import minibatch_stddev

    h = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    out = minibatch_stddev(h, group=4)
    # Groups are samples {j, j + 2, j + 4, j + 6}; one std per group, averaged over features and pixels.
    for j in range(2):
        members = h[j::2]
        want = members.std(dim=0, unbiased=False).mean()
        for i in range(j, 8, 2):
            torch.testing.assert_close(out[i, 3], torch.full((4, 4), float(want), dtype=torch.float64), atol=1e-7,
                                       rtol=0)
    torch.testing.assert_close(out[:, :3], h)


@pytest.mark.parametrize(
    ("size", "ch_mult", "attention_at"),
    [(7, (1, 2, 2), 1), (14, (1, 2, 2, 2), 2), (4, (1, 2), 0), (2, (1, 2), None), (8, (1, 2), 1)],
)
def test_unet_runs_on_sizes_that_are_not_powers_of_two(size: int, ch_mult: tuple[int, ...], attention_at: int | None) -> None:
    """7x7 (MNIST at f=4), 14x14 with three downsamplings (14 -> 7 -> 4 -> 2), 4x4 and 2x2 latents of digits;
    attention sits at the level whose real size is 4 (7 -> 4, not 7 // 2 = 3)."""
    from trilemma_bench.nets.unet import Attention

    torch.manual_seed(0)
    net = UNet(2, image_size=size, ch=8, ch_mult=ch_mult, num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
    x = torch.randn(3, 2, size, size)
    assert net(x, torch.tensor([0, 500, 999])).shape == x.shape
    where = [i for i, level in enumerate(net.down) if isinstance(level.attn[0], Attention)]
    assert where == ([] if attention_at is None else [attention_at])


@pytest.mark.parametrize("size", range(1, 10))
def test_cropped_upsampling_is_nearest_interpolation_to_the_size(size: int) -> None:
    from trilemma_bench.nets.unet import Upsample

    up = Upsample(3)
    with torch.no_grad():
        up[1].weight.zero_()
        up[1].weight[:, :, 1, 1] = torch.eye(3)  # the conv as the identity: what is left is the resampling
        up[1].bias.zero_()
    small = torch.randn(2, 3, (size + 1) // 2, (size + 1) // 2)
    want = torch.nn.functional.interpolate(small, size=(size, size), mode="nearest")
    torch.testing.assert_close(up(small, (size, size)), want)


@pytest.mark.parametrize(("size", "f", "latent"), [(8, 1, 8), (8, 2, 4), (8, 4, 2), (28, 4, 7), (28, 8, 4)])
def test_autoencoder_downsamples_by_f_and_decodes_back_to_the_image_size(size: int, f: int, latent: int) -> None:
    from trilemma_bench.nets.autoencoder import KLAutoencoder, levels_for

    ae = KLAutoencoder(1, image_size=size, ch=8, ch_mult=(1, 2, 2, 2)[: levels_for(f)], z_channels=3)
    x = torch.rand(2, 1, size, size) * 2 - 1
    recon, mean, logvar = ae(x)
    assert ae.f == f and mean.shape == logvar.shape == (2, 3, latent, latent) and ae.latent_shape == (3, latent, latent)
    assert recon.shape == x.shape
    with pytest.raises(ValueError, match=f"takes {latent}x{latent} latents"):
        ae.decode(torch.zeros(1, 3, latent + 1, latent + 1))


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
