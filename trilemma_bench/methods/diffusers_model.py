"""A diffusers checkpoint as a model of the bench: a user's own trained network, benched with every sampler here.

Whoever trained an eps-predicting ``UNet2DModel`` with diffusers (its DDPM recipe, saved with ``save_pretrained``)
can bench it exactly as the models trained in this project are: the samplers see one :class:`Denoiser`, so every
one of them (DDIM, DPM-Solver++, EDM's Heun, ...) runs on the user's network with no code of theirs.

Accepted layouts: a pipeline folder (``unet/`` beside ``scheduler/``) or one folder holding the UNet's
``config.json`` and weights with a ``scheduler_config.json`` beside them. The alpha-bar table is the scheduler's
schedule computed in float64, as this project's own schedules are; diffusers keeps it in float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..denoisers import Denoiser, eps_denoiser
from ..schedules import cosine_betas, linear_betas
from ..weights import ShipsWeights

UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"  # safetensors only: weights that load without running code
SCHEDULER_CONFIGS = ("scheduler/scheduler_config.json", "scheduler_config.json")
BETA_FIELDS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise ValueError("a diffusers checkpoint needs the diffusers package: pip install diffusers "
                         "(the `test` extra has it)") from None
    return diffusers


def _config_shape(config: Any) -> tuple[int, int, int] | None:
    """(C, H, W) a UNet was made for; None where its config leaves the size open (it is fully convolutional)."""
    size = config.get("sample_size")
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return (int(config.get("in_channels", 3)), int(h), int(w))  # 3: UNet2DModel's default


class _EpsNet(nn.Module):
    """net(x, t) -> eps of a UNet2DModel, which returns an output object rather than a tensor."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        # Fractional times (DPM-Solver's logSNR grid, EDM's sigmas) come in float64; diffusers embeds time in
        # float32, and a float64 t would leak that dtype into the module's own time layers.
        return self.unet(x, t.float() if t.is_floating_point() else t).sample


class DiffusersModel(nn.Module, ShipsWeights):
    """A diffusers UNet2DModel with its scheduler's alpha-bar table."""

    weights_source = "diffusers"

    def __init__(self, unet: nn.Module, alpha_bar: Tensor, source: str):
        super().__init__()
        self.unet = unet.eval()
        # A plain float64 attribute, not a buffer: casting the module (precision plugins) must never round it.
        self.alpha_bar = alpha_bar.detach().double().cpu()
        self.source = str(source)
        self.sample_shape = _config_shape(unet.config)

    def denoiser(self) -> nn.Module:
        return _EpsNet(self.unet).eval()

    def as_denoiser(self, net: nn.Module) -> Denoiser:
        return eps_denoiser(net, self.alpha_bar)

    def finish(self, x: Tensor) -> Tensor:
        return x

    def row_info(self) -> dict[str, Any]:
        return {"model_source": f"diffusers:{Path(self.source).name}"}  # no absolute path into shared rows


def alpha_bar_from_scheduler_config(config: dict[str, Any]) -> Tensor:
    """float64 alphas_cumprod of a DDPM-style scheduler config (beta_schedule 'linear', 'scaled_linear' or
    'squaredcos_cap_v2' with beta_start, beta_end, num_train_timesteps; or trained_betas). diffusers'
    DDPMScheduler reads the fields (its defaults fill the absent ones) and its float32 table checks ours."""
    prediction = config.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        raise ValueError(f"scheduler prediction_type is {prediction!r}: expected 'epsilon' (eps networks only)")
    if "num_train_timesteps" not in config or all(config.get(k) is None for k in ("beta_schedule", "trained_betas")):
        raise ValueError("scheduler config has no DDPM beta fields: expected num_train_timesteps and "
                         "beta_schedule (or trained_betas)")
    if config.get("rescale_betas_zero_snr"):  # alpha-bar 0 at T: eps there says nothing of x0
        raise ValueError("scheduler has rescale_betas_zero_snr: expected a schedule with nonzero terminal SNR")
    fields = {k: config[k] for k in BETA_FIELDS if k in config}
    try:
        sched = _diffusers().DDPMScheduler.from_config(fields)
    except (NotImplementedError, TypeError, ValueError) as err:
        raise ValueError(f"diffusers' DDPMScheduler refuses the scheduler config ({type(err).__name__}: "
                         f"{' '.join(str(err).split())})") from None
    c, n = sched.config, sched.config.num_train_timesteps
    # diffusers' formulas (scheduling_ddpm.py), in float64: 1 - alpha-bar near t=0 loses digits in float32.
    if c.trained_betas is not None:
        betas = torch.tensor(c.trained_betas, dtype=torch.float64)
    elif c.beta_schedule == "linear":
        betas = linear_betas(n, c.beta_start, c.beta_end)
    elif c.beta_schedule == "scaled_linear":
        betas = linear_betas(n, c.beta_start**0.5, c.beta_end**0.5) ** 2
    elif c.beta_schedule == "squaredcos_cap_v2":  # GLIDE's cosine, Nichol & Dhariwal's: ours is the same
        betas = cosine_betas(n, s=0.008, max_beta=0.999)
    else:
        raise ValueError(f"scheduler beta_schedule {c.beta_schedule!r} is not supported: expected 'linear', "
                         "'scaled_linear', 'squaredcos_cap_v2' or trained_betas")
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    if not torch.allclose(alpha_bar, sched.alphas_cumprod.double(), rtol=1e-4, atol=1e-6):
        raise ValueError(f"the float64 alpha-bar of beta_schedule {c.beta_schedule!r} departs from diffusers' "
                         "own table: expected diffusers' formulas (another diffusers version?)")
    return alpha_bar


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: expected a JSON config ({type(err).__name__})") from None


def load_diffusers_dir(path: str | Path, *, image_shape: tuple[int, ...] | None = None) -> DiffusersModel:
    """A diffusers checkpoint folder as a :class:`DiffusersModel`; every refusal is a one-line ValueError saying
    what was expected. ``image_shape`` (C, H, W): the data's, which the UNet must have been made for."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root}: no such directory; expected a diffusers checkpoint folder (save_pretrained)")
    diffusers = _diffusers()
    unet_dir = root / "unet" if (root / "unet" / "config.json").is_file() else root
    if not (unet_dir / "config.json").is_file():
        raise ValueError(f"{root}: no UNet config; expected unet/config.json (a pipeline folder) or config.json")
    if not (unet_dir / UNET_WEIGHTS).is_file():
        raise ValueError(f"{unet_dir}: no UNet weights; expected {UNET_WEIGHTS} beside config.json")
    unet_config = _read_json(unet_dir / "config.json")
    if unet_config.get("_class_name") != "UNet2DModel":
        raise ValueError(f"{unet_dir / 'config.json'}: model class {unet_config.get('_class_name')!r}; "
                         "expected 'UNet2DModel' (an unconditional diffusers UNet)")
    have = _config_shape(unet_config)
    if have is None:  # no sample_size: any H, W will do, the channels still must match
        have = (int(unet_config.get("in_channels", 3)), *tuple(image_shape or (0, 0, 0))[1:])
    if image_shape is not None and tuple(image_shape) != have:
        raise ValueError(f"{root}: the UNet takes images of shape {have} but the data's are {tuple(image_shape)}: "
                         "the checkpoint was made for another image size; expected a UNet for this data")
    sched_path = next((root / p for p in SCHEDULER_CONFIGS if (root / p).is_file()), None)
    if sched_path is None:
        raise ValueError(f"{root}: no scheduler config; expected {' or '.join(SCHEDULER_CONFIGS)}")
    try:
        alpha_bar = alpha_bar_from_scheduler_config(_read_json(sched_path))
    except ValueError as err:
        raise ValueError(f"{sched_path}: {err}") from None
    # Without accelerate diffusers builds the UNet at random before loading: fork the RNG so that loading a model
    # never shifts the caller's random stream; low_cpu_mem_usage=False says so instead of warning about it.
    with torch.random.fork_rng(devices=[]):
        unet = diffusers.UNet2DModel.from_pretrained(unet_dir, use_safetensors=True, local_files_only=True,
                                                     low_cpu_mem_usage=False, torch_dtype=torch.float32)
    return DiffusersModel(unet, alpha_bar, str(root))
