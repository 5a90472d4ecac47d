"""Per-image random streams: image i draws the same numbers whatever the batch, for every method."""

from __future__ import annotations

import pytest
import torch

from trilemma_bench.benchmark.config import sample_shape
from trilemma_bench.methods import METHODS
from trilemma_bench.noise import CHUNK, ImageNoise, initial_noise, stream_seed
from trilemma_bench.presets import PRESETS
from trilemma_bench.train import build_model


def test_streams_of_one_image_are_unrelated_across_purposes_and_images() -> None:
    seeds = {stream_seed(s, i, p) for s in (0, 1) for i in range(50) for p in ("init", "step", "latent")}
    assert len(seeds) == 300
    init = initial_noise((16,), 0, [0])
    step = ImageNoise(0, [0]).randn((16,))
    assert not torch.allclose(init, step)  # the old harness seeded both with the same integer


def test_image_noise_rows_do_not_depend_on_the_batch() -> None:
    whole = ImageNoise(3, range(6))
    parts = [ImageNoise(3, range(2)), ImageNoise(3, range(2, 6))]
    for _ in range(CHUNK + 5):  # across a chunk boundary
        a = whole.randn((2, 3))
        b = torch.cat([p.randn((2, 3)) for p in parts])
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(whole.randn((2, 3))[0], whole.randn((2, 3))[0])  # successive draws differ


def test_initial_noise_is_per_image_and_a_purpose_keeps_one_shape() -> None:
    torch.testing.assert_close(initial_noise((1, 4, 4), 5, [7, 8])[1], initial_noise((1, 4, 4), 5, [8])[0])
    noise = ImageNoise(0, range(2))
    noise.randn((3,))
    with pytest.raises(ValueError, match="one shape per purpose"):
        noise.randn((4,))
    with pytest.raises(ValueError, match="unknown noise purpose"):
        stream_seed(0, 0, "mystery")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_image_i_the_same_sample_whatever_the_batch(name: str) -> None:
    method = METHODS[name]
    # The smoke preset where it has the method's model, else the first (smallest) preset that has it: VDM's
    # discrete decoder and latent diffusion's autoencoder need images, so their models live in the image presets.
    preset = next(p for p in PRESETS.values() if method.model in p.models)
    nfe = 7 if 7 in method.default_nfe or method.variant is None else method.default_nfe[0]
    torch.manual_seed(0)
    model = build_model(method.spec_for(nfe), preset).eval()
    x_T = initial_noise(sample_shape(model, preset.dataset), 1, range(6))
    whole = method.sample(model, x_T, nfe, noise=ImageNoise(1, range(6)))
    split = torch.cat([method.sample(model, x_T[a:b], nfe, noise=ImageNoise(1, range(a, b))) for a, b in ((0, 1), (1, 6))])
    # Convolutions pick other kernels for other batch sizes (float round-off of ~3e-5 after 10 UNet steps), and an
    # untrained network's ODE amplifies the GEMMs' ~1e-7 (samples reach |x| ~ 400; DPM-Solver++(3M) moved one
    # coordinate of 14 by 1.8e-5): compare on the samples' scale, where a wrong noise stream would differ by O(1).
    tol = 1e-6 if preset.dataset == "toy2d" else 1e-4
    torch.testing.assert_close(whole, split, rtol=tol, atol=tol * max(1.0, float(whole.abs().max())))
