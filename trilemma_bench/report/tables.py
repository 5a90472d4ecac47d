"""Summary tables: per setting, method and NFE, the mean and spread over seeds of each metric."""

from __future__ import annotations

import math

import pandas as pd

# A setting is what makes numbers comparable on one plot: same data, network size and hardware.
SETTING = ["dataset", "preset", "device", "dtype", "compiled"]
CELL = [*SETTING, "method", "sampler", "nfe"]
METRICS = [
    "ms_per_image",
    "cpu_ms_per_image",
    "fid",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "modes",
    "mode_kl",
]
SHOWN = {  # column title and format of the Markdown / HTML tables
    "ms_per_image": ("ms/image", "{:.3g}"),
    "cpu_ms_per_image": ("CPU ms/image", "{:.3g}"),
    "fid": ("FID", "{:.3g}"),
    "precision": ("precision", "{:.3f}"),
    "recall": ("recall", "{:.3f}"),
    "coverage": ("coverage", "{:.3f}"),
    "modes": ("modes", "{:.1f}"),
    "mode_kl": ("mode KL", "{:.3f}"),
}


def current_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows of the newest checkpoint of each (setting, model); also how many older rows were set aside.

    A retrained model gives new rows beside the old ones (the checkpoint is part of a row's key);
    averaging the two would mix two models.
    """
    if rows.empty:
        return rows, 0
    group = [*SETTING, "model"]
    stamped = rows.assign(_t=pd.to_datetime(rows["timestamp"], utc=True, errors="coerce"))
    newest = (
        stamped.sort_values("_t", kind="stable")
        .groupby(group, dropna=False)
        .tail(1)[[*group, "checkpoint"]]
        .rename(columns={"checkpoint": "_newest"})
    )
    merged = stamped.merge(newest, on=group, how="left")
    keep = (merged["checkpoint"] == merged["_newest"]).to_numpy()
    return rows[keep].reset_index(drop=True), int((~keep).sum())


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (setting, method, sampler, nfe): ``n_seeds`` and ``<metric>_mean`` / ``<metric>_std``
    (sample standard deviation over seeds, NaN for one seed)."""
    present = [m for m in METRICS if m in rows]
    grouped = rows.groupby(CELL, dropna=False)[present]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    out.insert(0, "n_seeds", rows.groupby(CELL, dropna=False)["seed"].nunique())
    out = out.reset_index().sort_values(CELL, kind="stable").reset_index(drop=True)
    ordered = [*CELL, "n_seeds", *(f"{m}_{s}" for m in present for s in ("mean", "std"))]
    return out[ordered]


def fmt(mean: float, std: float, pattern: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = pattern.format(mean)
    return text if std is None or math.isnan(std) else f"{text} ± {pattern.format(std)}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary of one setting as strings, 'mean ± std', columns only where there is a number."""
    table = pd.DataFrame(
        {
            "method": summary["method"],
            "sampler": summary["sampler"],
            "NFE": summary["nfe"],
            "seeds": summary["n_seeds"],
        }
    )
    for metric, (title, pattern) in SHOWN.items():
        if f"{metric}_mean" in summary and summary[f"{metric}_mean"].notna().any():
            table[title] = [
                fmt(m, s, pattern) for m, s in zip(summary[f"{metric}_mean"], summary[f"{metric}_std"])
            ]
    return table.reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(map(str, r)) + " |" for r in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def setting_label(key: tuple) -> str:
    dataset, preset, device, dtype, compiled = key
    return f"{dataset} · preset {preset} · {device} · {dtype}" + (
        " · compiled" if str(compiled) == "True" else ""
    )


def setting_slug(key: tuple) -> str:
    dataset, preset, device, dtype, compiled = key
    return (
        f"{dataset}-{preset}-{device}"
        + ("-bf16" if dtype == "bfloat16" else "")
        + ("-compiled" if str(compiled) == "True" else "")
    )
