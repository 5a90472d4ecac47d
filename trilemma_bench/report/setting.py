"""What makes two rows comparable: the setting a table and its plots share.

Quality figures compare only on the same data, sample size, features and reference split (FID at
n = 500 and at n = 2,000 differ by its bias alone); timings compare only under one condition: device,
its name, CPU threads, dtype, compilation and the other speed switches. The report groups rows by all of
these, so a table never averages timings taken under different conditions: cells timed at 1 and at 2
threads are shown in two sections. Real-data rows carry no timing; they are shown in every section
with their quality scope.

A setting column that a table lacks (older tables had no ``threads``), or an empty one, reads "unknown"
and the report says so.
"""

from __future__ import annotations

import hashlib
import math
import re

import pandas as pd

UNKNOWN = "unknown"
QUALITY = ["dataset", "preset", "num_samples", "feature_extractor", "reference_split"]
TIMING = ["device", "device_name", "threads", "dtype", "compiled"]
# Speed switches newer tables record; part of the setting where the table has them.
# The timing run (bench/timing_run.py) too: cells timed in different processes or on different days are never
# drawn on one ms axis, whatever their device and threads say.
OPTIONAL_TIMING = ["channels_last", "cuda_graphs", "world_size", "timing_run"]
# ... and what rows written before a switch existed ran with (a missing value there means the default).
OPTIONAL_DEFAULTS = {"channels_last": "False", "cuda_graphs": "False", "world_size": "1",
                     "timing_run": "not recorded"}
REAL = "real"  # the method name of real-data rows
# Rows of one model are the same model when they share these and the checkpoint.
# A second training of a model (train_seed > 0) is another model, not a newer one: both are current.
CHECKPOINT_SCOPE = ["dataset", "preset", "device", "device_name", "model", "train_seed"]


def _text(value) -> str:
    """A setting value as text: 2.0 -> "2", True -> "True", missing -> "unknown"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text if text and text.lower() != "nan" else UNKNOWN


def normalize(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Rows with every setting column present as text; the setting's columns; the columns that were
    missing from the table (filled with "unknown")."""
    rows = rows.copy()
    optional = [c for c in OPTIONAL_TIMING if c in rows]
    columns = [*QUALITY, *TIMING, *optional]
    missing = [c for c in columns if c not in rows]
    for col in columns:
        rows[col] = rows[col].map(_text) if col in rows else UNKNOWN
        if col in OPTIONAL_DEFAULTS:
            rows[col] = rows[col].replace(UNKNOWN, OPTIONAL_DEFAULTS[col])
    return rows, columns, missing


def current_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows of the newest checkpoint of each model; also how many older rows were set aside.

    A retrained model gives new rows beside the old ones (the checkpoint is part of a row's key);
    averaging the two would mix two models.
    """
    if rows.empty:
        return rows, 0
    group = [c for c in CHECKPOINT_SCOPE if c in rows]
    stamped = rows.assign(_t=pd.to_datetime(rows["timestamp"], utc=True, errors="coerce"))
    if "train_seed" in stamped:
        stamped["train_seed"] = pd.to_numeric(stamped["train_seed"], errors="coerce").fillna(0)
    newest = (
        stamped.sort_values("_t", kind="stable")
        .groupby(group, dropna=False)
        .tail(1)[[*group, "checkpoint"]]
        .rename(columns={"checkpoint": "_newest"})
    )
    merged = stamped.merge(newest, on=group, how="left")
    keep = (merged["checkpoint"] == merged["_newest"]).to_numpy()
    return rows[keep].reset_index(drop=True), int((~keep).sum())


class MixedTimingRuns(ValueError):
    """Cells of several timing runs were asked to be ranked on one time axis."""


def check_one_timing_run(cells: pd.DataFrame) -> None:
    """Refuse cells of more than one timing run: their ms/image were measured under different conditions (another
    process, another day, other neighbours), so ranking them against each other would rank the days."""
    if "timing_run" not in cells:
        return
    runs = sorted({_text(r) for r in cells.loc[cells["method"] != REAL, "timing_run"]})
    if len(runs) > 1:
        raise MixedTimingRuns(f"cells of {len(runs)} timing runs ({', '.join(runs)}) cannot be ranked on one ms axis: "
                              "re-time them together with `trilemma-bench retime`")


def training_label(method: str, train_seed: int) -> str:
    """A cell of another training run of the same model is shown apart: ``ddim (training 1)``."""
    return method if not train_seed else f"{method} (training {train_seed})"


def label_trainings(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a model's other training runs (train_seed > 0) get their own method label, so one cell never
    averages two trainings as if they were sampling seeds of one."""
    if "train_seed" not in rows:
        return rows
    seeds = pd.to_numeric(rows["train_seed"], errors="coerce").fillna(0).astype(int)
    other = (seeds > 0) & (rows["method"] != REAL)
    if not other.any():
        return rows
    rows = rows.copy()
    rows.loc[other, "method"] = [training_label(m, s) for m, s in zip(rows.loc[other, "method"], seeds[other])]
    return rows


def real_rows_for(real: pd.DataFrame, key: dict[str, str]) -> pd.DataFrame:
    """The real-data rows of a setting's quality scope, one per (sampler, seed): the newest, wherever timed."""
    if real.empty:
        return real
    match = pd.Series(True, index=real.index)
    for col in QUALITY:
        match &= real[col] == key[col]
    part = real[match]
    stamped = part.assign(_t=pd.to_datetime(part["timestamp"], utc=True, errors="coerce"))
    newest = stamped.sort_values("_t", kind="stable").groupby(["sampler", "seed"]).tail(1)
    return newest.drop(columns="_t")


def _plural(n: str, word: str) -> str:
    return f"{n} {word}" + ("" if n == "1" else "s")


def setting_label(key: dict[str, str], sep: str = " · ") -> str:
    """A section title naming every part of the setting: the data and its scoring, ``sep``, then the timing
    condition (pass sep="\n" for two lines)."""
    threads = "threads unknown" if key["threads"] == UNKNOWN else _plural(key["threads"], "thread")
    device = key["device_name"] if key["device_name"] != UNKNOWN else key["device"]
    flags = [f for f in ("compiled", "channels_last", "cuda_graphs") if key.get(f) == "True"]
    if key.get("world_size", "1") != "1":
        flags.append(f"{key['world_size']} processes")
    scope = [key["dataset"], f"preset {key['preset']}", f"n={key['num_samples']}",
             f"{key['feature_extractor']} features vs {key['reference_split']} split"]
    timing = [f"{device} ({key['device']}, {threads})", key["dtype"], *flags]
    if key.get("timing_run", "not recorded") != "not recorded":
        timing.append(f"timing run {key['timing_run']}")
    return " · ".join(scope) + sep + " · ".join(timing)


def setting_slug(key: dict[str, str]) -> str:
    """A file-name stem unique to the setting: readable parts, then a short hash of all of it."""
    digest = hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:6]
    threads = f"{key['threads']}t" if key["threads"] != UNKNOWN else "t-unknown"
    stem = f"{key['dataset']}-{key['preset']}-{key['device']}-{threads}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) + f"-{digest}"
