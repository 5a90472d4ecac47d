"""The declared model contract, over every registered method: its model implements the contract (no attribute is
probed), the counted NFE is the advertised one at every default NFE, and the sampler returns float32 samples of the
declared shape."""

from __future__ import annotations

import pytest
import torch

from trilemma_bench.benchmark.config import sample_shape
from trilemma_bench.data import DATASETS
from trilemma_bench.methods import METHODS
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import PRESETS
from trilemma_bench.samplers import CountingModel
from trilemma_bench.train import build_model, prerequisites
from trilemma_bench.weights import ShipsWeights


def _preset(method):
    return next(p for p in PRESETS.values() if method.model in p.models)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_the_contract(name: str) -> None:
    method = METHODS[name]
    preset = _preset(method)
    nfe0 = min(method.default_nfe)
    torch.manual_seed(0)
    model = build_model(method.spec_for(nfe0), preset).eval()
    assert isinstance(model, ShipsWeights), f"{type(model).__name__} does not declare the model contract"
    assert isinstance(model.row_info(), dict)
    schedule = model.schedule_table()
    assert schedule is None or len({len(v) for v in schedule.values()}) == 1
    assert model.sample_shape is None or all(isinstance(d, int) and d > 0 for d in model.sample_shape)
    assert isinstance(prerequisites(method.spec_for(nfe0), preset), dict)
    assert method.likelihood in (None, "vdm", "fixedlarge", "fixedsmall")
    assert (method.likelihood is None) or method.model in ("ddpm", "vdm")

    shape = sample_shape(model, preset.dataset)
    for nfe in method.default_nfe:  # every advertised NFE makes exactly that many network calls
        built = model if method.spec_for(nfe) == method.spec_for(nfe0) else build_model(method.spec_for(nfe), preset)
        zero = CountingModel(lambda x_t, *args, **kwargs: torch.zeros_like(x_t))
        method.sample(built, torch.zeros(2, *shape), nfe, net=zero, noise=ImageNoise(0, range(2)))
        assert zero.nfe == nfe, f"{name} at NFE {nfe} made {zero.nfe} network calls"

    x_T = initial_noise(shape, 0, range(3))
    with torch.no_grad():
        out = method.sample(model, x_T, nfe0, noise=ImageNoise(0, range(3)))
        if method.decoder is not None:
            out = method.decoder(model)(out)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, *DATASETS[preset.dataset].shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["ddim", "ldm-f4-ddim", "ddgan"])
def test_generate_is_the_bench_s_two_stages_and_batches_change_nothing(name: str) -> None:
    from trilemma_bench.generate import generate

    method = METHODS[name]
    preset = _preset(method)
    nfe = min(method.default_nfe)
    torch.manual_seed(0)
    model = build_model(method.spec_for(nfe), preset).eval()
    shape = sample_shape(model, preset.dataset)
    whole = generate(method, model, nfe, seed=3, images=range(2, 7), shape=shape)
    batched = generate(method, model, nfe, seed=3, images=range(2, 7), shape=shape, batch_size=2)
    torch.testing.assert_close(whole, batched, rtol=1e-4, atol=1e-4 * max(1.0, float(whole.abs().max())))
    with torch.no_grad():  # the stages the bench times, written out
        z = method.sample(model, initial_noise(shape, 3, range(2, 7)), nfe, noise=ImageNoise(3, range(2, 7)))
        by_hand = method.decoder(model)(z) if method.decoder is not None else z
    torch.testing.assert_close(whole, by_hand, rtol=0, atol=0)
    assert tuple(whole.shape) == (5, *DATASETS[preset.dataset].shape)
    latents = generate(method, model, nfe, seed=3, images=5, shape=shape, decode=False)
    assert tuple(latents.shape) == (5, *shape)
