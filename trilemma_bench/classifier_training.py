"""Training of the domain classifiers whose penultimate layer gives the ``"domain"`` features: a LightningModule
fitted by Lightning's Trainer, like every other model of the project.

The network, its cache and its use as a feature extractor live in :mod:`.metrics.classifier`, which calls
:func:`fit_classifier` only when a classifier must be trained. This module therefore imports nothing of it:
the network arrives as a factory, so the import graph runs one way (metrics -> training code, lazily).

The recipe: Adam, cosine decay of the learning rate over every step of ``max_epochs``, plain shuffled batches
(no augmentation), validation accuracy after each epoch; the epoch with the best validation accuracy is kept,
and training stops after ``patience`` epochs without a better one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler, TensorDataset

from .callbacks import StepProgress
from .metrics.extractor import data_module

log = logging.getLogger(__name__)

VAL_BATCH = 1000  # validation batch: only memory, not the result, depends on it

Net = TypeVar("Net", bound=nn.Module)  # the network trained: a Fit returns the type it was given


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int  # the epoch kept is the one with the best validation accuracy
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 2  # epochs without a better validation accuracy before stopping


# Sized on the 2-core development CPU: MNIST trains in about a minute and a half.
TRAINING: dict[str, TrainConfig] = {
    "digits": TrainConfig(max_epochs=20, batch_size=64, patience=5),
    "mnist": TrainConfig(max_epochs=4),
    "fashion-mnist": TrainConfig(max_epochs=8),
    "cifar10": TrainConfig(max_epochs=10),
}


def recipe(dataset: str, *, epochs: int | None = None, batch_size: int | None = None) -> TrainConfig:
    """The recipe of ``dataset`` (10 epochs for one without its own), with ``epochs`` / ``batch_size`` overridden."""
    base = TRAINING.get(dataset, TrainConfig(max_epochs=10))
    train = TrainConfig(
        max_epochs=epochs if epochs is not None else base.max_epochs,
        batch_size=batch_size if batch_size is not None else base.batch_size,
        lr=base.lr,
        patience=base.patience,
    )
    if train.max_epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {train.max_epochs}")
    return train


@dataclass
class Fit(Generic[Net]):
    """A trained classifier (eval mode, the best epoch's weights) and how its training went."""

    model: Net
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    train: TrainConfig
    threads: int


class ClassifierModule(L.LightningModule):
    """Cross-entropy on (image, label) batches; keeps, in memory, the weights of its best validation epoch."""

    def __init__(self, net: nn.Module, train: TrainConfig, steps_per_epoch: int, dataset: str = "") -> None:
        super().__init__()
        self.net, self.train_config, self.steps_per_epoch, self.dataset = net, train, steps_per_epoch, dataset
        self.best_accuracy, self.best_epoch, self.epochs_run = -1.0, 0, 0
        self.best_state: dict[str, Tensor] | None = None
        self._correct = self._seen = 0
        self._start = time.perf_counter()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._correct = self._seen = 0

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self._correct += int((self.net(x).argmax(1) == y).sum())
        self._seen += len(y)

    def on_validation_epoch_end(self) -> None:
        # Counted exactly over the whole split (not a mean of per-batch means), as the test accuracy is.
        acc = self._correct / self._seen
        epoch = self.current_epoch + 1
        self.epochs_run = epoch
        self.log("val/acc", acc)  # EarlyStopping reads it
        log.info("%s classifier epoch %d/%d: val accuracy %.4f (%.0f s)", self.dataset, epoch,
                 self.train_config.max_epochs, acc, time.perf_counter() - self._start)
        if acc > self.best_accuracy:  # strictly better, as EarlyStopping counts it: the earliest best epoch wins
            self.best_accuracy, self.best_epoch = acc, epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.net.parameters(), lr=self.train_config.lr)
        # Cosine over every step the recipe allows, stepped per batch: early stopping ends it before the bottom.
        total = self.train_config.max_epochs * self.steps_per_epoch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _ShuffledBatches(Sampler[Tensor]):
    """Index batches of one fresh permutation per epoch, drawn from a generator of its own seeded by ``seed``.

    Not RandomSampler: it draws a second, unused permutation each epoch, so from the second epoch on its order
    would leave the stream the shipped classifiers were trained on."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[Tensor]:
        order = torch.randperm(self.n, generator=self.generator)
        return (order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


def _loaders(train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], batch_size: int,
             seed: int) -> tuple[DataLoader, DataLoader]:
    """Whole batches indexed out of the in-memory tensors: the samplers yield index batches and, with
    ``batch_size=None``, TensorDataset indexes each batch at once (no per-sample collation)."""
    val_batches = BatchSampler(SequentialSampler(range(len(val[0]))), VAL_BATCH, drop_last=False)
    return (DataLoader(TensorDataset(*train), sampler=_ShuffledBatches(len(train[0]), batch_size, seed),
                       batch_size=None),
            DataLoader(TensorDataset(*val), sampler=val_batches, batch_size=None))


def _accelerator(device: str | torch.device) -> dict[str, Any]:
    dev = torch.device(device)
    if dev.type == "cuda":
        return {"accelerator": "gpu", "devices": [dev.index or 0]}
    return {"accelerator": dev.type, "devices": 1}


def fit_classifier(
    dataset: str,
    build: Callable[[], Net],
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> Fit[Net]:
    """Train ``build()`` on the train split of ``dataset`` by its :data:`TRAINING` recipe, selecting the epoch on
    the val split; the test split is left to the caller.

    ``seed`` seeds torch before ``build`` (the initial weights) and, separately, the shuffling. ``threads`` CPU
    threads (None: torch's setting) are used, and restored afterwards: on a shared 2-core machine, 2 threads against
    other busy processes ran 4x *slower* per step than 1 (OpenMP workers wait on each other); pass 1 there.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit(dataset, build, recipe(dataset, epochs=epochs, batch_size=batch_size), seed, device)
    finally:
        torch.set_num_threads(before)


def _fit(dataset: str, build: Callable[[], Net], train: TrainConfig, seed: int,
         device: str | torch.device) -> Fit[Net]:
    data = data_module()  # looked up now, not at import: tests put a small stand-in in its place
    train_split = data.load_split(dataset, "train")
    val_split = data.load_split(dataset, "val")
    torch.manual_seed(seed)  # only torch's generator, as before: the initial weights
    steps_per_epoch = math.ceil(len(train_split[0]) / train.batch_size)
    net = build()
    module = ClassifierModule(net, train, steps_per_epoch, dataset=dataset)
    train_loader, val_loader = _loaders(train_split, val_split, train.batch_size, seed)
    log.info("training the %s classifier (%d threads): at most %d epochs x %d steps", dataset,
             torch.get_num_threads(), train.max_epochs, steps_per_epoch)
    trainer = L.Trainer(
        max_epochs=train.max_epochs,
        **_accelerator(device),
        logger=False,  # nothing on disk but the cached classifier: its metadata records the run
        callbacks=[StepProgress(train.max_epochs * steps_per_epoch),
                   EarlyStopping(monitor="val/acc", mode="max", patience=train.patience)],
        enable_progress_bar=False,  # StepProgress draws one bar for the run, not one per epoch
        enable_checkpointing=False,  # the best epoch's weights are kept in memory by the module
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    seconds = time.perf_counter() - start
    if module.best_state is None:
        raise RuntimeError(f"training the {dataset} classifier ended before its first validation")
    net.load_state_dict(module.best_state)
    log.info("%s classifier: val accuracy %.4f (epoch %d of %d run, %.0f s)", dataset, module.best_accuracy,
             module.best_epoch, module.epochs_run, seconds)
    return Fit(net.to(device).eval(), module.best_accuracy, module.best_epoch, module.epochs_run, seconds,
               train, torch.get_num_threads())
