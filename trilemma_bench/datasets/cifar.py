"""CIFAR-10: the official python-pickle release, and the offline JPEG re-encode in zips.

Splits: train = 45,000, val = the last 5,000 training images, test = 10,000. The JPEG pixels differ
from the original ones, so FID on that source is not comparable with published CIFAR-10 numbers;
its label says "JPEG" so that results carry the difference.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from torch import Tensor

from ..paths import atomic_path
from .common import DatasetUnavailable, Source, check_split, cut_train_val, labels_tensor, uint8_to_unit
from .download import RemoteFile, fetch, is_verified

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VAL_SIZE = 5_000
SHAPE = (3, 32, 32)

# ---- official release ------------------------------------------------------------------------------

ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published on the CIFAR page (MD5 only)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CACHE_KEY = "cifar10"


def official_remote() -> RemoteFile:
    return RemoteFile(ARCHIVE, CIFAR10_URLS, md5=CIFAR10_MD5)


@functools.lru_cache(maxsize=1)
def _read_archive(path: str, _mtime_ns: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": all 50k, "test": 10k} read straight from the tar.gz (nothing is unpacked to disk).
    Cached because train and val both come from the training batches."""
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name).name
            if member.isfile() and (name in TRAIN_BATCHES or name == TEST_BATCH):
                f = tar.extractfile(member)
                assert f is not None
                # Python 2 pickles of numpy arrays; latin1 is what numpy needs to read them back.
                d = pickle.load(f, encoding="latin1")
                x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, *SHAPE)  # rows are R, G, B planes
                batches[name] = (x, np.asarray(d["labels"], dtype=np.int64))
    missing = [b for b in (*TRAIN_BATCHES, TEST_BATCH) if b not in batches]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}; not a cifar-10-python archive")
    out = {
        "train": tuple(np.concatenate([batches[b][i] for b in TRAIN_BATCHES]) for i in (0, 1)),
        "test": batches[TEST_BATCH],
    }
    for x, y in out.values():
        x.flags.writeable = y.flags.writeable = False
    return out  # type: ignore[return-value]


def load_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    check_split(split)
    parts = _read_archive(str(path), path.stat().st_mtime_ns)
    if split == "test":
        return parts["test"]
    return cut_train_val(*parts["train"], split, VAL_SIZE)


def official_source() -> Source:
    def fetch_archive(root: Path) -> None:
        fetch(official_remote(), root / CACHE_KEY)

    def load(root: Path, split: str) -> tuple[Tensor, Tensor]:
        x, y = load_archive(root / CACHE_KEY / ARCHIVE, split)
        return uint8_to_unit(x), labels_tensor(y)

    return Source(
        label="official CIFAR-10 python (cache)",
        is_available=lambda root: is_verified(root / CACHE_KEY / ARCHIVE, official_remote()),
        load=load,
        missing="the official cifar-10-python.tar.gz is not in the cache",
        fetch=fetch_archive,
    )


# ---- offline JPEG zips -----------------------------------------------------------------------------

JPEG_ENV = "TRILEMMA_BENCH_CIFAR10_JPEG"
JPEG_ZIPS = {"train": "cifar10-train.zip", "test": "cifar10-test.zip"}
_REPO_ROOT = Path(__file__).resolve().parents[2]
JPEG_DIRS = (_REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg", Path("/work/shared/data/cifar10-jpeg"))


def jpeg_dir() -> Path | None:
    """Where the JPEG zips are: ``$TRILEMMA_BENCH_CIFAR10_JPEG`` if set (and then only there, so a
    wrong setting is not silently bypassed), else ``<repo>/../shared/data/cifar10-jpeg``, else
    ``/work/shared/data/cifar10-jpeg``."""
    env = os.environ.get(JPEG_ENV)
    candidates = (Path(env).expanduser(),) if env else JPEG_DIRS
    for d in candidates:
        if all((d / z).is_file() for z in JPEG_ZIPS.values()):
            return d
    return None


def _sort_key(member: str) -> tuple:
    """Interleave classes (image 0 of each class, then image 1, ...): the zips are grouped by class, and
    "val = last 5,000" must not be 5,000 trucks. It then holds the last 500 of each class."""
    p = PurePosixPath(member)
    stem = (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)
    return (*stem, CLASSES.index(p.parent.name))


def decode_jpeg_zip(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All ``<split>/<class>/<index>.jpg`` members of one zip as uint8 (N, 3, 32, 32) and class indices,
    read member by member without unpacking."""
    from PIL import Image  # imported late: only this source needs it

    with zipfile.ZipFile(path) as zf:
        members = []
        for info in zf.infolist():
            p = PurePosixPath(info.filename)
            if info.is_dir() or p.suffix.lower() not in (".jpg", ".jpeg"):
                continue
            if len(p.parts) != 3 or p.parts[0] != split or p.parts[1] not in CLASSES:
                raise ValueError(f"{path}: unexpected member {info.filename!r}; want {split}/<class>/<n>.jpg")
            members.append(info.filename)
        if not members:
            raise ValueError(f"{path}: no JPEG members")
        members.sort(key=_sort_key)
        x = np.empty((len(members), 32, 32, 3), dtype=np.uint8)
        for i, name in enumerate(members):
            with Image.open(io.BytesIO(zf.read(name))) as im:
                a = np.asarray(im.convert("RGB"))
            if a.shape != (32, 32, 3):
                raise ValueError(f"{path}:{name}: image of shape {a.shape}, expected 32x32 RGB")
            x[i] = a
    y = np.array([CLASSES.index(PurePosixPath(m).parent.name) for m in members], dtype=np.int64)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_jpeg_zip(path: Path, split: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decoded zip, cached as ``.npy`` under ``cache`` keyed by the zip's SHA-256 (decoding the 50,000
    training JPEGs takes ~5 s; loading the cache a fraction of that)."""
    key = f"{split}-{_sha256(path)[:16]}"
    x_path, y_path = cache / f"{key}-x.npy", cache / f"{key}-y.npy"
    if x_path.is_file() and y_path.is_file():
        return np.load(x_path, mmap_mode="r"), np.load(y_path)
    x, y = decode_jpeg_zip(path, split)
    for target, array in ((y_path, y), (x_path, x)):  # x last: its presence marks a complete entry
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    return x, y


def jpeg_source() -> Source:
    def load(root: Path, split: str) -> tuple[Tensor, Tensor]:
        check_split(split)
        d = jpeg_dir()
        if d is None:
            raise DatasetUnavailable(_jpeg_missing())
        zip_split = "test" if split == "test" else "train"
        x, y = load_jpeg_zip(d / JPEG_ZIPS[zip_split], zip_split, root / "cifar10-jpeg")
        if split != "test":
            x, y = cut_train_val(x, y, split, VAL_SIZE)
        return uint8_to_unit(np.asarray(x)), labels_tensor(y)

    return Source(
        label="cifar10 JPEG zip (shared/data)",
        is_available=lambda root: jpeg_dir() is not None,
        load=load,
        missing=_jpeg_missing(),
    )


def _jpeg_missing() -> str:
    where = os.environ.get(JPEG_ENV) or " or ".join(str(d) for d in JPEG_DIRS)
    return (
        f"the CIFAR-10 JPEG zips ({', '.join(JPEG_ZIPS.values())}) are not in {where} "
        f"(set {JPEG_ENV} to the folder that holds them)"
    )
