"""Domain classifiers: a small CNN per image dataset, trained by the project, cached, used for features.

Features are the penultimate layer (128-d; 64-d for 8x8 digits). Stacked-MNIST has no classifier of
its own: the MNIST one reads each of its 3 channels. Its features are the 3 channels' MNIST features
concatenated (384-d), so they describe the digit *triple* that makes a Stacked-MNIST mode; averaging or
pooling per channel would make e.g. (1, 2, 3) and (3, 2, 1) indistinguishable.

Training (a LightningModule and its recipe) lives in :mod:`trilemma_bench.classifier_training`, imported here
only when a classifier must be trained: loading the shipped or cached one never imports it.

The cache file ``sub_cache("extractors")/<dataset>-classifier.pt`` holds the weights, their SHA-1,
the architecture, the data source, the test accuracy and a format version; anything that does not
match is refused (or retrained when asked), never silently used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..paths import sub_cache
from ._cache import InvalidCacheError, atomic_save, digest_tensors, load_payload
from .extractor import BatchedExtractor, data_module, dataset_info

if TYPE_CHECKING:
    from ..classifier_training import TrainConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STACKED = "stacked-mnist"


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture: one conv-BN-ReLU-maxpool block per width, then a ReLU embedding, then the head."""

    in_channels: int
    image_size: int
    num_classes: int
    widths: tuple[int, ...]
    feature_dim: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "widths": list(self.widths)}


def classifier_dataset(dataset: str) -> str:
    """The dataset whose classifier serves ``dataset`` (Stacked-MNIST uses MNIST's)."""
    return "mnist" if dataset == STACKED else dataset


def classifier_config(dataset: str) -> ClassifierConfig:
    ds = classifier_dataset(dataset)
    info = dataset_info(ds)
    if not info.is_image:
        raise ValueError(
            f"{dataset!r} is not an image dataset: it has no domain classifier (use the 'raw' extractor)"
        )
    c, h, w = info.shape
    if h != w:
        raise ValueError(f"domain classifiers assume square images; {ds!r} has {h}x{w}")
    if h <= 8:  # 8x8 digits: two pools leave 2x2, and 1.8k images do not need a wide embedding
        return ClassifierConfig(c, h, info.num_classes, (32, 64), 64)
    if h <= 28:
        return ClassifierConfig(c, h, info.num_classes, (32, 64), 128)
    return ClassifierConfig(c, h, info.num_classes, (32, 64, 128), 128)


class SmallCNN(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = cfg.in_channels, cfg.image_size
        for width in cfg.widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels, side = width, side // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(channels * side * side, cfg.feature_dim), nn.ReLU())
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.embed(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------------------- training


@dataclass
class _Fit:
    model: SmallCNN
    test_accuracy: float
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    train: TrainConfig
    threads: int


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        pred = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == y[i : i + batch_size]).sum())
    return correct / len(x)


def _fit(
    dataset: str,
    *,
    epochs: int | None,
    batch_size: int | None,
    seed: int,
    device: str | torch.device,
    threads: int | None = None,
) -> _Fit:
    """Train the classifier of ``dataset`` (:func:`trilemma_bench.classifier_training.fit_classifier`: the recipe,
    seeding and ``threads`` are its) and score it on the test split."""
    if dataset == STACKED:
        raise ValueError(
            "stacked-mnist has no classifier of its own: train 'mnist' (it is applied per channel)"
        )
    cfg = classifier_config(dataset)
    # Deferred: Lightning's training code is loaded only when a classifier must be trained. The training
    # module takes the network as a factory and imports nothing of this one, so the graph stays acyclic.
    from ..classifier_training import fit_classifier

    fit = fit_classifier(
        dataset,
        lambda: SmallCNN(cfg),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=device,
        threads=threads,
    )
    x_te, y_te = data_module().load_split(dataset, "test")
    test_acc = accuracy(fit.model, x_te, y_te)
    log.info("%s classifier: test accuracy %.4f", dataset, test_acc)
    return _Fit(
        fit.model,
        test_acc,
        fit.val_accuracy,
        fit.best_epoch,
        fit.epochs_run,
        fit.seconds,
        fit.train,
        fit.threads,
    )


def train_classifier(
    dataset: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> tuple[SmallCNN, float]:
    """Train (not cache) the domain classifier of ``dataset``; return it in eval mode and its test accuracy.

    ``epochs`` is the maximum; the epoch with the best validation accuracy is kept.
    """
    fit = _fit(dataset, epochs=epochs, batch_size=batch_size, seed=seed, device=device, threads=threads)
    return fit.model, fit.test_accuracy


# -------------------------------------------------------------------------------------------- cache


def classifier_path(dataset: str) -> Path:
    return sub_cache("extractors") / f"{classifier_dataset(dataset)}-classifier.pt"


def _expected(dataset: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "dataset": dataset,
        "config": classifier_config(dataset).as_dict(),
        "source": data_module().dataset_source(dataset),
    }


def _save(fit: _Fit, dataset: str, path: Path) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in fit.model.state_dict().items()}
    meta = {
        **_expected(dataset),
        "weights_sha1": digest_tensors(state),
        "test_accuracy": fit.test_accuracy,
        "val_accuracy": fit.val_accuracy,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "train": asdict(fit.train),
        "train_seconds": fit.seconds,
        "train_threads": fit.threads,
        "torch": str(torch.__version__),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_save({**meta, "state_dict": state}, path)
    return meta


def _load_valid(path: Path, dataset: str, device: str | torch.device) -> tuple[SmallCNN, dict[str, Any]]:
    """The cached classifier at ``path``, or InvalidCacheError saying what does not match."""
    payload = load_payload(path, "classifier")
    for key, want in _expected(dataset).items():
        got = payload.get(key)
        if got != want:
            raise InvalidCacheError(f"cached classifier {path} was made for {key}={got!r}, expected {want!r}")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or digest_tensors(state) != payload.get("weights_sha1"):
        raise InvalidCacheError(
            f"cached classifier {path}: weights do not match their recorded SHA-1 (corrupt)"
        )
    acc = payload.get("test_accuracy")
    if not isinstance(acc, float) or not 0.0 <= acc <= 1.0:
        raise InvalidCacheError(f"cached classifier {path}: test accuracy {acc!r} is not a fraction")
    model = SmallCNN(classifier_config(dataset))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InvalidCacheError(
            f"cached classifier {path}: weights do not fit the architecture ({err})"
        ) from err
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device).eval(), meta


def _shipped(ds: str) -> tuple[SmallCNN, dict[str, Any]] | None:
    """The classifier shipped in the repository (``models/extractors/``) for this configuration and data source:
    pinned, so every machine scores with the same features. None when there is none."""
    from ..weights import find_matching, read_weights, shipped_dir

    found = find_matching(shipped_dir() / "extractors", f"{ds}-classifier", _expected(ds))
    if found is None:
        return None
    model = SmallCNN(classifier_config(ds))
    model.load_state_dict(read_weights(found))
    return model, {**found.meta, "shipped": found.path.name}


def ship_classifier(dataset: str) -> Path:
    """Copy the cached classifier of ``dataset`` into the repository's ``models/extractors/`` (a maintainer's act)."""
    from ..weights import save_weights, shipped_dir

    ds = classifier_dataset(dataset)
    model, meta = _load_valid(classifier_path(ds), ds, "cpu")
    return save_weights(model, shipped_dir() / "extractors", f"{ds}-classifier", meta)


def load_classifier(
    dataset: str,
    *,
    device: str | torch.device = "cpu",
    train_if_missing: bool = True,
    retrain_if_invalid: bool = False,
) -> tuple[SmallCNN, dict[str, Any]]:
    """The cached classifier serving ``dataset`` and its metadata, training it on first use.

    A cached file that is corrupt or was made for another architecture, format or data source raises
    :class:`InvalidCacheError`, unless ``retrain_if_invalid`` (then it is retrained and replaced).
    """
    ds = classifier_dataset(dataset)
    shipped = _shipped(ds)
    if shipped is not None:
        return shipped[0].to(device).eval(), shipped[1]
    path = classifier_path(ds)
    if path.exists():
        try:
            return _load_valid(path, ds, device)
        except InvalidCacheError as err:
            if not retrain_if_invalid:
                raise InvalidCacheError(
                    f"{err}.\nRetrain it with `trilemma-bench features train --dataset {ds} --force`, "
                    "pass retrain_if_invalid=True, or delete the file."
                ) from err
            log.warning("%s; retraining it", err)
    elif not train_if_missing:
        raise FileNotFoundError(
            f"no cached {ds} classifier at {path}; "
            f"train it with `trilemma-bench features train --dataset {ds}`"
        )
    else:
        log.warning(
            "no cached %s classifier at %s: training one now (first use; about 1-2 min on a 2-core CPU "
            "for MNIST)",
            ds,
            path,
        )
    fit = _fit(ds, epochs=None, batch_size=None, seed=0, device=device)
    meta = _save(fit, ds, path)
    return fit.model.to(device).eval(), meta


def train_and_cache(
    dataset: str, *, force: bool = False, device: str | torch.device = "cpu", threads: int | None = None
) -> dict[str, Any]:
    """Train the classifier of ``dataset`` and cache it, unless a valid one is cached (and not ``force``).

    Returns ``accuracy`` (test), ``path``, ``seconds`` (spent training in this call: 0 when reused),
    ``trained`` and ``source``. Backs ``trilemma-bench features train --dataset NAME [--force]``.
    """
    ds = classifier_dataset(dataset)
    path = classifier_path(ds)
    if not force and path.exists():
        try:
            _, meta = _load_valid(path, ds, "cpu")
            return {
                "dataset": ds,
                "accuracy": meta["test_accuracy"],
                "path": str(path),
                "seconds": 0.0,
                "trained": False,
                "source": meta["source"],
            }
        except InvalidCacheError as err:
            log.warning("%s; retraining it", err)
    fit = _fit(ds, epochs=None, batch_size=None, seed=0, device=device, threads=threads)
    meta = _save(fit, ds, path)
    return {
        "dataset": ds,
        "accuracy": fit.test_accuracy,
        "path": str(path),
        "seconds": fit.seconds,
        "trained": True,
        "source": meta["source"],
    }


# ---------------------------------------------------------------------------------------- extractor


class DomainExtractor(BatchedExtractor):
    """Penultimate-layer features of the cached classifier (Stacked-MNIST: per channel, concatenated)."""

    default_batch_size = 1024

    def __init__(
        self, model: SmallCNN, meta: dict[str, Any], dataset: str, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.dataset = dataset
        self.stacked = dataset == STACKED
        feature_dim = int(meta["config"]["feature_dim"])
        self.name = f"domain-{meta['dataset']}" + ("-x3" if self.stacked else "")
        self.dim = feature_dim * (3 if self.stacked else 1)
        self.accuracy = float(meta["test_accuracy"])
        self.expected_shape = tuple(dataset_info(dataset).shape)

    def _channels(self, x: Tensor) -> Tensor:
        # (N, 3, H, W) -> (3N, 1, H, W), channel-major, so per-channel outputs are contiguous blocks of N.
        return x.transpose(0, 1).reshape(-1, 1, *x.shape[2:])

    def _features(self, x: Tensor) -> Tensor:
        if not self.stacked:
            return self.model.features(x)
        f = self.model.features(self._channels(x))
        return torch.cat(f.chunk(3), dim=1)

    def predict(self, x: Tensor, *, batch_size: int | None = None) -> Tensor:
        """Predicted labels (N,); for Stacked-MNIST the digit of each channel, (N, 3)."""

        def labels(batch: Tensor) -> Tensor:
            if not self.stacked:
                return self.model(batch).argmax(1)
            return torch.stack(self.model(self._channels(batch)).argmax(1).chunk(3), dim=1)

        return self.map_batches(x, labels, batch_size=batch_size)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": "domain",
            "classifier": self.meta["dataset"],
            "format": self.meta["format"],
            "config": self.meta["config"],
            "weights_sha1": self.meta["weights_sha1"],
            "test_accuracy": self.accuracy,
            "stacked": self.stacked,
        }


def domain_extractor(
    dataset: str, *, device: str | torch.device = "cpu", retrain_if_invalid: bool = False
) -> DomainExtractor:
    model, meta = load_classifier(dataset, device=device, retrain_if_invalid=retrain_if_invalid)
    return DomainExtractor(model, meta, dataset, device=device)


def classify_stacked(
    x: Tensor, *, device: str | torch.device = "cpu", batch_size: int | None = None
) -> Tensor:
    """Digit of each channel of Stacked-MNIST images (N, 3, 28, 28) in [-1, 1] -> int64 (N, 3).

    The mode of an image is ``100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]``, as ``load_split`` labels it.
    """
    return domain_extractor(STACKED, device=device).predict(x, batch_size=batch_size)
