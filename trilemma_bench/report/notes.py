"""What a reader needs to trust a section's numbers, said in words: how ms/image was measured and under
which condition, against which real data and features quality was scored, which real rows are floors."""

from __future__ import annotations

import math

import pandas as pd

from ..metrics import floor_text
from .setting import QUALITY, UNKNOWN, setting_label
from .tables import is_matched

INTERVALS = (
    "± is the half-width of the 95% Student-t interval of the mean over seeds, t(0.975, n−1)·s/√n with s the "
    "sample std of the n seeds' values; a cell with one seed shows its value and no interval. Same seed = same "
    "initial noise in every method and NFE, so differences are tested paired by seed."
)


def _values(rows: pd.DataFrame, col: str) -> str:
    """The distinct values of a column as text ('?' when the table lacks it)."""
    if col not in rows or rows[col].isna().all():
        return "?"
    vals = []
    for v in sorted(rows[col].dropna().unique(), key=str):
        vals.append(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return ", ".join(vals)


def _span(rows: pd.DataFrame, col: str) -> str:
    if col not in rows or rows[col].isna().all():
        return "?"
    v = pd.to_numeric(rows[col], errors="coerce").dropna()
    lo, hi = int(v.min()), int(v.max())
    return str(lo) if lo == hi else f"{lo}–{hi}"


def timing_note(cells: pd.DataFrame, key: dict[str, str]) -> list[str]:
    threads = key["threads"]
    statistic = _values(cells, "timing_statistic")
    statistic = ("median (the statistic is not recorded in these older rows; their code took the median)"
                 if statistic == "?" else statistic)
    notes = [
        f"Timing condition: {key['device_name']} ({key['device']}), "
        + ("threads not recorded in this table (older rows): unknown" if threads == UNKNOWN
           else f"{threads} thread{'' if threads == '1' else 's'}")
        + f", {key['dtype']}" + (", compiled" if key["compiled"] == "True" else "")
        + f". ms/image is the {statistic} of {_span(cells, 'timing_repeats')} timed batches of "
        f"{_span(cells, 'batch_size')} images per cell (wall clock, warm-up excluded); its interval is over the "
        "seeds' figures. Timings are compared within this section only."
    ]
    if key["device"] == "cpu":
        at = "" if threads in (UNKNOWN, "1") else f" (at {threads} threads up to {threads}× the wall time)"
        notes.append(f"CPU ms/image sums the CPU time of every thread{at}: it is not a wall time.")
    else:
        notes.append(
            f"GPU math: TF32 matmul {_values(cells, 'tf32_matmul')}, TF32 cuDNN {_values(cells, 'tf32_cudnn')}; "
            f"% of peak against the {_values(cells, 'peak_precision')} peak."
        )
    if "decoder_ms_per_image" in cells and cells["decoder_ms_per_image"].notna().any():
        notes.append("Latent methods: ms/image is sampler plus decoder, each also shown apart.")
    return notes


def quality_note(cells: pd.DataFrame, key: dict[str, str]) -> list[str]:
    split, n = key["reference_split"], key["num_samples"]
    levels, fake = _values(cells, "quantized_levels"), _values(cells, "prdc_fake_n")
    acc = pd.to_numeric(cells.get("extractor_accuracy", pd.Series(dtype=float)), errors="coerce").dropna()
    notes = [
        f"Quality: {n} samples per cell" + (f", quantized to {levels} levels before any feature"
                                            if levels != "?" else "") + "; "
        f"FID and KID against the {split} split ({_values(cells, 'reference_n')} images) in "
        f"{key['feature_extractor']} features" + (f" (classifier test accuracy {acc.iloc[-1]:.4f})" if len(acc) else "")
        + f"; precision/recall/density/coverage with {_values(cells, 'prdc_real_n')} real"
        + ("" if fake == "?" else f" and {fake} generated") + f" samples, k = {_values(cells, 'prdc_k')}."
    ]
    if split == "train":
        notes.append(
            f"FID here is against the training split: the held-out split has fewer than the {n} images scored, "
            "so a held-out FID is not estimable at this sample size, and a model that returned its training "
            "images would score well. The copy share (samples closer to their nearest training image than that "
            "image is to its own nearest neighbour) is the check on memorisation."
        )
    if "copy_share" in cells and cells["copy_share"].notna().any():
        notes.append("Copy share and Vendi need no reference split; the real data's own figures are in the "
                     "real-data lines.")
    notes.append(
        f"Data: {_values(cells, 'dataset_source')}; checkpoint {_values(cells, 'checkpoint')}; torch "
        f"{_values(cells, 'torch_version')}; commit {_values(cells, 'git_commit')}."
    )
    return notes


def real_note(real_summary: pd.DataFrame, n: str) -> list[str]:
    """Which real-data lines are floors (matched n) and which are shown only for scale."""
    if real_summary.empty:
        return [(f"No real-data rows in this table for this setting: no floor is drawn (a bench run at n={n} "
                "writes them).")]
    notes = []
    for line in real_summary.to_dict("records"):
        real_n = line.get("real_n")
        real_n = int(real_n) if isinstance(real_n, (int, float)) and math.isfinite(real_n) else "?"
        if is_matched(line):
            notes.append(f"Real data '{line['sampler']}' (n={real_n}, as many as the cells): its FID is the floor a "
                         "perfect model gets at this sample size, drawn on the FID plots; differences below it "
                         "are not claims.")
        else:
            notes.append(f"Real data '{line['sampler']}' (n={real_n}, fewer than the cells' {n}): FID's bias "
                         "grows as n shrinks, so it is not a floor for the cells; shown in the table only.")
    return notes


def mixed_conditions(rows: pd.DataFrame, setting: list[str]) -> list[str]:
    """Header notes where one quality scope was timed under several conditions, and cells split by it."""
    notes = []
    timing = [c for c in setting if c not in QUALITY]
    for scope, part in rows.groupby(QUALITY, sort=True):
        conditions = part[timing].drop_duplicates()
        if len(conditions) < 2:
            continue
        labels = [setting_label({**dict(zip(QUALITY, scope)), **c}) for c in conditions.to_dict("records")]
        notes.append(f"{scope[0]} (preset {scope[1]}, n={scope[2]}) was timed under {len(conditions)} conditions; "
                     "each is a section of its own and timings are never averaged across them: "
                     + "; ".join(labels) + ".")
        for (method, nfe), cell in part.groupby(["method", "nfe"]):
            split = cell.groupby(timing)["seed"].apply(lambda s: ",".join(map(str, sorted(s))))
            if len(split) > 1:
                notes.append(f"  {method}@{nfe}: its seeds were timed apart (seeds " + " | ".join(split) + "), "
                             "so each section averages fewer seeds.")
    return notes


def modes_note(cells: pd.DataFrame, key: dict[str, str]) -> list[str]:
    """Where the modes are known (toy2d, StackedMNIST): the perfect model's score at the cells' sample size,
    since even a perfect model's KL is not 0 and its mode count may fall short of all modes at finite n."""
    if "modes_total" not in cells:
        return []
    totals = pd.to_numeric(cells["modes_total"], errors="coerce").dropna().unique()
    n = pd.to_numeric(pd.Series([key.get("num_samples")]), errors="coerce").iloc[0]
    if len(totals) != 1 or not math.isfinite(n):
        return []
    return [floor_text(int(n), int(totals[0]))]
