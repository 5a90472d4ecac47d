"""Schedule apart from solver: each method that is a solver walk is exactly its solver on its schedule; any solver runs
on any schedule; a user's solver, schedule or model comes in as module:function, and bad ones get one line."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from trilemma_bench.benchmark.config import dry_run, make_config
from trilemma_bench.benchmark.request import BenchRequest
from trilemma_bench.denoisers import eps_denoiser
from trilemma_bench.methods import METHODS
from trilemma_bench.methods.compose import solver_method
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import PRESETS
from trilemma_bench.samplers import CountingModel
from trilemma_bench.solver_schedule import SCHEDULES, SOLVERS
from trilemma_bench.train import build_model

PAIRED = sorted(name for name, m in METHODS.items() if m.solver)


def _preset(method):
    return next(p for p in PRESETS.values() if method.model in p.models)


def _random_net(shape):
    torch.manual_seed(3)
    w = torch.randn(math.prod(shape), math.prod(shape), dtype=torch.float64) / math.prod(shape) ** 0.5

    def net(x, t):  # a smooth, time-dependent eps whose samples differ for every solver and schedule
        scale = 1 + t.double().view(-1, *[1] * len(shape)) / 1000
        return (torch.tanh(x.double().flatten(1) @ w).view_as(x) * scale).to(x.dtype)

    return net


@pytest.mark.parametrize("name", PAIRED)
def test_a_paired_method_is_its_solver_on_its_schedule(name: str) -> None:
    """The method's own sampler and the composition of the solver and schedule it declares draw the same samples."""
    method = METHODS[name]
    model = build_model(method.spec_for(method.default_nfe[0]), _preset(method)).eval()
    composed = solver_method(method, method.solver, method.schedule)
    shape = tuple(model.sample_shape or (1, 8, 8))
    x_T = initial_noise(shape, 0, range(3))
    nfe = next(n for n in method.default_nfe if n >= 5)
    net = _random_net(shape)
    ours = method.sample(model, x_T, nfe, net=net, noise=ImageNoise(0, range(3)))
    theirs = composed.sample(model, x_T, nfe, net=net, noise=ImageNoise(0, range(3)))
    if method.schedule == "edm" and not model.as_denoiser(net).discrete:
        # Heun on a continuous-time model: its own sampler uses EDM's levels as given, the walk recomputes them from
        # the times the levels were inverted to (a float64 round trip).
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    else:
        assert torch.equal(ours, theirs), f"{name} differs from {method.solver} on {method.schedule}"


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_any_solver_walks_any_schedule_with_the_counted_calls(solver: str, schedule: str) -> None:
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    counted = CountingModel(_random_net((1, 4, 4)))
    model = eps_denoiser(counted, alpha_bar)
    steps = 5  # divides T: DDIM's stride gives one more time where it does not, as its code does
    times = SCHEDULES[schedule](model, steps)
    assert len(times) == steps + 1 and times[0] >= 800  # DDIM's code starts a stride below T; EDM at sigma 80
    out = SOLVERS[solver].walk(model, initial_noise((1, 4, 4), 0, range(2)), times)
    assert out.shape == (2, 1, 4, 4) and torch.isfinite(out).all()
    assert counted.nfe == (2 * steps - 1 if solver == "heun" else steps)


def test_a_solver_named_by_module_function_runs_in_the_bench(tmp_path: Path, monkeypatch) -> None:
    """A DDIM step written here from the paper (Song et al. Eq. 12, eta = 0), plugged in as module:function, draws
    what the package's DDIM draws on the same network and times."""
    (tmp_path / "my_solvers.py").write_text(textwrap.dedent('''
        import torch

        def my_ddim(model, x, times):
            for t, s in zip(times[:-1], times[1:]):
                a_t = float(model.alpha_bar_at(t))
                a_s = 1.0 if s is None else float(model.alpha_bar_at(s))
                eps = model(x, torch.full((len(x),), int(t)))
                x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
                x = a_s ** 0.5 * x0 + (1 - a_s) ** 0.5 * eps
            return x

        def wrong(model, x):
            return x

        def flat(model, x, times):
            return x[..., :1]

        def backwards(model, steps):
            return [float(t) for t in range(steps + 1)]
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_solvers", None)
    cfg = make_config(BenchRequest(method="ddim", preset="smoke", solver="my_solvers:my_ddim", schedule="uniform",
                                   nfe=[4, 10], num_samples=16, device="cpu"))
    assert cfg.method.name == "my_ddim@uniform" and cfg.method.sampler == "solver-my_solvers:my_ddim-schedule-uniform"
    assert dry_run(cfg).counted == {4: 4, 10: 10}
    model = build_model("ddpm", cfg.preset).eval()
    x_T = initial_noise((2,), 0, range(5))
    net = _random_net((2,))
    mine = cfg.method.sample(model, x_T, 10, net=net, noise=ImageNoise(0, range(5)))
    ddim = METHODS["ddim"].sample(model, x_T, 10, net=net, noise=ImageNoise(0, range(5)))
    np.testing.assert_allclose(mine.numpy(), ddim.numpy(), rtol=0, atol=1e-5)

    bad = {"solver": "no_such_module:walk", "schedule": None}
    for over, expected in [
        (bad, "cannot import module 'no_such_module'"),
        ({"solver": "my_solvers:nothing"}, "has no attribute 'nothing'"),
        ({"solver": "my_solvers:wrong"}, r"expected a function walk\(model, x, times\)"),
        ({"solver": "ddim", "schedule": "my_solvers:backwards"}, "times must decrease"),
        ({"solver": "my_solvers:flat"}, "expected a tensor of x's shape"),
        ({"solver": "euler"}, "unknown solver 'euler'"),
    ]:
        with pytest.raises(ValueError, match=expected) as err:
            dry_run(make_config(BenchRequest(method="ddim", preset="smoke", nfe=[4], num_samples=16, device="cpu",
                                             **over)))
        assert "\n" not in str(err.value)


def test_schedule_alone_keeps_the_method_s_solver_and_refuses_samplers_that_are_not_walks() -> None:
    cfg = make_config(BenchRequest(method="dpmpp-2m", preset="smoke", schedule="edm", nfe=[5], num_samples=16,
                                   device="cpu"))
    assert cfg.method.name == "dpmpp-2m@edm" and cfg.method.solver == "dpmpp-2m"
    with pytest.raises(ValueError, match="give --solver too"):
        make_config(BenchRequest(method="ddpm-fixedlarge", preset="smoke", schedule="edm", num_samples=16))


def test_a_model_by_factory_is_benched_as_given(tmp_path: Path, monkeypatch) -> None:
    """--model module:factory: never trained, its rows name its weights' digest and the source 'external'."""
    from trilemma_bench.benchmark.harness import run_bench
    from trilemma_bench.weights import weights_id

    (tmp_path / "my_models.py").write_text(textwrap.dedent('''
        import torch
        from trilemma_bench.presets import PRESETS
        from trilemma_bench.train import build_model

        def tiny():
            torch.manual_seed(0)
            return build_model("ddpm", PRESETS["smoke"])

        def not_a_model():
            return torch.nn.Linear(2, 2)

        def needs_arguments(size):
            return None

        def for_images():
            model = tiny()
            model.sample_shape = (1, 8, 8)
            return model
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_models", None)
    rows = run_bench(BenchRequest(model="my_models:tiny", solver="dpmpp-2m", preset="smoke", nfe=[5], seeds=[0],
                                  num_samples=64, batch_size=32, device="cpu", results=tmp_path / "results",
                                  threads=1))
    import my_models

    (row,) = rows
    assert row["method"] == "tiny-dpmpp-2m@linspace" and row["weights_source"] == "external"
    assert row["checkpoint"].endswith(weights_id(my_models.tiny())) and row["nfe"] == 5
    for ref, expected in [("my_models:not_a_model", "keeping the model contract"),
                          ("my_models:needs_arguments", "factory callable with no arguments"),
                          ("my_models:for_images", "made for another image size"),
                          ("my_models", "expected module:factory")]:
        with pytest.raises(ValueError, match=expected):
            make_config(BenchRequest(model=ref, preset="smoke", num_samples=16, device="cpu"))


def test_the_report_groups_by_solver_and_schedule() -> None:
    """Built-in methods fall under the pair they declare, composed ones under the pair their sampler names; a table
    appears only when a solver ran on two schedules (or a schedule under two solvers)."""
    import pandas as pd

    from trilemma_bench.report.pairing import pair_of, pairing_table

    assert pair_of("dpmpp-3m-logsnr", "dpmpp-3m-logsnr-lof10-end-t0") == ("ddpm", "dpmpp-3m", "logsnr")
    assert pair_of("ldm-f4-ddim (training 1)", "ddim-eta0-uniform") == ("ldm-f4 (training 1)", "ddim", "uniform")
    assert pair_of("ldm-f4-heun@logsnr", "solver-heun-schedule-logsnr") == ("ldm-f4", "heun", "logsnr")
    assert pair_of("my_walk@edm", "solver-pkg.mod:my_walk-schedule-edm") == ("ddpm", "pkg.mod:my_walk", "edm")
    assert pair_of("ddpm-fixedlarge", "ancestral-fixedlarge") is None

    def summary(*cells):
        return pd.DataFrame([{"method": m, "sampler": s, "nfe": n, "fid_mean": f, "fid_ci95": 0.1}
                             for m, s, n, f in cells])

    alone = summary(("ddim", "ddim-eta0-uniform", 10, 2.3), ("dpmpp-2m", "dpmpp-2m-midpoint-linspace-lof-sigma0", 10, 1.1))
    assert pairing_table(alone).empty
    crossed = summary(("ddim", "ddim-eta0-uniform", 10, 2.3), ("ddim@logsnr", "solver-ddim-schedule-logsnr", 10, 1.5),
                      ("ddim@edm", "solver-ddim-schedule-edm", 50, 0.6))
    table = pairing_table(crossed)
    assert list(table.columns) == ["network", "solver", "NFE", "logsnr", "uniform"]  # NFE 50 is past the few-step range
    (line,) = table.to_dict("records")
    assert line["uniform"] == "2.30 ± 0.10" and line["logsnr"] == "1.50 ± 0.10"
