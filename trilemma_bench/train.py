"""Train (or reuse) a method's model for a preset: one Lightning run, a checkpoint, a loss curve on disk."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from .callbacks import CurveCheckpoints, StepProgress, TrainingClock
from .checkpoints import checkpoint_path, load_checkpoint
from .data import DATASETS, TrilemmaDataModule
from .methods import MODELS, ModelSpec
from .paths import atomic_path
from .presets import Preset, TrainConfig
from .report_utils import log
from .weights import (
    Shipped,
    find_shipped,
    load_weights,
    matches,
    read_meta,
    save_weights,
    shipped_dir,
    training_record,
)


def resolve_preset(preset: Preset, dataset: str | None) -> Preset:
    """A preset's network fits its dataset's shape; another dataset of the same shape may reuse it."""
    if dataset is None or dataset == preset.dataset:
        return preset
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if DATASETS[dataset].shape != DATASETS[preset.dataset].shape:
        raise ValueError(
            f"preset {preset.name!r} is sized for {preset.dataset} {DATASETS[preset.dataset].shape}; "
            f"{dataset} is {DATASETS[dataset].shape}. Pick a preset made for it (smoke: toy2d, digits: digits, "
            "small: 28x28 mnist/fashion-mnist, paper: cifar10)."
        )
    return preset.replace(dataset=dataset)


def _spec(model: str | ModelSpec) -> ModelSpec:
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model)
    if spec.name not in MODELS:
        raise ValueError(f"unknown model {spec.name!r}: choose one of {', '.join(MODELS)}")
    return spec


def _config(spec: ModelSpec, preset: Preset) -> TrainConfig:
    cfg = preset.train_config(spec.name)
    return cfg.with_options(**spec.options) if spec.options else cfg


def prerequisites(model: str | ModelSpec, preset: Preset) -> dict[str, ModelSpec]:
    """The models ``model`` is trained on top of (latent diffusion: its autoencoder), by the model class's
    ``prerequisites(cfg)``; none for most models."""
    spec = _spec(model)
    return MODELS[spec.name].prerequisites(_config(spec, preset))


def build_model(model: str | ModelSpec, preset: Preset) -> L.LightningModule:
    """An untrained model of ``model`` (a name or a variant) configured by ``preset``. A model with
    prerequisites gets untrained copies of them, to shape itself by (latent diffusion: its latent size)."""
    spec = _spec(model)
    first = {key: build_model(dep, preset) for key, dep in prerequisites(spec, preset).items()}
    return MODELS[spec.name].from_config(_config(spec, preset), is_image=DATASETS[preset.dataset].is_image,
                                         training_config=preset.training_config(spec.name, spec.options),
                                         **({"prerequisites": first} if first else {}))


def has_weights(model: str | ModelSpec, preset: Preset, *, seed: int = 0, root: Path | None = None) -> bool:
    """Whether :func:`train_model` would find the model (and its prerequisites) without training."""
    spec = _spec(model)
    found = (find_shipped(spec.tag, preset.name, preset.dataset, preset.training_config(spec.name, spec.options),
                          seed=seed) is not None
             or checkpoint_path(spec.tag, preset.name, preset.dataset, root, seed).exists())
    return found and all(has_weights(dep, preset, seed=seed, root=root) for dep in prerequisites(spec, preset).values())


def train_model(model: str | ModelSpec, preset: Preset, *, device: str = "auto", retrain: bool = False,
                root: Path | None = None, seed: int = 0, devices: int = 1, strategy: str = "auto",
                shipped_root: Path | None = None) -> tuple[L.LightningModule, Path]:
    """Return the trained model for (model, preset), training it only when none exists, in this order:

    1. a shipped model (``models/`` in the repository) made under exactly this training configuration and
       training ``seed``, used as is (``weights_source`` "shipped");
    2. the cache's checkpoint (``cached``);
    3. training (``trained``), also when ``retrain`` is given. Training keeps the sampling weights at log-spaced
       steps beside the checkpoint (``<checkpoint>.curve/``): the training-compute curve.

    ``devices`` > 1 trains data-parallel (Lightning's DDP; ``strategy`` as the Trainer takes it). Each
    process takes batch_size / devices samples a step, so the step's batch, and hence the training
    configuration a checkpoint records, is the preset's whatever the number of processes.

    Prerequisites (latent diffusion's autoencoder) are resolved first the same way, ``retrain`` included; a model
    takes them in before training (``use_prerequisites``) and, reused, refuses ones it was not trained on
    (``check_prerequisites``)."""
    spec = _spec(model)
    cfg = preset.train_config(spec.name)
    expected = preset.training_config(spec.name, spec.options)
    path = checkpoint_path(spec.tag, preset.name, preset.dataset, root, seed)
    first = {key: train_model(dep, preset, device=device, retrain=retrain, root=root, seed=seed,
                              shipped_root=shipped_root)[0]
             for key, dep in prerequisites(spec, preset).items()}
    shipped = None if retrain else find_shipped(spec.tag, preset.name, preset.dataset, expected, seed=seed,
                                                root=shipped_root)
    if shipped is not None:
        log(f"using shipped weights {shipped.path.name}")
        module = _from_shipped(spec, preset, shipped, first)
        module.weights_source = "shipped"
        return module, shipped.path
    if path.exists() and not retrain:
        log(f"reusing checkpoint {path}")
        module = load_checkpoint(MODELS[spec.name], path, expected)
        if first:
            module.check_prerequisites(first)
        module.weights_source = "cached"
        info = path.with_suffix(".train.json")
        module.training_record = training_record(json.loads(info.read_text())) if info.exists() else {}
        return module, path

    if devices < 1 or cfg.batch_size % devices:
        raise ValueError(f"--devices {devices} must divide the batch of {cfg.batch_size} (each process takes a share)")
    L.seed_everything(seed, verbose=False)
    module = build_model(spec, preset)
    if first:
        module.use_prerequisites(first)
    data = TrilemmaDataModule(preset.dataset, batch_size=cfg.batch_size // devices, seed=seed, hflip=cfg.hflip)
    val_every = preset.validate_every(spec.name)
    clock = TrainingClock()
    stem = run_name(spec, preset)
    meta = {"training_config": expected, "train_seed": seed, "devices": devices}
    trainer = L.Trainer(
        # Lightning counts optimizer steps: a GAN's training step makes two (DDGAN), so train_steps counts batches.
        max_steps=cfg.train_steps * module.optimizer_steps_per_batch,
        accelerator="cpu" if device == "cpu" else ("gpu" if device == "cuda" else "auto"),
        devices=devices,
        strategy=strategy,
        logger=CSVLogger(path.parent / "logs", name=stem),
        callbacks=[StepProgress(cfg.train_steps),
                   CurveCheckpoints(path.with_suffix(".curve"), stem, cfg.train_steps, meta, clock)],
        enable_progress_bar=False,  # StepProgress draws one bar for the run, not one per (tiny) epoch
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=10,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=4,
        num_sanity_val_steps=0,
    )
    log(f"training {spec.tag} on {preset.dataset} (preset {preset.name}, {cfg.train_steps} steps)")
    trainer.fit(module, datamodule=data)
    spent = clock.read()
    # Every DDP process must call save_checkpoint (it ends in a barrier) but only rank 0 writes, so only rank 0
    # may move a temporary file into place: another rank's would be empty.
    if trainer.is_global_zero:
        with atomic_path(path) as tmp:  # an interrupted save never leaves a half-written checkpoint behind
            trainer.save_checkpoint(tmp)
    else:
        trainer.save_checkpoint(path)
    info = {**meta, **spent, "train_steps_done": cfg.train_steps, "threads": torch.get_num_threads()}
    path.with_suffix(".train.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    log(f"trained in {spent['wall_seconds']:.0f} s; checkpoint {path}")
    _plot_loss(Path(trainer.logger.log_dir) / "metrics.csv", path.with_suffix(".loss.png"))
    module.write_artifacts(path)  # what a model shows beside its checkpoint (VDM: its learned schedule)
    module.weights_source = "trained"
    module.training_record = training_record(info)
    return module.eval(), path


def run_name(model: str | ModelSpec, preset: Preset) -> str:
    """The name of a training's kept checkpoints: model and preset, and the run's length where it is not the
    preset's (``--steps``), so the report never pools two runs' checkpoints of the same step."""
    spec = _spec(model)
    total, nominal = preset.train_config(spec.name).train_steps, preset.nominal_steps(spec.name)
    return f"{spec.tag}-{preset.name}" + ("" if nominal in (None, total) else f"-{total}steps")


def curve_files(model: str | ModelSpec, preset: Preset, *, seed: int = 0, root: Path | None = None,
                shipped_root: Path | None = None) -> list[Path]:
    """The checkpoints a training of (model, preset) kept on its log-spaced schedule, by steps: the shipped ones
    (``models/<dataset>/curves/``) where there are any, else the cache's (``<checkpoint>.curve/``)."""
    spec = _spec(model)
    stem = run_name(spec, preset)
    want = {"training_config": preset.training_config(spec.name, spec.options), "train_seed": seed}
    for folder in (shipped_dir(shipped_root) / preset.dataset / "curves",
                   checkpoint_path(spec.tag, preset.name, preset.dataset, root, seed).with_suffix(".curve")):
        found = [p for p in sorted(folder.glob(f"{stem}-s*.safetensors")) if matches(read_meta(p), want)]
        if found:
            return found
    return []


def load_weights_file(model: str | ModelSpec, preset: Preset, path: Path) -> L.LightningModule:
    """A model of (model, preset) with the weights of one shipped-format file (a curve checkpoint, or a shipped
    model named directly), refused unless the file was made under this configuration."""
    spec = _spec(model)
    found = Shipped(Path(path), read_meta(Path(path)))
    want = preset.training_config(spec.name, spec.options)
    if not matches(found.meta, {"training_config": want}):
        raise ValueError(f"{path} was trained under another configuration than {spec.tag} of preset {preset.name}")
    first = {key: train_model(dep, preset, seed=found.meta.get("train_seed", 0))[0]
             for key, dep in prerequisites(spec, preset).items()}
    module = _from_shipped(spec, preset, found, first)
    module.weights_source = "file"
    return module


def _from_shipped(spec: ModelSpec, preset: Preset, shipped: Shipped,
                  first: dict[str, L.LightningModule]) -> L.LightningModule:
    """A model built for (spec, preset) with a shipped file's weights: its prerequisites (the frozen autoencoder)
    taken in first, as the file leaves them out, then checked against what the file recorded of them."""
    module = build_model(spec, preset)
    if first:
        module.use_prerequisites(first)
    load_weights(module, shipped)
    if first:
        module.check_prerequisites(first)
    return module


def ship_model(model: str | ModelSpec, preset: Preset, *, root: Path | None = None, seed: int = 0,
               shipped_root: Path | None = None, curves: bool = True) -> Path:
    """Copy the cached model of (model, preset) into the repository's ``models/<dataset>/`` as shipped weights
    (:mod:`.weights`), with how it was trained, and (``curves``) the checkpoints its training kept; prerequisites
    first, without theirs (no rows cite them). A maintainer's act: results rows that cite these weights can then
    be re-scored by anyone without training."""
    spec = _spec(model)
    for dep in prerequisites(spec, preset).values():
        if find_shipped(dep.tag, preset.name, preset.dataset, preset.training_config(dep.name, dep.options),
                        seed=seed, root=shipped_root) is None:
            ship_model(dep, preset, root=root, seed=seed, shipped_root=shipped_root, curves=False)
    expected = preset.training_config(spec.name, spec.options)
    if find_shipped(spec.tag, preset.name, preset.dataset, expected, seed=seed, root=shipped_root) is not None:
        raise ValueError(f"{spec.tag}-{preset.name} is shipped already; delete its files in models/ to replace them")
    path = checkpoint_path(spec.tag, preset.name, preset.dataset, root, seed)
    if not path.exists():
        raise ValueError(f"no cached {spec.tag}-{preset.name} to ship: train it first "
                         f"(`trilemma-bench train --method {spec.name} --preset {preset.name}`)")
    module = load_checkpoint(MODELS[spec.name], path, expected)
    extras: dict = {}
    module.on_save_checkpoint(extras)  # what the model adds to a checkpoint beside its weights
    info_path = path.with_suffix(".train.json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    meta = {**info, "training_config": expected, "train_seed": seed, "extras": extras}
    out = save_weights(module, shipped_dir(shipped_root) / preset.dataset, f"{spec.tag}-{preset.name}", meta)
    log(f"shipped {out.name} ({out.stat().st_size / 1e6:.1f} MB)")
    # The checkpoints its training kept: the rows of its training-compute curve cite them.
    kept_dir = shipped_dir(shipped_root) / preset.dataset / "curves"
    for kept in sorted(path.with_suffix(".curve").glob("*.safetensors")) if curves else ():
        kept_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept.with_suffix(".json"), kept_dir / kept.with_suffix(".json").name)
        target = kept_dir / kept.name
        same = _shipped_copy(kept, kept_dir.parent, besides=target)
        target.unlink(missing_ok=True)
        if same is not None:  # the model itself, or a longer run's first checkpoints: a link, not a copy
            target.symlink_to(Path(os.path.relpath(same, kept_dir)))
        else:
            shutil.copyfile(kept, target)
        log(f"shipped {kept.name} ({kept.stat().st_size / 1e6:.1f} MB"
            f"{', a link to ' + same.name if same is not None else ''})")
    return out


def _shipped_copy(kept: Path, folder: Path, besides: Path) -> Path | None:
    """A shipped file (not a link) under ``folder`` with ``kept``'s bytes: a kept checkpoint equal to the model, or
    a longer run's checkpoint equal to the preset run's (Preset.validate_every). Names end in the weights' digest,
    so only files of the same digest are compared."""
    digest = kept.stem.rsplit("-", 1)[-1]
    for other in sorted(folder.rglob(f"*-{digest}.safetensors")):
        if other != besides and not other.is_symlink() and filecmp.cmp(kept, other, shallow=False):
            return other
    return None


def _plot_loss(metrics_csv: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    if not metrics_csv.exists():
        return
    df = pd.read_csv(metrics_csv)
    # Every logged loss: DDPM's eps-MSE, a GAN's generator, discriminator and R1 terms, VDM's bits/dim terms.
    curves = [c for c in df.columns if c.startswith(("train/", "val/"))]
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    positive = True
    for col in curves:
        d = df[["step", col]].dropna()
        positive &= bool((d[col] > 0).all())
        ax.plot(d["step"], d[col], label=col, marker="o" if col.startswith("val/") else None, lw=1, ms=3)
    ax.set(xlabel="training step", ylabel="loss", yscale="log" if positive else "linear", title=out.stem)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
