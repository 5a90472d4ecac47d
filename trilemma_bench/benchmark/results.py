"""The tidy results table: one CSV row per benchmark cell, written as soon as the cell is done.

A cell is identified by :data:`KEY`: what was sampled (dataset, preset, method, sampler, NFE, seed,
checkpoint) and how it was run where that changes the numbers or the speed (device type, dtype, compiled,
channels_last, CUDA graphs).
Re-running a cell replaces its row. Everything else in a row is a measurement or the environment.

Every write reads the table, replaces or appends the row, and writes the whole table to a temporary
file that then replaces the old one (:func:`~trilemma_bench.paths.atomic_path`): a bench killed at any point leaves
the previous complete table, never half a row. A lock on the folder serialises writers, so two benches
sharing a results folder (``make bench METHOD=ddim`` beside ``METHOD=ddpm``) cannot lose each
other's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..paths import atomic_path

RESULTS_FILE = "results.csv"

KEY: tuple[str, ...] = (
    "dataset",
    "preset",
    "method",
    "sampler",
    "nfe",
    "seed",
    "checkpoint",
    "device",
    "dtype",
    "compiled",
    "channels_last",
    "cuda_graphs",
)

# Key columns added after tables were first written: rows and tables without them mean the default.
KEY_DEFAULTS: dict[str, Any] = {"channels_last": False, "cuda_graphs": False}

# Column order of the table; a row may carry more (appended after these), and a missing one is left empty.
COLUMNS: tuple[str, ...] = (
    *KEY,
    "model",
    "nfe_requested",
    "num_samples",
    "real_n",
    "matched_n",
    "batch_size",
    # speed (timing.py): ms_per_image is the median over timed batches; ms_per_nfe one network evaluation
    # of the whole fixed batch; cpu_ms_per_image sums every thread's CPU time
    "ms_per_image",
    "ms_per_nfe",
    "images_per_s",
    "cpu_ms_per_image",
    "timing_statistic",
    "timing_repeats",
    "warmup_seconds",
    "ms_per_batch_min",
    "ms_per_batch_max",
    "peak_mem_mb",
    "peak_mem_kind",
    # the timing run (timing_run.py): only cells of one run are compared on a time axis
    "timing_run",
    "timing_host",
    "timing_order",
    "timing_load_before",
    "timing_load_after",
    "gflops_per_image",
    "achieved_tflops",
    "pct_of_peak",
    "peak_precision",
    "tf32_matmul",
    "tf32_cudnn",
    # quality, diversity and memorisation (metrics/), of samples quantized to the data's grid
    "fid",
    "kid",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "prdc_k",
    "prdc_real_n",
    "prdc_fake_n",
    "vendi",
    "copy_share",
    "modes",
    "modes_total",
    "high_quality",
    "mode_kl",
    # likelihood (likelihood.py), for methods whose model has a bound: a property of the checkpoint, the same in
    # every row of it; mean and standard error over bpd_n images of bpd_split
    "bpd",
    "bpd_sem",
    "bpd_n",
    "bpd_split",
    "quantized_levels",
    "feature_extractor",
    "extractor_accuracy",
    "reference_split",
    "reference_n",
    # environment
    "device_name",
    "threads",
    "torch_version",
    "git_commit",
    "timestamp",
    "dataset_source",
    "checkpoint_path",
    "weights_source",  # shipped (the repository's models/), cached, or trained by this run
    "train_seed",  # which training run of the model (0: the shipped one; others measure training variance)
    # training compute of the weights: steps (a GAN's iterations), wall and CPU seconds (all threads) under
    # train_threads, and GFLOPs counted as train_passes x the network's forward FLOPs x batch x steps
    "train_steps",
    "train_gflops",
    "train_wall_seconds",
    "train_cpu_seconds",
    "train_threads",
    "grid",
    "sample_seconds",
    "metric_seconds",
)


TEXT_COLUMNS = ("git_commit",)


def results_path(results_dir: Path | str) -> Path:
    return Path(results_dir) / RESULTS_FILE


def read_results(results_dir: Path | str) -> pd.DataFrame:
    """The table as written (empty, with the standard columns, when there is none yet)."""
    path = results_path(results_dir)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    # A short SHA of digits only ("1234567") or of digits around one e ("4e10123") would otherwise be read as a
    # number, or as inf.
    frame = pd.read_csv(path, dtype={col: str for col in TEXT_COLUMNS})
    for col, default in KEY_DEFAULTS.items():
        if col not in frame:
            frame[col] = default
    return frame


def _key_strings(frame: pd.DataFrame) -> pd.Series:
    # Compare keys as text: a CSV round trip turns 10 into 10 and True into True, but a
    # fresh row may hold numpy scalars; str() of both agrees.
    return frame[list(KEY)].astype(str).agg("\x1f".join, axis=1)


def row_key(row: Mapping[str, Any]) -> str:
    row = {**KEY_DEFAULTS, **row}
    missing = [k for k in KEY if k not in row]
    if missing:
        raise ValueError(f"a results row needs the key columns {missing}")
    return "\x1f".join(str(row[k]) for k in KEY)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # The lock is taken on the folder, not on a file beside the table: the table itself is replaced on
    # every write (a lock on it would be on the old inode), and a lock file would litter results/.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    # fsync before the rename: the table is the bench's record, and after a power cut the rename could
    # otherwise survive while the new file's data did not.
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        frame.to_csv(f, index=False)
        f.flush()
        os.fsync(f.fileno())


def upsert_row(results_dir: Path | str, row: Mapping[str, Any]) -> Path:
    """Add ``row`` to the table, replacing the row of the same cell (:data:`KEY`) if there is one."""
    path = results_path(results_dir)
    key = row_key(row)
    with _locked(path):
        table = read_results(results_dir)
        if len(table):
            table = table[_key_strings(table) != key]
        new = pd.DataFrame([{**KEY_DEFAULTS, **row}])
        table = new if table.empty else pd.concat([table, new], ignore_index=True)
        extra = [c for c in table.columns if c not in COLUMNS]
        table = table.reindex(columns=[*COLUMNS, *extra])
        _write_atomic(table, path)
    return path


def set_columns(results_dir: Path | str, where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """Write ``values`` into every row whose columns equal ``where`` (e.g. one method's checkpoint); returns how
    many rows changed. Lets a figure of the model, taken later, join the rows benched from it."""
    path = results_path(results_dir)
    with _locked(path):
        table = read_results(results_dir)
        if table.empty:
            return 0
        mask = pd.Series(True, index=table.index)
        for col, want in where.items():
            mask &= table[col].astype(str) == str(want) if col in table else False
        for col, value in values.items():
            if col not in table:
                table[col] = pd.NA
            table[col] = table[col].astype(object)
            table.loc[mask, col] = value
        extra = [c for c in table.columns if c not in COLUMNS]
        table = table.reindex(columns=[*COLUMNS, *extra])
        _write_atomic(table, path)
        return int(mask.sum())


SCHEDULES = "schedules"  # <results>/schedules/<checkpoint>.csv: learned noise schedules, drawn by the report


def write_schedule(results_dir: Path | str, checkpoint: str, table: Mapping[str, list[float]]) -> Path:
    path = Path(results_dir) / SCHEDULES / f"{checkpoint}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(dict(table)).to_csv(path, index=False)
    return path
