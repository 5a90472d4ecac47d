"""Solver and schedule, grouped apart: one line per (network, solver, NFE), one column per schedule, so a reader sees
whether a difference is the solver's or the schedule's. Rows come from the methods that are one walk (their declared
pair) and from ``bench --solver/--schedule`` (their ``sampler`` names the pair)."""

from __future__ import annotations

import re

import pandas as pd

from ..methods import METHODS
from .setting import REAL
from .tables import fmt

COMPOSED = re.compile(r"^solver-(?P<solver>.+)-schedule-(?P<schedule>.+)$")
TRAINING = re.compile(r" \(training \d+\)$")
MAX_NFE = 20  # the few-step regime, where the schedule matters; past it every pair meets near the floor


def pair_of(method: str, sampler: str) -> tuple[str, str, str] | None:
    """(network, solver, schedule) of a row, or None for samplers that are not one walk (ancestral, DDGAN)."""
    found = COMPOSED.match(str(sampler))
    if found:
        label = found["solver"].rpartition(":")[2].rpartition(".")[2]
        network = method[: method.rfind(f"{label}@")].rstrip("-") if f"{label}@" in method else method
        return network or "ddpm", found["solver"], found["schedule"]
    registered = METHODS.get(TRAINING.sub("", str(method)))
    if registered is None or not registered.solver:
        return None
    training = TRAINING.search(str(method))
    network = registered.spec_for(registered.default_nfe[0]).tag + (training.group(0) if training else "")
    return network, registered.solver, registered.schedule


def pairing_table(summary: pd.DataFrame, metric: str = "fid", pattern: str = "{:.3g}") -> pd.DataFrame:
    """Pivot of ``metric`` (mean ± 95% interval) by (network, solver, NFE) and schedule, NFE up to MAX_NFE; empty
    when no solver has been run on two schedules nor a schedule under two solvers (nothing to separate)."""
    if f"{metric}_mean" not in summary:
        return pd.DataFrame()
    lines = []
    for line in summary[summary["method"] != REAL].to_dict("records"):
        pair = pair_of(line["method"], line["sampler"])
        if pair is None or int(line["nfe"]) > MAX_NFE:
            continue
        network, solver, schedule = pair
        lines.append({"network": network, "solver": solver, "NFE": int(line["nfe"]), "schedule": schedule,
                      "value": fmt(line[f"{metric}_mean"], line[f"{metric}_ci95"], pattern)})
    if not lines:
        return pd.DataFrame()
    long = pd.DataFrame.from_records(lines)
    per_network = long.groupby("network")
    crossed = any(g.groupby("solver")["schedule"].nunique().max() > 1
                  or g.groupby("schedule")["solver"].nunique().max() > 1 for _, g in per_network)
    if not crossed:
        return pd.DataFrame()
    table = long.pivot_table(index=["network", "solver", "NFE"], columns="schedule", values="value",
                             aggfunc="first").fillna("–")
    return table.reset_index().rename_axis(columns=None)
