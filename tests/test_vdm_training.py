"""VDM trained end to end through Lightning on a tiny configuration: the bound's terms logged, the schedule
learned and saved beside the checkpoint, and bad input (schedule name, NFE, another schedule's checkpoint)
refused before any training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from vdm_cases import TINY_NET

from trilemma_bench.checkpoints import CheckpointError
from trilemma_bench.cli import main
from trilemma_bench.methods import get_method
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import Preset, TrainConfig
from trilemma_bench.train import train_model

OPTIONS = {"gamma_type": "learnable_scalar", "gamma_min": -13.3, "gamma_max": 5.0, "weight_decay": 0.01,
           "adam_betas": (0.9, 0.99)}


def _preset(steps: int = 30, **options) -> Preset:
    cfg = TrainConfig(TINY_NET, steps, batch_size=32, lr=2e-3, warmup_steps=5, ema_decay=0.9, options={**OPTIONS, **options})
    return Preset("tiny-vdm", "digits", {"vdm": cfg}, num_samples=64, sample_batch_size=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vdm-ckpt")
    model, path = train_model("vdm", _preset(), device="cpu", root=root)
    return model, path, root


def test_training_logs_every_term_and_writes_the_schedule(trained) -> None:
    model, path, _ = trained
    log = pd.read_csv(next((path.parent / "logs").rglob("metrics.csv")))
    for stage in ("train", "val"):
        cols = [f"{stage}/bpd", *(f"{stage}/bpd_{t}" for t in ("diff", "prior", "recon"))]
        d = log[cols].dropna()
        assert len(d) > 0 and (d >= 0).all().all()
        torch.testing.assert_close(torch.tensor(d[cols[0]].to_numpy()), torch.tensor(d[cols[1:]].sum(1).to_numpy()))
    train = log["train/bpd"].dropna().to_numpy()
    assert train[-1] < train[0]  # 30 steps already lower the bound (from ~10 bits/dim at init)
    table = pd.read_csv(path.with_suffix(".schedule.csv"))
    assert list(table.columns) == ["t", "logsnr_vdm", "logsnr_ddpm_linear"] and len(table) == 1001
    assert path.with_suffix(".schedule.png").stat().st_size > 0
    with torch.no_grad():
        ends = model.gamma()(torch.tensor([0.0, 1.0]))
    assert (ends - torch.tensor([-13.3, 5.0])).abs().max() > 1e-4  # the bound moved the learnable endpoints
    assert table["logsnr_vdm"].iloc[[0, -1]].tolist() == pytest.approx((-ends).tolist(), rel=1e-6)


def test_trained_model_samples_on_the_data_grid(trained) -> None:
    model, _, _ = trained
    x = get_method("vdm").sample(model, initial_noise((1, 8, 8), 0, range(4)), 10, noise=ImageNoise(0, range(4)))
    k = (x + 1) * 8
    assert torch.equal(k, k.round()) and x.min() >= -1 and x.max() <= 1  # digits' 17 levels, x = k/8 - 1


def test_checkpoint_of_another_schedule_is_refused_with_what_differs(trained) -> None:
    _, _, root = trained
    with pytest.raises(CheckpointError, match="options: checkpoint has .*'gamma_type': 'learnable_scalar'.*"
                                              "asked for .*'gamma_type': 'fixed'"):
        train_model("vdm", _preset(gamma_type="fixed"), device="cpu", root=root)


def test_unknown_schedule_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained with a bad schedule"))
    with pytest.raises(ValueError, match="unknown VDM gamma schedule 'cosine'"):
        train_model("vdm", _preset(gamma_type="cosine"), device="cpu", root=tmp_path)
    with pytest.raises(ValueError, match="unknown VDM options \\['beta_schedule'\\]"):
        train_model("vdm", _preset(beta_schedule="linear"), device="cpu", root=tmp_path)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--method", "vdm", "--nfe", "0"], "NFE must be positive integers"),
    (["bench", "--method", "vdm", "--preset", "smoke"], "preset 'smoke' has no configuration for model 'vdm'"),
    (["train", "--method", "vdm", "--preset", "smoke"], "preset 'smoke' has no configuration for model 'vdm'"),
])
def test_cli_refuses_bad_vdm_input_before_training(argv: list[str], message: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    assert main([*argv, "--results", str(tmp_path)] if argv[0] == "bench" else argv) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not list(tmp_path.rglob("*.ckpt"))
