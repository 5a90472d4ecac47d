"""What a ``bench`` run is asked to do, validated before any training or sampling.

Bad input (unknown method, preset or dataset, an NFE the sampler refuses, two NFEs that make the same
number of network calls, too few samples for k-NN metrics) is refused here with what to change: every
NFE is dry-run on an untrained copy of its model whose network returns zeros, which costs only the
sampler's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import DATASETS
from ..methods import Method, ModelSpec, get_method
from ..methods.compose import model_method, solver_method
from ..methods.external import load_model
from ..noise import ImageNoise
from ..presets import PRESETS, Preset
from ..samplers import CountingModel
from .distributed import SPAWN, check_shards
from .request import BenchRequest
from .speed import check_options

PRDC_K = 5
WARMUP_NFE = 10  # warm-up runs the sampler this many steps (fewer if the cell's NFE is smaller)
MIN_REPEATS_CPU = 5  # timed batches at least: the published figure is their median
# Test images whose bits/dim bound joins the rows of a method with a likelihood: DDPM's full bound costs T = 1000
# network calls per batch, about a 1000-NFE sampling pass over these images.
BPD_IMAGES = 500


@dataclass(frozen=True)
class BenchConfig:
    method: Method
    preset: Preset
    nfes: tuple[int, ...]
    seeds: tuple[int, ...]
    num_samples: int
    batch_size: int
    device: torch.device
    bf16: bool
    compile: bool
    extractor: str
    results_dir: Path
    retrain: bool = False
    min_repeats: int = MIN_REPEATS_CPU
    channels_last: bool = False
    cuda_graphs: bool = False
    devices: int = 1  # processes that train (DDP) and sample (sharded) together
    bpd_images: int = BPD_IMAGES  # 0: no bits/dim column
    train_seed: int = 0  # the training run of the models (a second training: another seed)
    weights: Path | None = None  # a shipped-format file to sample from instead of resolving the model (curves)
    # A network given from outside (--model): used as it is, never trained; ``model_ref`` names it.
    external: Any = None
    model_ref: str = ""
    timing_run: str = ""  # a named timing run of this process to join ("": the bench's own)

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.bf16 else "float32"

    def spec_for(self, nfe: int) -> ModelSpec:
        return self.method.spec_for(nfe)


def make_config(req: BenchRequest) -> BenchConfig:
    """Validate a request into a config; raises ValueError with what to change."""
    from ..metrics.features import KINDS, default_extractor
    from ..train import resolve_preset

    if req.preset not in PRESETS:
        raise ValueError(f"unknown preset {req.preset!r}: choose one of {', '.join(PRESETS)}")
    preset = resolve_preset(PRESETS[req.preset], req.dataset)
    external = None
    if req.model is not None:
        if req.weights is not None or req.devices > 1:
            raise ValueError("--model brings its own weights on one process: leave out --weights and --devices")
        label, external = load_model(req.model, DATASETS[preset.dataset].shape)
        method = model_method(label, req.solver, req.schedule)
    else:
        method = get_method(req.method)
        if req.solver is not None or req.schedule is not None:
            method = solver_method(method, req.solver, req.schedule)
        preset.train_config(method.model)  # a preset without this method's model says so now
    if req.steps is not None:
        preset = preset.with_steps(req.steps, method.model)  # its prerequisites keep the preset's

    nfes = tuple(req.nfe or method.default_nfe)
    seeds = tuple(req.seeds or (0,))
    bad = [n for n in nfes if not isinstance(n, int) or n < 1]
    if bad:
        raise ValueError(f"NFE must be positive integers, got {bad}")
    if len(set(nfes)) != len(nfes) or len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated NFE or seed in --nfe {list(nfes)} --seeds {list(seeds)}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {list(seeds)}")

    num_samples = req.num_samples or preset.num_samples
    if num_samples < PRDC_K + 1:
        raise ValueError(
            f"--num-samples {num_samples} is too few: precision/recall/density/coverage use the {PRDC_K}-th "
            f"nearest neighbour, so at least {PRDC_K + 1} samples are needed (hundreds for a meaningful number)"
        )
    repeats = req.repeats
    if repeats is not None and repeats < 1:
        raise ValueError(f"--repeats must be positive, got {repeats}")
    min_repeats = int(repeats or MIN_REPEATS_CPU)
    batch_size = req.batch_size
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    if batch_size is None:
        # The preset's batch, made small enough that the sample set itself gives min_repeats timed batches:
        # otherwise batch 0 is sampled again only to be timed (1000 digits at 500 a batch: +50% work).
        batch_size = max(1, min(preset.sample_batch_size, num_samples // min_repeats))
    batch_size = min(batch_size, num_samples)
    devices = int(req.devices or 1)
    strategy = req.strategy or "auto"
    if devices > 1 and strategy not in ("auto", SPAWN):
        raise ValueError(
            f"bench --devices {devices} trains and then samples inside one command, in spawned processes: use "
            f"--strategy {SPAWN} (or leave it out). --strategy {strategy} relaunches the whole command per process; "
            "it is for `trilemma-bench train`"
        )
    check_shards(num_samples, batch_size, devices)
    bpd_images = req.bpd_images
    bpd_images = BPD_IMAGES if bpd_images is None else bpd_images
    if bpd_images < 0:
        raise ValueError(f"--bpd-images must be 0 (no bits/dim) or positive, got {bpd_images}")

    device = resolve_device(req.device)
    speed = {k: bool(getattr(req, k)) for k in ("compile", "channels_last", "cuda_graphs")}
    check_options(device, **speed)
    extractor = req.extractor or default_extractor(preset.dataset)
    if extractor not in KINDS:
        raise ValueError(f"unknown extractor {extractor!r}: choose one of {', '.join(KINDS)}")
    if not DATASETS[preset.dataset].is_image and extractor != "raw":
        raise ValueError(
            f"{preset.dataset} is not an image dataset: its extractor is 'raw', not {extractor!r}"
        )
    return BenchConfig(
        method=method,
        preset=preset,
        nfes=nfes,
        seeds=seeds,
        num_samples=num_samples,
        batch_size=batch_size,
        device=device,
        bf16=bool(req.bf16),
        compile=speed["compile"],
        channels_last=speed["channels_last"],
        cuda_graphs=speed["cuda_graphs"],
        devices=devices,
        extractor=extractor,
        results_dir=Path(req.results or "results"),
        retrain=bool(req.retrain),
        min_repeats=min_repeats,
        bpd_images=bpd_images,
        train_seed=int(req.train_seed or 0),
        weights=_weights_file(req.weights, method, nfes),
        external=external,
        model_ref=req.model or "",
        timing_run=req.timing_run or "",
    )


def _weights_file(path: Path | str | None, method: Method, nfes: tuple[int, ...]) -> Path | None:
    """``--weights FILE``: a shipped-format file (``.safetensors`` with its ``.json``) of the one model the grid uses."""
    if path is None:
        return None
    path = Path(path)
    if path.suffix != ".safetensors" or not path.exists() or not path.with_suffix(".json").exists():
        raise ValueError(f"--weights {path}: expected a .safetensors file with its .json beside it, as "
                         "`trilemma-bench ship` and training's curve checkpoints write them")
    if len({method.spec_for(n) for n in nfes}) > 1:
        raise ValueError(f"--weights names one model, but {method.name} samples NFE {list(nfes)} from several; "
                         "give one NFE")
    return path


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device here; use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def sample_shape(model: object, dataset: str) -> tuple[int, ...]:
    """The shape a method's sampler draws in: the data's, or a latent model's ``sample_shape``."""
    return tuple(model.sample_shape or DATASETS[dataset].shape)


@dataclass  # not frozen: Fabric's spawn launcher walks (and refuses frozen) dataclasses it passes on
class DryRun:
    """Per requested NFE: the network calls it makes (counted) and the NFE its warm-up samples at."""

    counted: dict[int, int]
    warmup: dict[int, int]


def dry_run(cfg: BenchConfig) -> DryRun:
    """Check every NFE on an untrained model whose network returns zeros.

    A cell warms up on the same model, kernels and batch shape as its timed runs, but with few steps
    (at most WARMUP_NFE, where the method can sample that few with the same model), so a 1000-NFE cell
    does not pay a whole extra batch.
    """
    from ..train import build_model

    models: dict[ModelSpec, object] = {}

    def count(nfe: int) -> int:
        spec = cfg.spec_for(nfe)
        if spec not in models:
            models[spec] = cfg.external if cfg.external is not None else build_model(spec, cfg.preset)
        x = torch.zeros(2, *sample_shape(models[spec], cfg.preset.dataset))
        zero = CountingModel(lambda x_t, *args, **kwargs: torch.zeros_like(x_t))
        cfg.method.sample(models[spec], x, nfe, net=zero, noise=ImageNoise(0, range(len(x))))
        return zero.nfe

    counted, warmup = {}, {}
    for nfe in cfg.nfes:
        try:
            counted[nfe] = count(nfe)
        except ValueError as err:
            raise ValueError(f"method {cfg.method.name} cannot sample at NFE {nfe}: {err}") from None
        warmup[nfe] = nfe
        if nfe > WARMUP_NFE and cfg.spec_for(WARMUP_NFE) == cfg.spec_for(nfe):
            try:
                count(WARMUP_NFE)
                warmup[nfe] = WARMUP_NFE
            except ValueError:
                pass  # a method with a fixed set of step counts warms up at the cell's own
    same: dict[tuple[str, int], list[int]] = {}
    for nfe, calls in counted.items():
        same.setdefault((cfg.spec_for(nfe).tag, calls), []).append(nfe)
    clashes = [f"{asked} all make {calls} network calls" for (_, calls), asked in same.items() if len(asked) > 1]
    if clashes:
        raise ValueError(
            f"method {cfg.method.name}: {'; '.join(clashes)}, so their rows would be one cell; "
            "ask for only one of each"
        )
    return DryRun(counted, warmup)
