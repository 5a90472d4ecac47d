"""diagnose: the exact denoiser of a finite training set, and the verdict it gives on toy2d, where that oracle
is exact (a mixture of point masses is the empirical distribution)."""

from __future__ import annotations

import pytest
import torch

from trilemma_bench import diagnose as dg
from trilemma_bench.benchmark.oracle import MixtureEps
from trilemma_bench.methods import get_method
from trilemma_bench.presets import PRESETS
from trilemma_bench.schedules import alphas_cumprod, make_betas
from trilemma_bench.train import build_model

ALPHA_BAR = alphas_cumprod(make_betas("linear", 1000))


def test_the_chunked_posterior_mean_equals_one_softmax(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    points, x = torch.randn(300, 5, generator=g), torch.randn(7, 5, generator=g)
    a = torch.tensor([0.9999, 0.99, 0.9, 0.5, 0.1, 0.01, 4e-5], dtype=torch.float64)
    monkeypatch.setattr(dg, "BLOCK_VALUES", 7 * 13)  # 13 points a block: 24 blocks
    got = dg.posterior_mean(x, a, points)
    d2 = ((x.double()[:, None] - a.sqrt()[:, None, None] * points.double()[None]) ** 2).sum(-1)
    w = torch.softmax(-d2 / (2 * (1 - a[:, None])), 1)
    torch.testing.assert_close(got, w @ points.double(), rtol=1e-10, atol=1e-12)


def test_the_oracle_eps_is_the_mixture_eps_of_point_masses() -> None:
    """A mixture of zero-width components is the empirical distribution: the project's closed form agrees."""
    centers = torch.randn(25, 2, generator=torch.Generator().manual_seed(1))
    oracle, mixture = dg.OracleEps(ALPHA_BAR, centers), MixtureEps(ALPHA_BAR, centers=centers.double(), std=0.0)
    x = torch.randn(64, 2, dtype=torch.float64)
    for t in (3, 250, 999, 512.5):
        tt = torch.full((64,), t, dtype=torch.float64)
        torch.testing.assert_close(oracle(x, tt), mixture(x, tt), rtol=1e-8, atol=1e-10)


def test_the_posterior_draw_follows_the_posterior_weights() -> None:
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    x = torch.full((4000, 2), 0.25)
    a = torch.full((4000,), 0.8)
    draws = dg.posterior_draw(x, a, points, torch.rand(4000, generator=torch.Generator().manual_seed(2)))
    logit = -((x[0].double() - a[0].double().sqrt() * points.double()) ** 2).sum(-1) / (2 * 0.2)
    want = torch.softmax(logit, 0)[1].item()
    assert (draws[:, 0] == 1).double().mean().item() == pytest.approx(want, abs=0.025)


class _Scaled(torch.nn.Module):
    def __init__(self, net: torch.nn.Module, factor: float):
        super().__init__()
        self.net, self.factor = net, factor

    def forward(self, x, t, *args):
        return self.factor * self.net(x, t)


def test_diagnose_tells_a_network_deficit_from_a_pipeline_defect(monkeypatch: pytest.MonkeyPatch) -> None:
    """On toy2d, a network that is the oracle with its eps 30% too large: the oracle's samples are data-like, the
    network's are not (a network deficit); a sampler that doubles its output: the oracle fails too (pipeline).
    At 50 NFE: at 10, DDIM itself narrows even the oracle's samples of this cloud (spread 0.73, 0.93 at 50)."""
    points = torch.randn(400, 2, generator=torch.Generator().manual_seed(3)) * 0.5 + 1.0
    model = build_model("ddpm", PRESETS["smoke"])
    oracle = model.oracle_network(points)
    monkeypatch.setattr(type(model), "denoiser", lambda self, ema=True: _Scaled(oracle, 1.3))
    ddim = get_method("ddim")
    found = dg.diagnose(ddim, model, points, [50], n=300)
    assert found.oracle[0].frechet < 0.05 and 0.8 < found.oracle[0].spread < 1.25
    assert found.learned[0].frechet > 10 * found.oracle[0].frechet
    assert found.verdict()[0].startswith("pipeline sound")
    assert max(found.eps_error.values()) > 0.05  # 0.3^2 x eps^2 at every t

    assert found.scored == []  # no features asked for

    # In features (here a fixed random map to 8 dimensions, as an extractor would be), the same verdict and a line
    # saying the network's images are far from the oracle's.
    proj = torch.randn(2, 8, generator=torch.Generator().manual_seed(6))
    found = dg.diagnose(ddim, model, points, [50], n=300, features=lambda x: torch.tanh(x @ proj))
    (nfe, fid_oracle, fid_learned), = found.scored
    assert nfe == 50 and fid_learned > 3 * fid_oracle
    assert any("in the bench's features" in line for line in found.verdict())

    broken = type(ddim)(**{**ddim.__dict__, "sample_fn": lambda *a: 2 * ddim.sample_fn(*a)})
    found = dg.diagnose(broken, model, points, [50], n=300)
    assert found.verdict()[0].startswith("PIPELINE")


def test_the_diagnose_and_curve_commands_run_on_a_tiny_training(tmp_path, monkeypatch, capsys) -> None:
    """`train` keeps checkpoints at 250 steps and at its end; `curve` benches each into its own folder with the
    training compute in every row, and skips them when run again; `diagnose` prints the oracle beside the network and a verdict."""
    from trilemma_bench.benchmark.results import read_results
    from trilemma_bench.cli import main

    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    tiny = ["--preset", "smoke", "--steps", "300", "--threads", "1"]
    assert main(["train", "--method", "ddpm", *tiny]) == 0
    curve = ["curve", "--method", "ddim", *tiny, "--nfe", "5", "--seeds", "0,1", "--num-samples", "100",
             "--results", str(tmp_path / "curves")]
    assert main(curve) == 0
    rows = read_results(tmp_path / "curves")
    assert main(curve) == 0  # every checkpoint benched already at this NFE, seeds and size: nothing added
    assert len(read_results(tmp_path / "curves")) == len(rows)
    cells = rows[rows["method"] == "ddim"]
    assert sorted(cells["train_steps"].unique()) == [250, 300] and len(cells) == 4
    assert (cells["train_gflops"] > 0).all() and cells["checkpoint"].str.contains("-s000250-|-s000300-").all()
    capsys.readouterr()
    assert main(["diagnose", "--method", "ddim", *tiny, "--nfe", "5", "--num-samples", "100"]) == 0
    captured = capsys.readouterr()
    out = (captured.out + captured.err).replace("\n", " ")
    assert "oracle FD" in out and "learned eps MSE" in out and ("pipeline sound" in out or "PIPELINE" in out)


class _Offset(torch.nn.Module):
    def __init__(self, net: torch.nn.Module, offset: torch.Tensor):
        super().__init__()
        self.net, self.offset = net, offset

    def forward(self, x, t, *args):
        return self.net(x, t) + self.offset


def test_the_eps_error_names_the_part_in_each_channels_level() -> None:
    """An error that is a constant per channel lies wholly in the channels' mean levels; white noise over 4x4 maps
    puts 1/16 of itself there."""
    points = torch.randn(50, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    oracle = dg.OracleEps(ALPHA_BAR, points)
    level_error = _Offset(oracle, torch.tensor([0.1, -0.1]).view(1, 2, 1, 1))
    total, level = dg.eps_errors(level_error, oracle, points, ALPHA_BAR, [600, 999], n=64)
    assert total[999] == pytest.approx(0.01, rel=1e-4) and level[999] == pytest.approx(total[999], rel=1e-6)
    white = _Offset(oracle, 0.1 * torch.randn(64, 2, 4, 4, generator=torch.Generator().manual_seed(5)))
    total, level = dg.eps_errors(white, oracle, points, ALPHA_BAR, [999], n=64)
    assert level[999] / total[999] == pytest.approx(1 / 16, rel=0.3)
    flat = torch.randn(30, 2)
    flat_oracle = dg.OracleEps(ALPHA_BAR, flat)
    flat_total, flat_level = dg.eps_errors(flat_oracle, flat_oracle, flat, ALPHA_BAR, [999], n=8)
    assert flat_total[999] == 0 and flat_level == {}  # points without maps: no levels to name


def test_diagnose_scores_images_with_the_benchs_features() -> None:
    """Image datasets get the bench's extractor on quantized images (any sample in [-1, 1] is accepted, off-grid
    values included); point datasets get none."""
    from trilemma_bench.cli import _bench_features

    assert _bench_features("toy2d") is None
    features = _bench_features("digits")
    assert features is not None
    from trilemma_bench.data import DATASETS
    from trilemma_bench.quantize import quantize

    x = quantize(torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1, DATASETS["digits"].levels)
    f = features(x)
    assert f.shape[0] == 5 and f.dim() == 2
    half_level = 1 / (DATASETS["digits"].levels - 1)  # levels are 2 / (levels - 1) apart
    torch.testing.assert_close(features((x + 0.5 * half_level).clamp(-1, 1)), f)  # quantized first: same features
