"""The benchmark scripts stay runnable: each on a tiny CPU configuration (their real runs are long)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_gpu_timing_script_counts_flops_and_times_on_a_cpu(tmp_path: Path) -> None:
    bench = _load("bench_gpu_timing")
    result = bench.main(["--device", "cpu", "--preset", "smoke", "--batches", "1,4", "--modes", "eager",
                         "--repeats", "2", "--warmup", "1", "--out", str(tmp_path / "t.json")])
    rows = [r for r in result["rows"] if r["network"] == "ddpm"]
    assert [r["batch"] for r in rows] == [1, 4]
    # DDGAN's toy generator (its latent z supplied) is timed beside the eps network
    assert [r["batch"] for r in result["rows"] if r["network"] == "ddgan"] == [1, 4]
    # The smoke MLP: its FLOPs per image are the same at any batch, and positive.
    assert rows[0]["gflops_per_image"] == pytest.approx(rows[1]["gflops_per_image"]) and rows[0]["gflops_per_image"] > 0
    assert all(r["ms_per_image"] > 0 and math.isnan(r["pct_of_peak"]) for r in rows)  # a CPU has no peak here
    assert (tmp_path / "t.json").exists()
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--modes", "fastest"])
