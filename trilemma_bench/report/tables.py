"""Summary tables: per setting and cell (method, sampler, NFE), the mean over seeds of each metric with
its 95% Student-t interval and the number of seeds; real-data rows as the floor of each setting."""

from __future__ import annotations

import math

import pandas as pd

from .setting import REAL
from .stats import t_half_width

CELL_KEYS = ["method", "sampler", "nfe"]
# column -> (table title, format, True when higher is better / False lower / None neither)
METRICS: dict[str, tuple[str, str, bool | None]] = {
    "ms_per_image": ("ms/image", "{:.3g}", False),
    "cpu_ms_per_image": ("CPU ms/image", "{:.3g}", False),
    "sampler_ms_per_image": ("sampler ms/image", "{:.3g}", False),
    "decoder_ms_per_image": ("decoder ms/image", "{:.3g}", False),
    "fid": ("FID", "{:.3g}", False),
    "kid": ("KID", "{:.3g}", False),
    "precision": ("precision", "{:.3f}", True),
    "recall": ("recall", "{:.3f}", True),
    "density": ("density", "{:.3f}", True),
    "coverage": ("coverage", "{:.3f}", True),
    "vendi": ("Vendi", "{:.3g}", True),
    "copy_share": ("copy share", "{:.3f}", False),
    "modes": ("modes", "{:.1f}", True),
    "high_quality": ("high-quality share", "{:.3f}", True),
    "mode_kl": ("mode KL", "{:.3f}", False),
    "bpd": ("bits/dim", "{:.3f}", False),
    "recon_fid": ("recon FID (ceiling)", "{:.3g}", False),
}
HIDDEN = {"density"}  # in summary.csv, not in the page's tables (too wide already)


def _seeds(values: pd.Series) -> str:
    return ",".join(str(int(s)) for s in sorted(values.dropna().unique()))


def summarize(rows: pd.DataFrame, setting: list[str]) -> pd.DataFrame:
    """One line per (setting, method, sampler, nfe): ``n_seeds``, ``seeds``, and per metric present
    ``<m>_mean``, ``<m>_std`` (sample std over seeds), ``<m>_ci95`` (half-width of the 95% t interval,
    NaN for one seed) and ``<m>_n`` (seeds with a value)."""
    group = [*setting, *CELL_KEYS]
    rows = rows.assign(nfe=pd.to_numeric(rows["nfe"], errors="coerce"))
    present = [m for m in METRICS if m in rows]
    numeric = rows[present].apply(pd.to_numeric, errors="coerce")
    grouped = numeric.groupby([rows[c] for c in group], dropna=False)
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    out = pd.DataFrame(index=mean.index)
    seeds = rows.groupby(group, dropna=False)["seed"]
    out["n_seeds"] = seeds.nunique()
    out["seeds"] = seeds.agg(_seeds)
    for extra in ("real_n", "matched_n", "bpd_sem"):
        if extra in rows:
            out[extra] = rows.groupby(group, dropna=False)[extra].first()
    for m in present:
        out[f"{m}_mean"] = mean[m]
        out[f"{m}_std"] = std[m]
        out[f"{m}_ci95"] = [t_half_width(s, n) for s, n in zip(std[m], count[m])]
        out[f"{m}_n"] = count[m]
    out = out.reset_index()
    is_real = out["method"] == REAL
    return (
        out.assign(_real=is_real)
        .sort_values(["_real", *group], kind="stable")
        .drop(columns="_real")
        .reset_index(drop=True)
    )


def fmt(mean: float, half: float, pattern: str) -> str:
    """'mean ± half' (the 95% interval's half-width, two significant digits, the mean to the same
    decimal place), or the mean alone in ``pattern`` when there is no interval."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if math.isfinite(mean) and abs(mean) < 1e-12:  # rounding noise of a zero (3.4e-16) prints as 0
        mean = 0.0
    if half is None or not math.isfinite(half):
        return pattern.format(mean)
    if half == 0:
        return f"{pattern.format(mean)} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(abs(half))))
    text = f"{mean:.{decimals}f}"
    return f"{text.lstrip('-') if float(text) == 0 else text} ± {half:.{decimals}f}"


def bpd_text(line) -> str:
    """Bits/dim with the standard error over its test images (the seeds share one figure: '± 0' would mislead)."""
    mean, sem = line.get("bpd_mean", math.nan), line.get("bpd_sem", math.nan)
    if mean is None or not math.isfinite(mean):
        return "–"
    if sem is None or not isinstance(sem, (int, float)) or not math.isfinite(sem) or sem <= 0:
        half = line.get("bpd_ci95", math.nan)  # no standard error recorded: the seeds' interval, where they differ
        return fmt(mean, half if isinstance(half, float) and half > 0 else math.nan, "{:.3f}")
    return f"{mean:.3f} (s.e. {sem:.3f})"


def is_matched(line) -> bool:
    """A real-data line scored at the cells' sample size (its FID is the floor at that n)."""
    return str(line.get("matched_n", "")).strip() in ("True", "1", "1.0")


def _real_label(line) -> tuple[str, str]:
    n = line.get("real_n")
    n_text = f"n={int(n)}" if isinstance(n, (int, float)) and math.isfinite(n) else "n=?"
    if is_matched(line):
        return "real data (floor)", f"{line['sampler']}, {n_text} as the cells"
    return "real data (not matched)", f"{line['sampler']}, {n_text} (fewer than the cells)"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One setting's summary as text: 'mean ± 95% half-width', the seeds, and only metric columns that
    hold a number; real-data lines last, labelled."""
    records = []
    for line in summary.to_dict("records"):
        one = int(line["n_seeds"]) == 1
        seeds = f"{line['n_seeds']} (no interval)" if one else str(line["n_seeds"])
        if line["method"] == REAL:
            method, sampler = _real_label(line)
            record = {"method": method, "sampler": sampler, "NFE": "–", "seeds": seeds}
        else:
            record = {"method": line["method"], "sampler": line["sampler"], "NFE": int(line["nfe"]),
                      "seeds": seeds}
        for metric, (title, pattern, _) in METRICS.items():
            if metric in HIDDEN or f"{metric}_mean" not in summary or summary[f"{metric}_mean"].isna().all():
                continue
            if metric == "bpd":  # a property of the checkpoint, the same in every seed's row: its own standard error
                record[title] = bpd_text(line)
                continue
            record[title] = fmt(line[f"{metric}_mean"], line[f"{metric}_ci95"], pattern)
        records.append(record)
    return pd.DataFrame.from_records(records)


def markdown(table: pd.DataFrame, left: int = 2) -> str:
    """A GitHub Markdown table (no tabulate dependency); the first ``left`` columns left-aligned."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" if i < left else "---:" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])
