"""The report from a small synthetic results table: tables, plots, page; and the Pareto front."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trilemma_bench.bench.results import upsert_row
from trilemma_bench.report import make_report
from trilemma_bench.report.plots import pareto_mask
from trilemma_bench.report.tables import current_rows, summarize


def _rows(results: Path) -> None:
    """Two methods x three NFE x two seeds on two datasets; FID falls and time grows with NFE."""
    for dataset, preset in (("digits", "digits"), ("toy2d", "smoke")):
        for method, speed in (("ddim", 1.0), ("ddpm", 1.3)):
            for nfe in (10, 20, 50):
                for seed in (0, 1):
                    grid = f"grids/{dataset}/{method}-{preset}-nfe{nfe}-seed{seed}.png"
                    (results / grid).parent.mkdir(parents=True, exist_ok=True)
                    Image.new("RGB", (8, 8), (seed * 100, nfe, 0)).save(results / grid)
                    upsert_row(
                        results,
                        {
                            "dataset": dataset,
                            "preset": preset,
                            "method": method,
                            "sampler": f"{method}-sampler",
                            "nfe": nfe,
                            "seed": seed,
                            "checkpoint": "ddpm-x-abc",
                            "device": "cpu",
                            "dtype": "float32",
                            "compiled": False,
                            "model": "ddpm",
                            "nfe_requested": nfe,
                            "num_samples": 100,
                            "batch_size": 50,
                            "ms_per_image": 0.1 * nfe * speed + 0.01 * seed,
                            "fid": 100.0 / nfe * speed + seed,
                            "kid": 0.01,
                            "precision": 0.5 + 0.001 * nfe,
                            "recall": 0.4 + 0.002 * nfe + 0.01 * seed,
                            "density": 1.0,
                            "coverage": 0.6 + 0.001 * nfe,
                            "modes": 25 - seed if dataset == "toy2d" else np.nan,
                            "mode_kl": 0.1 if dataset == "toy2d" else np.nan,
                            "feature_extractor": "raw",
                            "extractor_accuracy": np.nan,
                            "reference_split": "train",
                            "device_name": "test cpu",
                            "threads": 1,
                            "torch_version": "x",
                            "git_commit": "y",
                            "timestamp": "2026-01-01T00:00:00+00:00",
                            "dataset_source": "generated",
                            "grid": grid,
                        },
                    )


def test_report_builds_tables_plots_and_a_page_that_stands_alone(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "elsewhere" / "report"
    _rows(results)
    index = make_report(results, out)

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 3 and set(summary["n_seeds"]) == {2}
    cell = summary[
        (summary["dataset"] == "digits") & (summary["method"] == "ddim") & (summary["nfe"] == 10)
    ].iloc[0]
    assert cell["fid_mean"] == pytest.approx(10.5) and cell["fid_std"] == pytest.approx(
        np.std([10, 11], ddof=1)
    )
    assert cell["ms_per_image_mean"] == pytest.approx(1.005)

    md = (out / "report.md").read_text()
    assert "## digits · preset digits · cpu · float32" in md and "| ddim | ddim-sampler | 10 | 2 |" in md
    assert "10.5 ± 0.707" in md
    toy = md.split("## toy2d")[1]
    assert "modes" in toy and "modes" not in md.split("## toy2d")[0].split("| method")[1].split("\n")[0]

    for slug in ("digits-digits-cpu", "toy2d-smoke-cpu"):
        for plot in ("fid_vs_nfe", "fid_vs_ms", "diversity_vs_ms", "precision_vs_recall"):
            for ext in ("png", "svg"):
                assert (out / "plots" / f"{slug}-{plot}.{ext}").stat().st_size > 1000

    page = index.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(links) >= 2 * (4 + 6) * 2 - 4
    for link in links:
        assert not link.startswith(("/", "http")), link  # relative: opens from disk, folder can move
        assert (out / link).is_file(), link
    assert "<table" in page and "Pareto" not in page  # the front is in the plots, not a table


def test_report_refuses_an_empty_results_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no results"):
        make_report(tmp_path, tmp_path / "report")


def test_pareto_mask_minimises_and_maximises() -> None:
    ms = np.array([1.0, 2.0, 3.0, 2.5, np.nan])
    fid = np.array([30.0, 10.0, 5.0, 12.0, 1.0])
    assert pareto_mask(ms, fid).tolist() == [True, True, True, False, False]  # (2.5, 12) beaten by (2, 10)
    recall = np.array([0.3, 0.2, 0.5, 0.5, 0.1])
    assert pareto_mask(ms, recall, min_y=False).tolist() == [True, False, False, True, False]


def test_older_checkpoints_are_left_out_and_seeds_summarised(tmp_path: Path) -> None:
    _rows(tmp_path)
    rows = pd.read_csv(tmp_path / "results.csv")
    old = rows.assign(checkpoint="ddpm-x-old", timestamp="2025-01-01T00:00:00+00:00", fid=999.0)
    kept, dropped = current_rows(pd.concat([old, rows]))
    assert dropped == len(old) and (kept["fid"] < 999).all()
    assert len(summarize(kept)) == 12
