"""A run longer than its preset's (`--steps`): only the named model is lengthened, the run has a name of its own,
and its first steps are the preset run's bit for bit, so its curve continues the shipped one."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from trilemma_bench.cli import _preset
from trilemma_bench.cli_parser import build_parser
from trilemma_bench.presets import PRESETS
from trilemma_bench.train import run_name, ship_model, train_model


def test_steps_lengthen_the_named_model_only() -> None:
    digits = PRESETS["digits"]
    longer = digits.with_steps(32_000, "ldm")
    assert longer.train_config("ldm").train_steps == 32_000
    assert longer.train_config("kl-ae") == digits.train_config("kl-ae")  # its autoencoder as shipped
    args = build_parser().parse_args(["train", "--method", "ldm-f4-ddim", "--preset", "digits", "--steps", "16000"])
    assert _preset(args).train_config("kl-ae").train_steps == digits.train_config("kl-ae").train_steps
    assert _preset(args).train_config("ldm").train_steps == 16_000
    assert digits.with_steps(100).train_config("kl-ae").train_steps == 100  # no model named: every one


def test_a_run_of_another_length_has_a_name_of_its_own() -> None:
    digits = PRESETS["digits"]
    assert run_name("ddpm", digits) == "ddpm-digits"
    assert run_name("ddpm", digits.with_steps(16_000, "ddpm")) == "ddpm-digits-16000steps"
    # The preset's own run validates every tenth; a longer one where the preset's run does, a shorter one more often.
    assert digits.validate_every("ddpm") == 800
    assert digits.with_steps(16_000, "ddpm").validate_every("ddpm") == 800
    assert digits.with_steps(300, "ddpm").validate_every("ddpm") == 30


def test_a_longer_run_continues_the_presets_run_bit_for_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trained 20 steps (the preset) and 40 (`--steps 40`): the longer run's checkpoint at 20 is the shorter run's
    model exactly, and shipping it stores a link, not the bytes again. Validating every 4 steps instead of every 2,
    as before Preset.validate_every, changed the weights from the first validation on."""
    from trilemma_bench import callbacks

    monkeypatch.setattr(callbacks, "CURVE_STEPS", (20,))  # keep a checkpoint at 20 steps, not the first at 250
    tiny = PRESETS["smoke"].replace(name="tiny").with_steps(20, "ddpm")
    monkeypatch.setitem(PRESETS, "tiny", tiny)
    cache, shipped = tmp_path / "cache", tmp_path / "models"
    short, _ = train_model("ddpm", tiny, device="cpu", root=cache / "a", shipped_root=shipped)
    short_file = ship_model("ddpm", tiny, root=cache / "a", shipped_root=shipped)
    longer = tiny.with_steps(40, "ddpm")
    train_model("ddpm", longer, device="cpu", root=cache / "b", shipped_root=shipped)
    kept = sorted((cache / "b").rglob("ddpm-tiny-40steps-s000020-*.safetensors"))
    assert len(kept) == 1
    state, at_20 = load_file(str(kept[0])), {k: v for k, v in short.state_dict().items() if k.startswith("ema.")}
    assert set(at_20) <= set(state)
    assert all((state[k] == v).all() for k, v in at_20.items())
    ship_model("ddpm", longer, root=cache / "b", shipped_root=shipped)
    link = shipped / "toy2d" / "curves" / kept[0].name
    assert link.is_symlink() and link.resolve() == short_file.resolve()  # the preset run's model

