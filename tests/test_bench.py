"""The benchmark harness: timing protocol, results table, one bench end to end, bad input, and a bench
killed midway then re-run (no finished row lost, none duplicated)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from trilemma_bench.benchmark.request import BenchRequest
from trilemma_bench.benchmark.results import KEY, read_results, results_path, upsert_row
from trilemma_bench.benchmark.timing import FlopProbe, peak_flops, time_batches

# A tiny smoke configuration: seconds to train, milliseconds a cell.
STEPS = 30
FAST = [
    "--preset",
    "smoke",
    "--steps",
    str(STEPS),
    "--num-samples",
    "64",
    "--batch-size",
    "32",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """A cache of this module's own: its 30-step smoke checkpoint must not meet another test's."""
    path = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRILEMMA_BENCH_CACHE", str(path))
        threads = torch.get_num_threads()
        yield path
        torch.set_num_threads(threads)


def bench_args(results: Path, **over) -> BenchRequest:
    base = {
        "method": "ddim",
        "preset": "smoke",
        "dataset": None,
        "device": "cpu",
        "retrain": False,
        "steps": STEPS,
        "nfe": [2, 5],
        "seeds": [0],
        "num_samples": 64,
        "batch_size": 32,
        "bf16": False,
        "compile": False,
        "extractor": None,
        "results": results,
        "threads": 1,
        "repeats": None,
    }
    return BenchRequest(**{**base, **over})


# ------------------------------------------------------------------------------------------ timing


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_batches_times_each_batch_after_warmup_and_takes_the_median() -> None:
    clock, calls = FakeClock(), []
    durations = {0: 0.010, 1: 0.030, 2: 0.020}  # seconds per batch index

    def sample(i: int) -> torch.Tensor:
        calls.append(i)
        clock.now += durations[i]
        return torch.full((4,), float(i))

    def warmup() -> None:
        calls.append("warm-up")
        clock.now += 5.0  # a slow first call must not reach the measurements

    def progress(i: int) -> None:
        calls.append(f"after {i}")
        clock.now += 1.0  # a slow progress bar must not reach the measurements either

    outputs, timing = time_batches(
        sample, 3, 4, device="cpu", warmup=warmup, warmup_runs=2, clock=clock, cpu_clock=clock, min_repeats=3,
        after_batch=progress,
    )
    assert calls == ["warm-up", "warm-up", 0, "after 0", 1, "after 1", 2, "after 2"]
    assert timing.times_ms == pytest.approx([10.0, 30.0, 20.0])
    assert timing.ms_per_batch == pytest.approx(20.0)  # median, not mean (20) nor first
    assert timing.ms_per_image == pytest.approx(5.0)
    assert timing.cpu_ms_per_image == pytest.approx(5.0)  # same fake clock for CPU time
    assert timing.images_per_s == pytest.approx(200.0)
    assert [int(o[0]) for o in outputs] == [0, 1, 2]
    assert timing.threads == torch.get_num_threads() and timing.peak_mem_mb > 0


def test_time_batches_repeats_batch_zero_up_to_min_repeats_and_keeps_its_samples_once() -> None:
    clock, calls = FakeClock(), []

    def sample(i: int) -> torch.Tensor:
        calls.append(i)
        clock.now += 0.001 * (len(calls))
        return torch.tensor([i])

    outputs, timing = time_batches(sample, 1, 8, device="cpu", min_repeats=3, clock=clock)
    assert calls == [0, 0, 0, 0]  # default warm-up (batch 0), then three timed repeats
    assert len(outputs) == 1 and len(timing.times_ms) == 3
    assert timing.ms_per_batch == pytest.approx(3.0)  # median of 2, 3, 4 ms


def test_flop_probe_counts_one_call_and_derives_rates() -> None:
    net = torch.nn.Linear(16, 8, bias=False)
    probe = FlopProbe(net)
    x = torch.randn(4, 16)
    for _ in range(3):
        probe(x)
    assert probe.flops_per_call == 2 * 4 * 16 * 8 and probe.batch == 4

    _, timing = time_batches(
        lambda i: x, 1, 4, device="cpu", min_repeats=1, clock=iter([0.0, 0.004]).__next__
    )
    rates = probe.rates(nfe=10, timing=timing, precision="float32")
    assert rates["gflops_per_image"] == pytest.approx(2 * 16 * 8 * 10 / 1e9)
    assert rates["achieved_tflops"] == pytest.approx(rates["gflops_per_image"] * 1e9 * 1000 / 1e12)
    assert math.isnan(rates["pct_of_peak"])  # a CPU has no datasheet peak here


def test_peak_flops_table() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "tf32") == 494.7e12
    assert peak_flops("NVIDIA H100 PCIe", "float32") == 51.2e12
    assert peak_flops("NVIDIA H200", "float32") == 66.9e12
    # NVL parts run at lower clocks and power than SXM: they must not take the SXM row.
    assert peak_flops("NVIDIA H100 NVL", "bfloat16") == 835e12
    assert peak_flops("NVIDIA H200 NVL", "bfloat16") == 835e12
    assert math.isnan(peak_flops("Some Future GPU", "bfloat16"))


def test_pct_of_peak_is_taken_against_the_precision_that_ran() -> None:
    from trilemma_bench.benchmark.timing import math_precision

    cpu = math_precision(torch.device("cpu"), "float32")
    assert cpu == {"tf32_matmul": False, "tf32_cudnn": False, "peak_precision": "float32"}
    cuda = torch.device("cuda")
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:  # the flags only: nothing runs on a GPU
        torch.backends.cuda.matmul.allow_tf32 = True
        assert math_precision(cuda, "float32")["peak_precision"] == "tf32"
        assert math_precision(cuda, "bfloat16")["peak_precision"] == "bfloat16"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        assert math_precision(cuda, "float32") == {"tf32_matmul": False, "tf32_cudnn": False,
                                                   "peak_precision": "float32"}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


# ------------------------------------------------------------------------------------------ results


def _row(**over) -> dict:
    row = {
        "dataset": "toy2d",
        "preset": "smoke",
        "method": "ddim",
        "sampler": "s",
        "nfe": 10,
        "seed": 0,
        "checkpoint": "c",
        "device": "cpu",
        "dtype": "float32",
        "compiled": False,
        "fid": 1.0,
        "timestamp": "2026-01-01T00:00:00+00:00",
    }
    return {**row, **over}


def test_upsert_replaces_the_row_of_the_same_cell(tmp_path: Path) -> None:
    upsert_row(tmp_path, _row(fid=1.0))
    upsert_row(tmp_path, _row(seed=1, fid=2.0))
    upsert_row(tmp_path, _row(fid=3.0))  # same cell as the first: replaced
    upsert_row(tmp_path, _row(dtype="bfloat16", fid=4.0))  # another precision is another cell
    table = read_results(tmp_path)
    assert len(table) == 3
    assert not table.duplicated(list(KEY)).any()
    assert table.loc[(table["seed"] == 0) & (table["dtype"] == "float32"), "fid"].tolist() == [3.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temp or lock file left


def _upsert_many(results: str, seed: int) -> None:
    for nfe in range(20):
        upsert_row(results, _row(seed=seed, nfe=nfe))


def test_concurrent_writers_lose_no_row(tmp_path: Path) -> None:
    """Two benches sharing results/ (ddim beside ddpm): the folder lock keeps every row."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_upsert_many, args=(str(tmp_path), seed)) for seed in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(read_results(tmp_path)) == 40


def test_upsert_refuses_a_row_without_its_key(tmp_path: Path) -> None:
    row = _row()
    del row["seed"]
    with pytest.raises(ValueError, match="seed"):
        upsert_row(tmp_path, row)


# ------------------------------------------------------------------------------------------ harness


def test_bench_writes_one_row_per_cell_with_measured_nfe_and_grids(cache: Path, tmp_path: Path) -> None:
    from trilemma_bench.benchmark.harness import run_bench

    rows = run_bench(bench_args(tmp_path, seeds=[0, 1]))
    table = read_results(tmp_path)
    assert len(rows) == 4 and len(table) == 6  # 4 cells, and one real-data row per seed
    real = table[table["method"] == "real"]
    assert sorted(real["seed"]) == [0, 1] and set(real["sampler"]) == {"heldout-val"} and real["matched_n"].all()
    table = table[table["method"] != "real"]
    assert sorted(table["nfe"]) == [2, 2, 5, 5]  # counted network calls per batch
    for col in (
        "ms_per_image",
        "ms_per_nfe",
        "fid",
        "kid",
        "precision",
        "recall",
        "density",
        "coverage",
        "modes",
    ):
        assert table[col].notna().all(), col
    assert set(table["modes_total"]) == {25} and set(table["feature_extractor"]) == {"raw"}
    cells = table[table["method"] != "real"]
    assert set(table["reference_split"]) == {"test"} and set(table["threads"]) == {1}  # toy2d: 5,000 held out
    assert (cells["timing_repeats"] == 5).all()  # 2 full batches of 32, then batch 0 until 5 timings
    assert set(cells["timing_statistic"]) == {"median"}
    assert table["git_commit"].notna().all() and table["torch_version"].eq(torch.__version__).all()
    for grid in table["grid"]:
        assert (tmp_path / grid).is_file()
    for cell in cells.itertuples():  # named by the weights: a retrained model's grids do not overwrite these
        digest = cell.checkpoint.rsplit("-", 1)[-1]
        assert len(digest) == 10 and f"-{digest}-nfe" in cell.grid, (cell.checkpoint, cell.grid)

    # Deterministic sampler, same seeds, same checkpoint: a re-run replaces the rows with the same numbers.
    again = run_bench(bench_args(tmp_path, seeds=[0, 1]))
    table2 = read_results(tmp_path)
    assert len(table2) == 6
    assert [r["fid"] for r in again] == pytest.approx([r["fid"] for r in rows], rel=1e-9)


@pytest.mark.parametrize("method", ["ddim", "ddpm-fixedlarge"])
def test_same_seed_gives_the_same_samples_whatever_the_batch_size(cache: Path, tmp_path: Path, method: str) -> None:
    """Stochastic samplers too: each image draws its ancestral noise from its own stream."""
    from trilemma_bench.benchmark.harness import run_bench

    a = run_bench(bench_args(tmp_path / "a", method=method, nfe=[5], batch_size=32))
    b = run_bench(bench_args(tmp_path / "b", method=method, nfe=[5], batch_size=64))
    assert a[0]["fid"] == pytest.approx(b[0]["fid"], rel=1e-5)
    assert a[0]["coverage"] == b[0]["coverage"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"method": "nope"}, "unknown method"),
        ({"nfe": [2000]}, "cannot sample at NFE 2000"),
        ({"nfe": [3, 4]}, r"\[3, 4\] all make 4 network calls"),
        ({"nfe": [0]}, "positive"),
        ({"num_samples": 5}, "too few"),
        ({"extractor": "domain"}, "not an image dataset"),
        ({"preset": "smoke", "dataset": "digits"}, "sized for"),
        ({"threads": 0}, "--threads must be positive"),
    ],
)
def test_bad_input_is_refused_before_any_work(cache: Path, tmp_path: Path, over: dict, message: str) -> None:
    from trilemma_bench.benchmark.harness import run_bench

    before = set(cache.rglob("*.ckpt"))
    with pytest.raises(ValueError, match=message):
        run_bench(bench_args(tmp_path, steps=7, **over))  # steps=7: a checkpoint nobody else trains
    assert set(cache.rglob("*.ckpt")) == before
    assert not results_path(tmp_path).exists()


def test_killed_bench_keeps_finished_rows_and_rerun_duplicates_none(cache: Path, tmp_path: Path) -> None:
    """SIGKILL a bench as soon as its first row lands, re-run it: every cell once, the early rows kept."""
    cmd = [
        sys.executable,
        "-m",
        "trilemma_bench.cli",
        "bench",
        "--method",
        "ddpm-fixedlarge",
        *FAST,
        "--nfe",
        "2,5,10",
        "--seeds",
        "0,1",
        "--results",
        str(tmp_path),
    ]
    env = {**os.environ, "TRILEMMA_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results_path(tmp_path).exists() and (read_results(tmp_path)["method"] != "real").any():
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed = read_results(tmp_path)  # must parse: never half a row
    killed = killed[killed["method"] != "real"]
    assert 1 <= len(killed) < 6, "the bench should have been killed midway"
    assert not killed.duplicated(list(KEY)).any()

    # The re-run runs in this process (the cache is the same): it saves a second start of Python and Lightning.
    from trilemma_bench.benchmark.harness import run_bench

    run_bench(bench_args(tmp_path, method="ddpm-fixedlarge", nfe=[2, 5, 10], seeds=[0, 1]))
    table = read_results(tmp_path)
    table = table[table["method"] != "real"]
    assert len(table) == 6
    assert not table.duplicated(list(KEY)).any()
    cells = set(map(tuple, table[["nfe", "seed"]].to_numpy().tolist()))
    assert cells == {(n, s) for n in (2, 5, 10) for s in range(2)}
    assert set(map(tuple, killed[["nfe", "seed"]].to_numpy().tolist())) <= cells


def test_results_table_columns_cover_the_issue(cache: Path, tmp_path: Path) -> None:
    from trilemma_bench.benchmark.harness import run_bench

    run_bench(bench_args(tmp_path, nfe=[2]))
    required = [
        "dataset",
        "method",
        "sampler",
        "nfe",
        "seed",
        "num_samples",
        "batch_size",
        "device",
        "dtype",
        "compiled",
        "ms_per_image",
        "ms_per_nfe",
        "images_per_s",
        "peak_mem_mb",
        "gflops_per_image",
        "pct_of_peak",
        "fid",
        "kid",
        "precision",
        "recall",
        "density",
        "coverage",
        "modes",
        "mode_kl",
        "feature_extractor",
        "extractor_accuracy",
        "checkpoint",
        "git_commit",
        "torch_version",
        "timestamp",
        "device_name",
        "threads",
        "preset",
        "dataset_source",
    ]
    table = pd.read_csv(results_path(tmp_path))
    assert [c for c in required if c not in table.columns] == []


def test_dry_run_counts_each_nfe_and_picks_a_short_warmup(cache: Path, tmp_path: Path) -> None:
    from trilemma_bench.benchmark.config import WARMUP_NFE, dry_run, make_config

    plan = dry_run(make_config(bench_args(tmp_path, method="ddpm-fixedsmall", nfe=[3, 1000])))
    assert plan.counted == {3: 3, 1000: 1000} and plan.warmup == {3: 3, 1000: WARMUP_NFE}
    plan = dry_run(make_config(bench_args(tmp_path, method="ddim", nfe=[3, 100])))
    assert plan.counted == {3: 4, 100: 100}  # DDIM's uniform skip, range(0, T, T // 3), makes 4 calls: measured


# ------------------------------------------------------------------------------------------ provenance


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_a_bench_run_leaves_the_dirty_flag_as_it_was(cache: Path, tmp_path: Path, monkeypatch) -> None:
    """Results, reports and docs a run writes into the checkout are output, not a change to the code."""
    from trilemma_bench.benchmark import provenance
    from trilemma_bench.benchmark.harness import run_bench

    repo = tmp_path / "repo"
    (repo / "trilemma_bench").mkdir(parents=True)
    (repo / "trilemma_bench" / "code.py").write_text("x = 1\n")
    (repo / "results").mkdir()
    (repo / "results" / "results.csv").write_text("old\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", repo / "trilemma_bench")
    assert not provenance.git_commit().endswith("+dirty")

    run_bench(bench_args(repo / "results", nfe=[2]))  # rewrites the tracked results/results.csv
    table = read_results(repo / "results")
    assert not table["git_commit"].str.endswith("+dirty").any()
    assert not provenance.git_commit().endswith("+dirty")
    (repo / "trilemma_bench" / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("+dirty")


@pytest.mark.parametrize("sha", ["1234567", "4e10123", "0000123"])
def test_a_commit_of_digits_reads_back_as_the_text_it_was(tmp_path: Path, sha: str) -> None:
    from trilemma_bench.benchmark.results import upsert_row

    key = {"dataset": "digits", "preset": "digits", "sampler": "ddim", "checkpoint": "c", "device": "cpu",
           "dtype": "float32", "compiled": False}
    upsert_row(tmp_path, {**key, "method": "ddim", "nfe": 10, "seed": 0, "git_commit": sha})
    assert read_results(tmp_path)["git_commit"].tolist() == [sha]


def test_rows_name_the_commit_checked_out_when_the_run_began(cache: Path, tmp_path: Path, monkeypatch) -> None:
    """A commit made while a model trains must not be named by rows that code did not produce."""
    from trilemma_bench import train
    from trilemma_bench.benchmark import harness

    head = {"sha": "aaaaaaa"}
    monkeypatch.setattr(harness, "git_commit", lambda: head["sha"])
    real_train = train.train_model

    def train_then_commit(*a, **k):
        out = real_train(*a, **k)
        head["sha"] = "bbbbbbb"  # someone commits while the model trains
        return out

    monkeypatch.setattr(train, "train_model", train_then_commit)
    harness.run_bench(bench_args(tmp_path, nfe=[2]))
    assert set(read_results(tmp_path)["git_commit"]) == {"aaaaaaa"}


def test_rows_hold_no_absolute_path_of_this_machine(cache: Path, tmp_path: Path) -> None:
    from trilemma_bench.benchmark.harness import run_bench

    run_bench(bench_args(tmp_path, nfe=[2]))
    text = results_path(tmp_path).read_text()
    assert str(cache) not in text and str(tmp_path) not in text
    table = read_results(tmp_path)
    cells = table[table["method"] != "real"]
    assert cells["checkpoint_path"].str.startswith("<cache>/checkpoints/toy2d/").all()


def test_a_latent_method_times_its_decoder_apart(cache: Path, tmp_path: Path, monkeypatch) -> None:
    """A method with a decoder: the sampler and the decoder are timed apart, ms/image is their sum, and the
    decoder's FLOPs are counted (here a 2 x 2 linear map: 8 FLOPs an image)."""
    import dataclasses

    from trilemma_bench import methods
    from trilemma_bench.benchmark.harness import run_bench

    scale = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        scale.weight.copy_(torch.eye(2))
    latent = dataclasses.replace(methods.METHODS["ddim"], name="fake-latent", decoder=lambda model: scale)
    monkeypatch.setitem(methods.METHODS, "fake-latent", latent)
    row = run_bench(bench_args(tmp_path, method="fake-latent", nfe=[2]))[0]
    plain = run_bench(bench_args(tmp_path / "plain", method="ddim", nfe=[2]))[0]
    assert row["ms_per_image"] == pytest.approx(row["sampler_ms_per_image"] + row["decoder_ms_per_image"])
    assert row["decoder_ms_per_image"] > 0
    assert row["decoder_gflops_per_image"] == pytest.approx(8 / 1e9)
    assert row["fid"] == pytest.approx(plain["fid"], rel=1e-6)  # an identity decoder changes no sample


# ------------------------------------------------------------------------------------------ speed options


def test_speed_options_are_checked_recorded_and_keep_the_numbers(cache: Path, tmp_path: Path) -> None:
    from trilemma_bench.benchmark.harness import run_bench
    from trilemma_bench.benchmark.speed import ChannelsLast
    from trilemma_bench.nets import UNet

    with pytest.raises(ValueError, match="--cuda-graphs needs a CUDA device"):
        run_bench(bench_args(tmp_path, cuda_graphs=True, compile=True))
    net = UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0).eval()
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([1, 5, 9, 100])
    with torch.no_grad():
        plain = net(x, t)
        torch.testing.assert_close(ChannelsLast(net)(x, t), plain, rtol=1e-5, atol=1e-5)

    row = run_bench(bench_args(tmp_path, nfe=[2], channels_last=True))[0]
    base = run_bench(bench_args(tmp_path, nfe=[2]))[0]
    assert row["channels_last"] and not base["channels_last"]
    assert len(read_results(tmp_path).query("method != 'real'")) == 2  # two timing conditions, two cells
    assert row["fid"] == pytest.approx(base["fid"], rel=1e-5)
    assert row["warmup_seconds"] > 0


def test_set_columns_writes_only_the_rows_that_match(tmp_path: Path) -> None:
    from trilemma_bench.benchmark.results import set_columns

    upsert_row(tmp_path, _row(seed=0))
    upsert_row(tmp_path, _row(seed=1))
    upsert_row(tmp_path, _row(seed=0, method="ddpm-fixedsmall"))
    assert set_columns(tmp_path, {"method": "ddim"}, {"bpd": 1.25, "bpd_split": "test"}) == 2
    assert set_columns(tmp_path, {"method": "heun"}, {"bpd": 9.0}) == 0
    table = read_results(tmp_path)
    assert table.loc[table["method"] == "ddim", "bpd"].tolist() == [1.25, 1.25]
    assert table.loc[table["method"] != "ddim", "bpd"].isna().all()


def test_the_printed_summary_carries_mode_kl_and_the_floor_at_the_runs_sample_size() -> None:
    from types import SimpleNamespace

    from trilemma_bench.benchmark.harness import summary_table

    cfg = SimpleNamespace(method=SimpleNamespace(name="ddgan"), preset=SimpleNamespace(dataset="stacked-mnist",
                          name="stacked"), device="cpu", dtype="float32")
    row = {"nfe": 4, "seed": 0, "ms_per_image": 1.0, "fid": 3.0, "precision": 0.9, "recall": 0.8, "coverage": 0.7,
           "modes": 990.0, "modes_total": 1000, "mode_kl": 0.25, "num_samples": 26_000}
    table = summary_table([row], cfg)
    assert [c.header for c in table.columns][-2:] == ["modes", "mode KL"]
    assert table.caption.startswith("Mode floor: 26,000 draws") and "of 1000 modes" in table.caption
    assert summary_table([{**row, "modes": math.nan}], cfg).caption is None


def test_retime_times_every_row_again_in_one_round_robin_run(cache: Path, tmp_path: Path) -> None:
    """Only the timing columns change; every row gets the one run's id; a row of another model is skipped."""
    from trilemma_bench.benchmark.harness import run_bench
    from trilemma_bench.benchmark.retime import retime

    run_bench(bench_args(tmp_path, seeds=[0, 1]))
    before = read_results(tmp_path)
    assert before.loc[before["method"] != "real", "timing_run"].str.startswith("bench-").all()
    foreign = (before["method"] != "real") & (before["seed"] == 1) & (before["nfe"] == 5)
    upsert_row(tmp_path, {**before[foreign].iloc[0].to_dict(), "checkpoint": "ddpm-smoke-0000000000"})
    run, done, skipped = retime(tmp_path, "smoke", rounds=2)
    assert done == 4 and len(skipped) == 1 and "ddpm-smoke-0000000000" in skipped[0]
    after = read_results(tmp_path)
    timed = after[(after["method"] != "real") & (after["checkpoint"] != "ddpm-smoke-0000000000")]
    assert set(timed["timing_run"]) == {run.id} and run.id.startswith("retime-")
    assert set(timed["timing_order"]) == {"round-robin"} and (timed["timing_repeats"] == 2).all()
    assert (timed["ms_per_image"] > 0).all() and timed["timing_load_before"].notna().all()
    old = before.set_index(["method", "nfe", "seed", "checkpoint"])
    new = timed.set_index(["method", "nfe", "seed", "checkpoint"])
    for col in ("fid", "coverage", "recall", "grid"):  # the samples are not drawn again for the table
        assert new[col].equals(old.loc[new.index, col]), col
    with pytest.raises(ValueError, match="no smoke rows of nope"):
        retime(tmp_path, "smoke", methods=["nope"])


def test_the_python_api_returns_the_rows_the_command_line_writes(cache: Path, tmp_path: Path) -> None:
    import trilemma_bench as tb

    rows = tb.bench("ddim", preset="smoke", steps=STEPS, nfe=[2, 5], num_samples=64, batch_size=32, threads=1,
                    device="cpu", results=tmp_path)
    assert list(rows["nfe"]) == [2, 5] and rows["fid"].notna().all()
    table = read_results(tmp_path)
    written = table[table["method"] == "ddim"].sort_values("nfe")
    assert written["fid"].tolist() == pytest.approx(rows["fid"].tolist(), rel=1e-12)
    with pytest.raises(ValueError, match="unknown method"):
        tb.bench("nope", preset="smoke")
    with pytest.raises(TypeError):
        tb.bench("ddim", nfes=[2])  # a misspelt option is refused, not ignored


def test_benches_joining_a_named_timing_run_share_its_id() -> None:
    """``bench(..., timing_run=name)`` in one process: every bench joins the run started by the first, so a script's
    benches share one time axis; another name is another run."""
    from trilemma_bench.benchmark.timing_run import TimingRun

    first, again = TimingRun.shared("study-a"), TimingRun.shared("study-a")
    assert first is again and first.id.startswith("study-a-") and first.order == "sequential"
    assert TimingRun.shared("study-b").id.split("-", 2)[:2] == ["study", "b"]
