"""How samples are scored: quantized to the data's grid, against which split, beside which real data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from trilemma_bench.benchmark.scoring import real_sets, reference_split
from trilemma_bench.data import DATASETS, load_split
from trilemma_bench.datasets.common import uint8_to_unit
from trilemma_bench.quantize import quantize


def test_quantize_maps_onto_the_native_grid_and_keeps_real_images() -> None:
    digits, _ = load_split("digits", "test")
    torch.testing.assert_close(quantize(digits, DATASETS["digits"].levels), digits, rtol=0, atol=0)
    grid = uint8_to_unit(np.arange(256, dtype=np.uint8))
    torch.testing.assert_close(quantize(grid, 256), grid, rtol=0, atol=0)
    x = torch.linspace(-1.3, 1.3, 1001)
    q = quantize(x, 17)
    assert set(((q + 1) * 8).round().tolist()) <= set(map(float, range(17)))
    assert (q - x.clamp(-1, 1)).abs().max() <= 1 / 16 + 1e-6  # half a grid step
    torch.testing.assert_close(quantize(q, 17), q, rtol=0, atol=0)
    points = torch.randn(5, 2)
    assert quantize(points, None) is points


def test_held_out_split_where_it_is_large_enough() -> None:
    assert reference_split("digits", 2000) == "train"  # 180 test images: FID not estimable against them
    assert reference_split("digits", 150) == "test"
    assert reference_split("toy2d", 2000) == "test"


def _cfg(dataset: str, n: int) -> SimpleNamespace:
    return SimpleNamespace(preset=SimpleNamespace(dataset=dataset), num_samples=n)


def test_real_sets_are_held_out_and_matched_or_say_they_are_not() -> None:
    sets = real_sets(_cfg("digits", 2000), SimpleNamespace(split="train"), seed=0)
    held, resampled = sets
    assert held.sampler == "heldout-val+test" and len(held.images) == 359 and not held.matched
    assert resampled.sampler == "resampled-train" and len(resampled.images) == 2000 and resampled.matched
    assert resampled.copies_training
    train, _ = load_split("digits", "train")
    assert (resampled.images[:, None] == train[None]).flatten(2).all(-1).any(-1).all()  # every one a training image

    (toy,) = real_sets(_cfg("toy2d", 500), SimpleNamespace(split="test"), seed=1)
    assert toy.sampler == "heldout-val" and len(toy.images) == 500 and toy.matched and not toy.copies_training
    (again,) = real_sets(_cfg("toy2d", 500), SimpleNamespace(split="test"), seed=1)
    torch.testing.assert_close(toy.images, again.images)  # seeded: the same real subset for the same seed
