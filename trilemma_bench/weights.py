"""Shipped weights: what a trained model needs to sample, as safetensors beside a JSON of how it was trained.

A shipped file holds weights only (no optimiser state, no training-only copies: where a model keeps an EMA, the
raw network it averages is left out, and so is a GAN's discriminator), float32, in a format that loads without
running code. Its name ends in the digest of those tensors, the ``checkpoint`` that results rows cite, so a row
names the exact weights behind it and a test can prove that each one resolves to a file in the repository.

Each model class says which of its parameters are training-only (``ShipsWeights.raw_prefixes``) and how to
rebuild them from the shipped ones; nothing here probes a model for attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn

from .denoisers import Denoiser
from .metrics._cache import digest_tensors
from .paths import atomic_path

# Digits of the weights SHA-1 that name a checkpoint in rows, grid files and shipped files.
DIGEST_CHARS = 10
REPO_DIR = Path(__file__).resolve().parents[1]
SHIPPED_DIR = REPO_DIR / "models"  # models/<dataset>/<tag>-<preset>-<digest>.safetensors (+ .json)


class WeightsError(RuntimeError):
    """A shipped weights file that cannot be used: unreadable, altered, or made for another model."""


class ShipsWeights:
    """The declared model contract: a LightningModule mixin with what training, shipping and the bench ask of every
    model, and its defaults (nothing is probed with hasattr).

    ``sample_shape``: the shape the sampler draws x_T in (None: the data's). ``row_info``: figures of the model the
    same in all its rows (a latent model: its autoencoder's reconstruction FID). ``schedule_table``: a learned
    noise schedule for the report (None: fixed). ``prerequisites``: models trained first (latent diffusion: its
    autoencoder), taken in by ``use_prerequisites`` and checked on reuse by ``check_prerequisites``.

    ``raw_prefixes``: state-dict prefixes of training-only tensors (the raw network an EMA averages, a GAN's
    discriminator). ``restore_raw`` rebuilds what sampling or a resumed run reads of them from the shipped
    state; the default does nothing. ``optimizer_steps_per_batch``: Lightning's steps per batch (a GAN: 2).
    ``weights_source``: where the loaded weights came from (shipped, cached, trained), set by ``train_model``.
    ``write_artifacts``: what a model shows beside its checkpoint after training (VDM: its learned schedule)."""

    raw_prefixes: ClassVar[tuple[str, ...]] = ()
    # State that comes from a prerequisite shipped on its own (latent diffusion's frozen autoencoder): left out of
    # this model's file and its digest, put back by ``use_prerequisites`` before the file is loaded.
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()
    optimizer_steps_per_batch: ClassVar[int] = 1
    # Network passes per training example, in units of the sampled network's forward FLOPs: forward and backward
    # (about twice the forward) of the denoiser; tests/test_flops.py counts 3.00 for the digits DDPM. A model whose
    # training is another cost counts its own (DDGAN: G and D, flops.py).
    train_passes: ClassVar[float] = 3.0
    # Training compute of the models trained before this one and needed to sample (latent diffusion: its
    # autoencoder's whole training), in GFLOPs: the offset of this model's training-compute curve.
    pretrain_gflops: float = 0.0
    weights_source: str = "untrained"
    # How far the loaded weights were trained: steps, wall and CPU seconds, threads (empty when unknown).
    training_record: dict[str, Any] = {}  # noqa: RUF012 - replaced per instance, never mutated

    sample_shape: tuple[int, ...] | None = None

    @staticmethod
    def prerequisites(cfg: Any) -> dict[str, Any]:
        """Model specs trained before this one, by role (default: none)."""
        return {}

    def use_prerequisites(self, models: dict[str, L.LightningModule]) -> None:
        """Take in the trained prerequisites before training or loading (default: there are none to take)."""
        if models:
            raise ValueError(f"{type(self).__name__} takes no prerequisites, got {sorted(models)}")

    def check_prerequisites(self, models: dict[str, L.LightningModule]) -> None:
        """Refuse reused weights trained on other prerequisites (default: nothing to check)."""

    def row_info(self) -> dict[str, Any]:
        """Columns of every row benched from this model (default: none)."""
        return {}

    def schedule_table(self) -> dict[str, list[float]] | None:
        """A learned noise schedule, column -> values, for the report (default: None, a fixed schedule)."""
        return None

    def write_artifacts(self, checkpoint: Path) -> None:
        """Files beside a freshly trained checkpoint (default: none)."""

    def training_points(self, x: Tensor) -> Tensor:
        """The training images in the space the model samples in (default: as they are; a latent model: their
        scaled latent means). ``diagnose`` builds its exact denoiser on them."""
        return x

    def oracle_network(self, points: Tensor) -> nn.Module:
        """The exact network of the empirical distribution of ``points``, in the place of ``denoiser()``: what a
        perfectly trained model computes (``diagnose``). Default: none."""
        raise ValueError(f"{type(self).__name__} has no exact oracle for `diagnose` yet")

    def as_denoiser(self, net: nn.Module) -> Denoiser:
        """``net`` (what ``denoiser()`` returns, perhaps counted or compiled) as an eps Denoiser on the model's time
        grid, which any solver on any schedule can walk (``--solver``). Default: the model presents none."""
        raise ValueError(f"{type(self).__name__} presents no eps denoiser: a solver cannot walk it (its own "
                         "methods sample it)")

    def finish(self, x: Tensor) -> Tensor:
        """A solver's end point as samples (default: as it is; VDM: its decoder's most likely level)."""
        return x

    def restore_raw(self) -> None:
        """After loading shipped weights: fill the training-only tensors that other code reads (default: none)."""


def _left_out(module: nn.Module) -> tuple[str, ...]:
    return (*module.raw_prefixes, *module.frozen_prefixes) if isinstance(module, ShipsWeights) else ()


def sampling_state(module: nn.Module) -> dict[str, Tensor]:
    """The module's state without its training-only tensors and its prerequisites' (frozen) ones: exactly what a
    shipped file holds."""
    prefixes = _left_out(module)
    return {k: v for k, v in module.state_dict().items() if not k.startswith(prefixes)}


def weights_id(module: nn.Module) -> str:
    """The digest of :func:`sampling_state`, ``DIGEST_CHARS`` hex digits of its SHA-1."""
    return digest_tensors(sampling_state(module))[:DIGEST_CHARS]


@dataclass(frozen=True)
class Shipped:
    """A shipped model on disk: its weights file and what its JSON says about it."""

    path: Path
    meta: dict[str, Any]

    @property
    def digest(self) -> str:
        return self.path.stem.rsplit("-", 1)[-1]

    @property
    def name(self) -> str:
        """``<tag>-<preset>-<digest>``: the ``checkpoint`` its rows cite."""
        return self.path.stem


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True))


def matches(meta: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a shipped file's JSON holds every key of ``wanted`` with that value (tuples and lists alike, as
    they are after a JSON round trip)."""
    return all(_canonical(meta.get(k)) == _canonical(v) for k, v in wanted.items())


def shipped_dir(root: Path | None = None) -> Path:
    return Path(root) if root is not None else SHIPPED_DIR


def save_weights(module: nn.Module, directory: Path, stem: str, meta: dict[str, Any]) -> Path:
    """Write ``<directory>/<stem>-<digest>.safetensors`` and its ``.json``; returns the weights path."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in sampling_state(module).items()}
    if any(v.is_floating_point() and v.dtype != torch.float32 for v in state.values()):
        raise WeightsError(f"{stem}: shipped weights are float32; cast the model before saving")
    digest = digest_tensors(state)[:DIGEST_CHARS]
    path = directory / f"{stem}-{digest}.safetensors"
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    path.with_suffix(".json").write_text(json.dumps(_canonical(meta), indent=1, sort_keys=True) + "\n")
    return path


def read_meta(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"{side} is missing or not JSON ({err}); every shipped weights file has one") from None


def find_matching(directory: Path, prefix: str, wanted: dict[str, Any]) -> Shipped | None:
    """The one ``<prefix>-<digest>.safetensors`` in ``directory`` whose JSON holds every key of ``wanted`` with
    that value (compared as JSON), or None."""
    found = []
    for path in sorted(directory.glob(f"{prefix}-*.safetensors")):
        if path.stem.rsplit("-", 1)[0] != prefix:  # ddpm-digits-s000500-... is a curve file, not ddpm-digits
            continue
        meta = read_meta(path)
        if matches(meta, wanted):
            found.append(Shipped(path, meta))
    if len(found) > 1:
        names = ", ".join(s.path.name for s in found)
        raise WeightsError(f"several shipped files in {directory} match {prefix}: {names}; keep one")
    return found[0] if found else None


def find_shipped(tag: str, preset: str, dataset: str, training_config: dict[str, Any], *,
                 seed: int = 0, root: Path | None = None) -> Shipped | None:
    """The shipped model made for exactly this training configuration and training seed, or None."""
    return find_matching(shipped_dir(root) / dataset, f"{tag}-{preset}",
                         {"training_config": training_config, "train_seed": seed})


def read_weights(shipped: Shipped) -> dict[str, Tensor]:
    """The tensors of a shipped file, refused unless they hash to the digest its name carries."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(shipped.path))
    except Exception as err:  # noqa: BLE001 - any failure to read means the file is unusable
        raise WeightsError(f"{shipped.path} is not a readable safetensors file ({type(err).__name__}: {err})") from None
    have = digest_tensors(state)[:DIGEST_CHARS]
    if have != shipped.digest:
        raise WeightsError(f"{shipped.path}: its tensors hash to {have}, not the {shipped.digest} its name says: the "
                           "file was altered or damaged (git checkout it again)")
    return state


def load_weights(module: L.LightningModule, shipped: Shipped) -> L.LightningModule:
    """Load a shipped file into a freshly built ``module`` (its prerequisites already taken in): its digest
    checked, every shipped tensor used, only the declared training-only and frozen ones missing, the former
    rebuilt by ``restore_raw``; the module's extra checkpoint state (``on_load_checkpoint``) from the JSON."""
    state = read_weights(shipped)
    missing, unexpected = module.load_state_dict(state, strict=False)
    prefixes = _left_out(module)
    undeclared = [k for k in missing if not k.startswith(prefixes)]
    if undeclared or unexpected:
        raise WeightsError(f"{shipped.path} does not fit {type(module).__name__}: missing {undeclared[:5]}, "
                           f"unexpected {list(unexpected)[:5]}")
    if isinstance(module, ShipsWeights):
        module.restore_raw()
    module.on_load_checkpoint(shipped.meta.get("extras", {}))  # what a Lightning checkpoint adds beside weights
    if isinstance(module, ShipsWeights):
        module.training_record = training_record(shipped.meta)
    return module.eval()


def training_record(info: dict[str, Any]) -> dict[str, Any]:
    """The row columns of how far a model was trained, from a shipped JSON or a checkpoint's ``.train.json``."""
    names = {"train_steps_done": "train_steps", "wall_seconds": "train_wall_seconds",
             "cpu_seconds": "train_cpu_seconds", "threads": "train_threads"}
    return {col: info[key] for key, col in names.items() if key in info}
