"""`bench --method all`: bad input refused before any work, and the loop: every method of the preset on one
trained model, a method that fails reported while the rest go on, then the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from trilemma_bench import cli, methods
from trilemma_bench.benchmark.results import read_results, results_path
from trilemma_bench.methods import Method

FAST = ["--preset", "smoke", "--steps", "30", "--num-samples", "64", "--batch-size", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """A cache of this module's own: its 30-step smoke checkpoint must not meet another test's."""
    path = tmp_path_factory.mktemp("bench-all-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRILEMMA_BENCH_CACHE", str(path))
        threads = torch.get_num_threads()
        yield path
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--method", "all", "--nfe", "10"], "--nfe cannot be combined with --method all"),
        (["bench", "--method", "all", "--num-samples", "5"], "--method all: method ddpm-fixedlarge: --num-samples 5"),
        (["bench", "--method", "all", "--seeds", "0,0"], "repeated NFE or seed"),
        (["train", "--method", "all"], "--method all is for `bench` only"),
        (["sample", "--method", "all"], "--method all is for `bench` only"),
    ],
)
def test_method_all_refuses_bad_input_before_any_work(cache: Path, tmp_path: Path, capsys, argv: list[str],
                                                      message: str) -> None:
    before = set(cache.rglob("*.ckpt"))
    where = ["--results", str(tmp_path)] if argv[0] == "bench" else []
    assert cli.main([*argv, "--preset", "smoke", "--steps", "7", "--threads", "1", *where]) == 2  # 7: no one's ckpt
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert set(cache.rglob("*.ckpt")) == before and not results_path(tmp_path).exists()


def _fails_when_sampling(net, model, x, nfe, noise):
    if x.shape[0] != 2:  # the dry run samples 2 images with a zero network; the bench fails for real
        raise RuntimeError("sampler exploded")
    return x


def test_method_all_runs_every_method_of_the_preset_and_survives_a_failing_one(cache: Path, tmp_path: Path,
                                                                               monkeypatch, capsys) -> None:
    real = methods.METHODS
    registry = {
        "ddim": dataclasses.replace(real["ddim"], default_nfe=(2,)),
        "fails-late": Method("fails-late", "ddpm", "broken", _fails_when_sampling, (2,), "raises in the bench"),
        "dpmpp-2m": dataclasses.replace(real["dpmpp-2m"], default_nfe=(3,)),
        "heun": dataclasses.replace(real["heun"], default_nfe=(3,)),
        "elsewhere": dataclasses.replace(real["ddim"], name="elsewhere", model="no-such-model"),  # not in smoke
    }
    monkeypatch.setattr(methods, "METHODS", registry)

    assert cli.main(["bench", "--method", "all", *FAST, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "1 of 4 methods failed (fails-late)" in err and "sampler exploded" in err

    rows = read_results(tmp_path)
    cells = rows[rows["method"] != "real"]
    assert sorted(zip(cells["method"], cells["nfe"])) == [("ddim", 2), ("dpmpp-2m", 3), ("heun", 3)]
    assert set(cells["sampler"]) == {real[m].sampler for m in ("ddim", "dpmpp-2m", "heun")}
    assert len(set(cells["checkpoint"])) == 1 and len(list(cache.rglob("*.ckpt"))) == 1  # trained once, reused
    assert (tmp_path / "report" / "index.html").is_file()
