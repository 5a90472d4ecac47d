"""Multiplicity and timing runs in the report: Holm's correction against the step-down procedure as Holm (1979)
states it, a difference significant alone that becomes a tie among more tests, and cells of two timing runs that
the report refuses to rank on one ms axis."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trilemma_bench.benchmark.results import upsert_row
from trilemma_bench.report import load_sections, make_report
from trilemma_bench.report.setting import MixedTimingRuns, check_one_timing_run
from trilemma_bench.report.stats import ALPHA, holm
from trilemma_bench.report.trilemma import best_within, budget_table

BASE = {
    "preset": "p", "sampler": "s", "checkpoint": "ddpm-x-abc", "device": "cpu", "dtype": "float32",
    "compiled": False, "model": "ddpm", "num_samples": 100, "batch_size": 50, "feature_extractor": "raw",
    "reference_split": "test", "reference_n": 1000, "device_name": "test cpu", "threads": 1,
    "timing_statistic": "median", "timing_repeats": 5, "torch_version": "x", "git_commit": "y",
    "timestamp": "2026-01-01T00:00:00+00:00", "dataset_source": "generated", "dataset": "toy2d",
}


def _step_down(p: list[float], alpha: float) -> set[int]:
    """Holm's procedure as stated: order the p ascending; reject H_(k) while p_(k) <= alpha / (m - k + 1)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for k, i in enumerate(order, start=1):
        if p[i] > alpha / (len(p) - k + 1):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_p_rejects_what_the_step_down_procedure_rejects() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])  # by hand
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 17):
        for _ in range(50):
            p = list(rng.uniform(0, 0.1, m) ** rng.uniform(0.5, 3))
            adjusted = holm(p)
            assert {i for i in range(m) if adjusted[i] <= ALPHA} == _step_down(p, ALPHA)
            assert np.all(adjusted >= np.asarray(p) - 1e-15) and np.all(adjusted <= np.minimum(1, m * np.asarray(p)))
    out = holm([0.02, math.nan, 0.04])  # an untestable comparison is no test
    assert math.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.04, 0.04])


def _cells(folder: Path, cells: dict[str, tuple[float, list[float]]], **extra) -> tuple[pd.DataFrame, pd.DataFrame]:
    for method, (ms, fids) in cells.items():
        for seed, fid in enumerate(fids):
            upsert_row(folder, {**BASE, "method": method, "nfe": 10, "nfe_requested": 10, "seed": seed,
                                "ms_per_image": ms, "fid": fid, "coverage": 0.5, "recall": 0.5, **extra})
    (_, rows, summary), = load_sections(folder)[0]
    return rows, summary


def test_a_difference_significant_alone_is_a_tie_among_more_tests(tmp_path: Path) -> None:
    a = [3.0, 3.2, 3.1]
    b = [x + d for x, d in zip(a, (0.35, 0.5, 0.65))]  # worse than a by 0.5 +/- 0.15 on every seed
    p = stats.ttest_rel(b, a).pvalue
    assert p < ALPHA < 2 * p  # significant alone, not once a second test shares the error rate
    rows, summary = _cells(tmp_path / "alone", {"a": (1.0, a), "b": (1.0, b)})
    alone = best_within(summary, rows, "nfe", 10, "fid", higher=False)
    assert alone.cell == "a@10" and alone.ties == [] and (alone.beaten, alone.n_tests) == (1, 1)
    c = [3.3, 2.9, 3.4]  # a third cell, indistinguishable from a
    rows, summary = _cells(tmp_path / "more", {"a": (1.0, a), "b": (1.0, b), "c": (1.0, c)})
    more = best_within(summary, rows, "nfe", 10, "fid", higher=False)
    assert more.cell == "a@10" and sorted(more.ties) == ["b@10", "c@10"] and (more.beaten, more.n_tests) == (0, 2)
    assert "tied with 2" in more.text("{:.3g}") and "better than 0 of 2 (Holm)" in more.text("{:.3g}")


def test_the_report_never_ranks_cells_of_two_timing_runs_together(tmp_path: Path) -> None:
    a, b = [3.0, 3.2, 3.1], [1.0, 1.1, 1.2]
    _cells(tmp_path, {"a": (1.0, a)}, timing_run="run-monday")
    for seed, fid in enumerate(b):  # the better cell, timed on another day: its ms would decide the ranking
        upsert_row(tmp_path, {**BASE, "method": "b", "nfe": 20, "nfe_requested": 20, "seed": seed, "ms_per_image": 0.5,
                              "fid": fid, "coverage": 0.5, "recall": 0.5, "timing_run": "run-tuesday"})
    sections, _ = load_sections(tmp_path)
    assert [sorted(set(s[1]["method"])) for s in sections] == [["a"], ["b"]]
    assert [s[0]["timing_run"] for s in sections] == ["run-monday", "run-tuesday"]
    both = pd.concat([s[2] for s in sections], ignore_index=True)
    rows = pd.concat([s[1] for s in sections], ignore_index=True)
    with pytest.raises(MixedTimingRuns, match="2 timing runs .* retime"):
        check_one_timing_run(both)
    with pytest.raises(MixedTimingRuns):
        best_within(both, rows, "ms_per_image", 2.0, "fid", higher=False)
    with pytest.raises(MixedTimingRuns):
        budget_table(both, rows, "ms_per_image")
    assert best_within(both, rows, "nfe", 20, "fid", higher=False).cell == "b@20"  # NFE does not depend on the day
    index = make_report(tmp_path, tmp_path / "report")
    assert index.read_text().count("timing run run-") >= 2  # one section per run, each naming its run


def test_a_second_training_is_its_own_cell_and_its_difference_is_tested(tmp_path: Path) -> None:
    from trilemma_bench.report.variance import variance_table

    first, second = [3.0, 3.2, 3.1], [4.0, 4.3, 4.1]  # the second training worse on every sampling seed
    _cells(tmp_path, {"ddim": (1.0, first)}, train_seed=0, checkpoint="ddpm-p-aaaaaaaaaa",
           timestamp="2026-01-02T00:00:00+00:00")
    _cells(tmp_path, {"ddim": (1.0, second)}, train_seed=1, checkpoint="ddpm-p-bbbbbbbbbb")  # older timestamp
    (_, rows, summary), = load_sections(tmp_path)[0]
    assert sorted(set(summary["method"])) == ["ddim", "ddim (training 1)"]  # neither supersedes the other
    assert (summary["n_seeds"] == 3).all()  # never six 'seeds' of one cell
    table, n_tests = variance_table(summary, rows)
    line = table.iloc[0]
    assert (line["method"], line["training"], line["NFE"]) == ("ddim", "training 1", 10) and n_tests == 2
    assert line["fid: other − 0 (paired)"].startswith("1.03") and line["fid: trainings differ (Holm)"] == "yes"
    assert line["coverage: trainings differ (Holm)"] == "no"  # the same coverage: no difference
    # Pooled: the two runs' means (3.1, 4.133) are the observations, t with 1 df (12.71) times their std / sqrt 2.
    means = [np.mean(first), np.mean(second)]
    half = 12.7062047 * np.std(means, ddof=1) / np.sqrt(2)
    assert half == pytest.approx(6.56, abs=0.01)  # so both print to one decimal
    assert line["fid: pooled over 2 trainings"] == f"{np.mean(means):.1f} ± {half:.1f}"
