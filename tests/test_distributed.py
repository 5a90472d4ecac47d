"""Sharded sampling and evaluation (2 CPU processes, gloo) give what one process gives; DDP training runs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from trilemma_bench.benchmark.distributed import check_shards, shard_block
from trilemma_bench.benchmark.results import read_results


def test_blocks_are_whole_batches_that_tile_the_cell() -> None:
    for n, batch, world in [(96, 32, 2), (100, 32, 3), (1000, 100, 4), (64, 32, 1)]:
        blocks = [shard_block(n, batch, r, world) for r in range(world)]
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
        assert all(lo % batch == 0 for lo, _ in blocks)
    with pytest.raises(ValueError, match="no full batch to time"):
        check_shards(64, 32, 3)


def _args(results: Path, devices: int, method: str):
    from trilemma_bench.benchmark.request import BenchRequest

    return BenchRequest(
        method=method, preset="smoke", dataset=None, device="cpu", retrain=False, steps=40, nfe=[5], seeds=[0],
        num_samples=96, batch_size=32, bf16=False, compile=False, extractor=None, results=results, threads=1,
        repeats=None, devices=devices, strategy="auto",
    )


@pytest.mark.slow
def test_two_processes_give_the_samples_and_metrics_of_one(tmp_path: Path, monkeypatch) -> None:
    """Each process samples whole batches of its block (the same batches one process samples), features
    are gathered in image order, every process scores the whole set: identical numbers, not close ones."""
    from trilemma_bench.benchmark.harness import run_bench

    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    try:
        one = run_bench(_args(tmp_path / "one", 1, "ddpm-fixedsmall"))[0]
        two = run_bench(_args(tmp_path / "two", 2, "ddpm-fixedsmall"))[0]
    finally:
        torch.set_num_threads(threads)
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "modes", "high_quality", "mode_kl", "nfe"):
        assert one[key] == two[key] or (math.isnan(one[key]) and math.isnan(two[key])), key
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert (tmp_path / "one" / one["grid"]).read_bytes() == (tmp_path / "two" / two["grid"]).read_bytes()
    table = read_results(tmp_path / "two")
    assert len(table) == 2 and set(table["method"]) == {"real", "ddpm-fixedsmall"}  # rank 0 wrote, once


@pytest.mark.slow
def test_two_process_ddp_training_runs_on_toy2d(tmp_path: Path) -> None:
    from trilemma_bench.presets import get_preset
    from trilemma_bench.train import build_model, train_model

    preset = get_preset("smoke").with_steps(20)
    with pytest.raises(ValueError, match="must divide the batch"):
        train_model("ddpm", preset, device="cpu", root=tmp_path, devices=3, strategy="ddp_spawn")
    threads = torch.get_num_threads()
    try:
        model, path = train_model("ddpm", preset, device="cpu", root=tmp_path, devices=2, strategy="ddp_spawn")
    finally:
        torch.set_num_threads(threads)
    assert path.exists()
    torch.manual_seed(0)  # build_model inside train_model was seeded with 0 too: the same initial weights
    untrained = build_model("ddpm", preset)
    moved = [not torch.equal(a, b) for a, b in zip(model.net.parameters(), untrained.net.parameters())]
    assert any(moved)
    metrics = next((path.parent / "logs").rglob("metrics.csv"))
    assert "train/loss" in metrics.read_text()
