"""DDPM training end to end through Lightning, checkpoints (reuse, refusal), and the CLI's errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from trilemma_bench.checkpoints import CheckpointError, checkpoint_path
from trilemma_bench.cli import main
from trilemma_bench.data import TOY2D_CENTERS, TOY2D_STD
from trilemma_bench.methods import get_method
from trilemma_bench.metrics import modes_toy2d
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import get_preset
from trilemma_bench.train import train_model

SMOKE = get_preset("smoke").with_steps(500)  # the loss halves by then; the checkpoint tests need no more


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ckpt")
    model, path = train_model("ddpm", SMOKE, device="cpu", root=root)
    return model, path, root


def test_loss_falls_on_toy2d(trained) -> None:
    _, path, _ = trained
    log = next((path.parent / "logs").rglob("metrics.csv"))
    loss = pd.read_csv(log)["train/loss"].dropna().to_numpy()
    # Eps-MSE is ~1 for a network that knows nothing (the first value is logged at step 10); it must fall
    # well below that within 500 steps (0.81 -> 0.31 when written).
    assert loss[0] > 0.7
    assert loss[-5:].mean() < 0.5 * loss[0]
    assert path.with_suffix(".loss.png").exists()


@pytest.mark.slow
def test_samples_land_near_the_25_modes(tmp_path: Path) -> None:
    model, _ = train_model("ddpm", SMOKE.with_steps(2500), device="cpu", root=tmp_path)  # about 40 s
    x_T = initial_noise((2,), 0, range(2000))
    x = get_method("ddpm-fixedlarge").sample(model, x_T, 100, noise=ImageNoise(0, range(2000)))
    got = modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD)
    noise = modes_toy2d(x_T, TOY2D_CENTERS, TOY2D_STD)
    # Within 3 std (0.15) of a mode: 7.6% of pure noise by area; the fully trained smoke preset (8,000 steps)
    # reaches 72% at this NFE, and 1,500 steps 18% (rising ~4 points per 500 steps). 2,500 steps must at
    # least double the noise's share and reach every mode.
    assert noise["high_quality"] < 0.1
    assert got["high_quality"] > 2 * noise["high_quality"]
    assert got["modes"] == 25


def test_checkpoint_is_reused_not_retrained(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    model, path, root = trained
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("retrained a cached checkpoint"))
    again, again_path = train_model("ddpm", SMOKE, device="cpu", root=root)
    assert again_path == path == checkpoint_path("ddpm", "smoke", "toy2d", root)
    for a, b in zip(model.ema.module.parameters(), again.ema.module.parameters()):
        torch.testing.assert_close(a, b)


def test_checkpoint_for_another_configuration_is_refused(trained) -> None:
    _, _, root = trained
    with pytest.raises(CheckpointError, match="train_steps: checkpoint has 500, asked for 501"):
        train_model("ddpm", SMOKE.with_steps(501), device="cpu", root=root)


def test_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    path = checkpoint_path("ddpm", "smoke", "toy2d", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        train_model("ddpm", SMOKE, device="cpu", root=tmp_path)


def test_cli_reports_user_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--method", "nope", "--preset", "smoke"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["bench", "--method", "ddpm", "--preset", "smoke"]) == 2
    assert "'ddpm' is a model; its methods are ddpm-fixedlarge, ddpm-fixedsmall" in capsys.readouterr().err
    assert main(["train", "--method", "ddpm", "--preset", "smoke", "--dataset", "mnist"]) == 2
    assert "sized for toy2d" in capsys.readouterr().err
    assert main(["train", "--method", "ddpm", "--preset", "smoke", "--threads", "0"]) == 2
    assert "--threads must be positive" in capsys.readouterr().err


def test_cli_sample_writes_a_grid(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, path, _ = trained
    monkeypatch.setattr("trilemma_bench.train.train_model", lambda *a, **k: (model, path))
    out = tmp_path / "grid.png"
    threads = torch.get_num_threads()
    try:
        args = ["sample", "--method", "ddim", "--preset", "smoke", "--nfe", "5", "--n", "16", "--out", str(out)]
        assert main([*args, "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1  # --threads applies to every command, not only bench
    finally:
        torch.set_num_threads(threads)
    assert out.stat().st_size > 1000


def test_validation_loss_moves_only_with_the_weights() -> None:
    """Fixed noise and t grid: two evaluations of the same weights agree, and training's stream is untouched."""
    from trilemma_bench.train import build_model

    model = build_model("ddpm", SMOKE)
    logged: list[float] = []
    model.log = lambda name, value, **kwargs: logged.append(float(value))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    model.validation_step((x, None), 0)
    torch.manual_seed(2)
    model.validation_step((x, None), 0)
    assert logged[0] == logged[1]
    torch.manual_seed(3)
    model.validation_step((x, None), 0)
    after = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(4))
