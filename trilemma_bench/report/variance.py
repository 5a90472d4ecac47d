"""Training variance: the same method on two training runs of its model, cell by cell.

The intervals of a cell cover sampling seeds of one checkpoint; a second training (``--train-seed 1``) shows
how much of a difference between methods could be the luck of one training. Per NFE both trainings' means,
their paired difference (the same sampling seeds: the same initial noise), and whether it is significant after
Holm's correction over the table's tests. A difference between methods smaller than the training difference
is not the methods'.

The pooled interval treats the training run as the unit (a nested design: runs, then sampling seeds within a
run, the same seeds in each): each run's mean over its seeds is one observation, so the interval is the t interval
of k run means with k - 1 degrees of freedom. Its width carries both levels, the seed noise through each run's
mean. With two runs t_{0.975, 1} = 12.7: the honest width of what two trainings can say.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .front import per_seed
from .setting import REAL
from .stats import holm, paired_difference, significant_after, t_interval
from .tables import fmt

TRAINING = re.compile(r"^(?P<base>.+) \(training (?P<seed>\d+)\)$")


def training_pairs(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """(method of training 0, the same method of another training) for every pair present."""
    methods = set(summary.loc[summary["method"] != REAL, "method"])
    pairs = []
    for m in sorted(methods):
        found = TRAINING.match(m)
        if found and found["base"] in methods:
            pairs.append((found["base"], m))
    return pairs


def variance_table(summary: pd.DataFrame, rows: pd.DataFrame, metrics=(("fid", "{:.3g}"), ("coverage", "{:.3f}"))
                   ) -> tuple[pd.DataFrame, int]:
    """One line per (pair, NFE) both trainings have: each training's mean ± interval and the paired difference
    per metric, verdicts after Holm over every test in the table; also the number of tests."""
    lines, tests = [], []
    for base, other in training_pairs(summary):
        a = summary[summary["method"] == base].set_index("nfe", drop=False)
        b = summary[summary["method"] == other].set_index("nfe", drop=False)
        for nfe in sorted(set(a.index) & set(b.index)):
            line = {"method": base, "training": other.removeprefix(base).strip(" ()"), "NFE": int(nfe)}
            for metric, pattern in metrics:
                if f"{metric}_mean" not in summary:
                    continue
                ra, rb = a.loc[nfe], b.loc[nfe]
                test = paired_difference(per_seed(rows, rb, metric), per_seed(rows, ra, metric))
                line[f"{metric}: training 0"] = fmt(ra[f"{metric}_mean"], ra[f"{metric}_ci95"], pattern)
                line[f"{metric}: other"] = fmt(rb[f"{metric}_mean"], rb[f"{metric}_ci95"], pattern)
                line[f"{metric}: other − 0 (paired)"] = fmt(test.mean, test.half, pattern)
                pooled = t_interval([ra[f"{metric}_mean"], rb[f"{metric}_mean"]])
                line[f"{metric}: pooled over 2 trainings"] = fmt(pooled.mean, pooled.half, pattern)
                tests.append((len(lines), metric, test))
            lines.append(line)
    adjusted = holm([t.p_value if t.significant is not None else math.nan for _, _, t in tests])
    for (i, metric, _), p in zip(tests, adjusted):
        verdict = significant_after(p)
        lines[i][f"{metric}: trainings differ (Holm)"] = "–" if verdict is None else ("yes" if verdict else "no")
    return pd.DataFrame.from_records(lines), int(np.isfinite(adjusted).sum())
