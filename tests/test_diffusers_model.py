"""A diffusers checkpoint loaded as a bench model: its schedule, its eps, a sampler on it, and every refusal."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from trilemma_bench import samplers
from trilemma_bench.denoisers import eps_denoiser
from trilemma_bench.methods.diffusers_model import alpha_bar_from_scheduler_config, load_diffusers_dir

diffusers = pytest.importorskip("diffusers")

T = 1000


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: a UNet this small gains nothing from two, and under the suite's two xdist workers on
    two cores, two threads each spin against each other (measured: 1 s a forward pass instead of 10 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4).eval()


@pytest.fixture(scope="module")
def sched() -> object:
    return diffusers.DDPMScheduler(num_train_timesteps=T)


@pytest.fixture(scope="module")
def saved(unet: torch.nn.Module, sched: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Layout (a), a pipeline folder, and (b), the UNet's folder with the scheduler config beside it."""
    root = tmp_path_factory.mktemp("diffusers")
    unet.save_pretrained(root / "pipeline" / "unet")
    sched.save_pretrained(root / "pipeline" / "scheduler")
    unet.save_pretrained(root / "flat")
    sched.save_pretrained(root / "flat")
    return {"pipeline": root / "pipeline", "flat": root / "flat"}


def closed_form_linear(beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s schedule, in numpy float64, apart from the code under test and from diffusers."""
    return torch.from_numpy(np.cumprod(1 - np.linspace(beta_start, beta_end, T, dtype=np.float64)))


@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_loaded_model_matches_the_in_memory_one(layout: str, saved: dict[str, Path], unet: torch.nn.Module,
                                                sched: object) -> None:
    torch.manual_seed(5)
    expected_draw = torch.rand(3)
    torch.manual_seed(5)
    model = load_diffusers_dir(saved[layout], image_shape=(1, 8, 8))
    assert torch.equal(torch.rand(3), expected_draw)  # loading left the caller's random stream alone

    assert model.alpha_bar.dtype == torch.float64
    assert (model.alpha_bar - closed_form_linear()).abs().max() < 1e-12
    # diffusers keeps the same schedule in float32: equal to its rounding, not to 1e-12.
    torch.testing.assert_close(model.alpha_bar, sched.alphas_cumprod.double(), atol=1e-6, rtol=1e-5)
    assert model.sample_shape == (1, 8, 8)
    assert model.row_info() == {"model_source": f"diffusers:{saved[layout].name}"}  # the folder, not its path
    assert model.as_denoiser(model.denoiser()).discrete  # trained on integer times: EDM levels snap to them

    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    net = model.denoiser()
    with torch.no_grad():
        t = torch.tensor([0, 617])
        assert torch.equal(net(x, t), unet(x, t).sample)
        frac = torch.tensor([12.5, 617.25], dtype=torch.float64)  # logSNR and sigma grids fall between indices
        assert torch.equal(net(x, frac), unet(x, frac.float()).sample)
    assert torch.equal(model.finish(x), x)


def test_ddim_on_the_loaded_model_equals_ddim_on_the_network(saved: dict[str, Path], unet: torch.nn.Module,
                                                             sched: object) -> None:
    model = load_diffusers_dir(saved["pipeline"])
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    out = samplers.ddim_sample(model.as_denoiser(model.denoiser()), x_T, nfe=5)
    by_hand = eps_denoiser(lambda x, t: unet(x, t).sample, closed_form_linear())
    assert torch.equal(out, samplers.ddim_sample(by_hand, x_T, nfe=5))
    # On diffusers' float32 table the same walk differs only by that rounding.
    on_float32 = eps_denoiser(lambda x, t: unet(x, t).sample, torch.tensor(sched.alphas_cumprod, dtype=torch.float64))
    torch.testing.assert_close(out, samplers.ddim_sample(on_float32, x_T, nfe=5), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", [
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"beta_schedule": "linear", "trained_betas": np.linspace(1e-4, 0.02, T).tolist()},
])
def test_other_schedules_match_diffusers(config: dict) -> None:
    alpha_bar = alpha_bar_from_scheduler_config({"num_train_timesteps": T, **config})
    reference = diffusers.DDPMScheduler(num_train_timesteps=T, **config).alphas_cumprod
    assert alpha_bar.dtype == torch.float64
    torch.testing.assert_close(alpha_bar, reference.double(), atol=1e-6, rtol=1e-5)
    if "trained_betas" in config:
        assert (alpha_bar - closed_form_linear()).abs().max() < 1e-12


def _edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _broken(saved: dict[str, Path], tmp_path: Path, what: str) -> tuple[Path, dict]:
    """A checkpoint folder spoiled in one way, and the load_diffusers_dir keywords to try it with."""
    path = tmp_path / "ckpt"
    if what == "missing":
        return path, {}
    if what == "empty":
        path.mkdir()
        return path, {}
    shutil.copytree(saved["pipeline"], path)
    if what == "image_shape":
        return path, {"image_shape": (1, 16, 16)}
    if what == "v_prediction":
        _edit_json(path / "scheduler" / "scheduler_config.json", prediction_type="v_prediction")
    elif what == "class":
        _edit_json(path / "unet" / "config.json", _class_name="UNet2DConditionModel")
    elif what == "no_scheduler":
        shutil.rmtree(path / "scheduler")
    elif what == "no_weights":
        (path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    return path, {}


@pytest.mark.parametrize("what,match", [
    ("missing", "no such directory.*expected a diffusers checkpoint folder"),
    ("empty", "no UNet config.*expected unet/config.json"),
    ("image_shape", r"\(1, 8, 8\).*\(1, 16, 16\).*made for another image size"),
    ("v_prediction", "prediction_type is 'v_prediction'.*expected 'epsilon'"),
    ("class", "'UNet2DConditionModel'.*expected 'UNet2DModel'"),
    ("no_scheduler", "no scheduler config.*expected scheduler/scheduler_config.json"),
    ("no_weights", "no UNet weights.*expected diffusion_pytorch_model.safetensors"),
])
def test_refusals_say_what_was_expected_in_one_line(what: str, match: str, saved: dict[str, Path],
                                                    tmp_path: Path) -> None:
    path, kwargs = _broken(saved, tmp_path, what)
    with pytest.raises(ValueError, match=match) as err:
        load_diffusers_dir(path, **kwargs)
    assert "\n" not in str(err.value)


def test_without_diffusers_says_how_to_install(saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers now raises ImportError
    with pytest.raises(ValueError, match="needs the diffusers package: pip install diffusers") as err:
        load_diffusers_dir(saved["flat"])
    assert "\n" not in str(err.value)


def test_benched_on_digits_it_draws_what_the_network_wrapped_by_hand_draws(saved: dict[str, Path],
                                                                           unet: torch.nn.Module,
                                                                           tmp_path: Path) -> None:
    """``--model diffusers:PATH`` through the bench's own config, dry run and harness: its DDIM samples are those of
    the in-memory UNet wrapped by hand on the closed-form schedule, and its row names the weights and source."""
    from trilemma_bench.benchmark.config import dry_run, make_config
    from trilemma_bench.benchmark.harness import run_bench
    from trilemma_bench.benchmark.request import BenchRequest
    from trilemma_bench.noise import ImageNoise, initial_noise
    from trilemma_bench.samplers import ddim_sample

    req = BenchRequest(model=f"diffusers:{saved['pipeline']}", preset="digits", nfe=[5], seeds=[0], num_samples=32,
                       batch_size=16, device="cpu", results=tmp_path, threads=1, bpd_images=0)
    cfg = make_config(req)
    assert cfg.method.name == "diffusers-pipeline-ddim@uniform" and dry_run(cfg).counted == {5: 5}
    x_T = initial_noise((1, 8, 8), 0, range(4))
    with torch.no_grad():
        ours = cfg.method.sample(cfg.external, x_T, 5, noise=ImageNoise(0, range(4)))
        by_hand = ddim_sample(eps_denoiser(lambda x, t: unet(x, t).sample, closed_form_linear()), x_T, nfe=5)
    assert torch.equal(ours, by_hand)
    (row,) = run_bench(req)
    assert row["weights_source"] == "diffusers" and row["model_source"] == "diffusers:pipeline"
    assert row["nfe"] == 5 and np.isfinite(row["fid"])
