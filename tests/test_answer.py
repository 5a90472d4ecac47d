"""The report leads with the answer: per budget the best cell by quality and by diversity and what it gives up,
then the trilemma figure, before any long table; plot colours by method family."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from trilemma_bench.benchmark.results import upsert_row
from trilemma_bench.report import load_sections, make_report
from trilemma_bench.report.answer import answer_table
from trilemma_bench.report.plots import family_of, method_styles

BASE = {
    "preset": "p", "sampler": "s", "checkpoint": "ddpm-x-abc", "device": "cpu", "dtype": "float32",
    "compiled": False, "model": "ddpm", "num_samples": 100, "batch_size": 50, "feature_extractor": "raw",
    "reference_split": "test", "reference_n": 1000, "device_name": "test cpu", "threads": 1,
    "timing_statistic": "median", "timing_repeats": 5, "torch_version": "x", "git_commit": "y",
    "timestamp": "2026-01-01T00:00:00+00:00", "dataset_source": "generated", "dataset": "toy2d", "timing_run": "r1",
}
# method -> nfe -> (ms/image, per-seed FID, per-seed coverage)
CELLS = {
    "ddim": {2: (1.0, [9.0, 9.5, 9.2], [0.50, 0.52, 0.51]), 10: (5.0, [3.0, 3.1, 3.2], [0.80, 0.81, 0.79])},
    "vdm": {2: (1.5, [7.0, 7.2, 7.1], [0.60, 0.58, 0.61]), 50: (25.0, [1.0, 1.1, 1.05], [0.90, 0.92, 0.91])},
}


def _table(folder: Path) -> None:
    for method, by_nfe in CELLS.items():
        for nfe, (ms, fids, covs) in by_nfe.items():
            for seed, (fid, cov) in enumerate(zip(fids, covs)):
                upsert_row(folder, {**BASE, "method": method, "nfe": nfe, "nfe_requested": nfe, "seed": seed,
                                    "ms_per_image": ms, "fid": fid, "coverage": cov, "recall": cov})


def test_the_answer_names_the_best_per_budget_and_what_it_gives_up(tmp_path: Path) -> None:
    _table(tmp_path)
    (_, rows, summary), = load_sections(tmp_path)[0]
    table = answer_table(summary, rows).set_index("budget")
    assert table.loc["NFE ≤ 2", "best quality (FID, lower)"].startswith("vdm@2: 7.1")
    assert table.loc["NFE ≤ 2", "FID given up"] == "6.1 vs vdm@50"  # 7.1 - 1.05, the best at any budget
    assert table.loc["NFE ≤ 2", "best diversity (coverage, higher)"].startswith("vdm@2: 0.597 ± 0.038")
    assert table.loc["NFE ≤ 10", "best quality (FID, lower)"].startswith("ddim@10: 3.1")
    assert table.loc["NFE ≤ 50", "FID given up"] == "nothing (ties the best)"
    assert "NFE ≤ 1" not in table.index  # no cell that cheap: no row
    ms_rows = [b for b in table.index if b.endswith("ms/image")]
    assert ms_rows and all(float(b.split()[1]) <= 25.0 for b in ms_rows)  # quantiles inside the measured times


def test_the_page_leads_with_the_answer_and_the_trilemma_figure(tmp_path: Path) -> None:
    _table(tmp_path)
    index = make_report(tmp_path, tmp_path / "report")
    page = index.read_text()
    answer, figure = page.index("Which method at my budget?"), page.index("plots/trilemma.png")
    first_section_table = page.index("<h2>toy2d")
    assert answer < figure < first_section_table
    with Image.open(tmp_path / "report" / "plots" / "trilemma.png") as im:
        assert im.width >= 600
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.index("Which method at my budget?") < md.index("## toy2d")


def test_one_hue_per_family_and_no_colour_shared() -> None:
    methods = ["ddim", "ddpm-fixedsmall", "dpmpp-2m", "heun", "vdm", "ddgan", "ldm-f4-ddim", "ldm-f2-ddim",
               "ddim (yours)"]
    assert [family_of(m) for m in methods] == ["ddpm"] * 4 + ["vdm", "ddgan", "ldm", "ldm", "ddpm"]
    styles = method_styles(methods)
    colours = [tuple(s["color"]) for s in styles.values()]
    assert len(set(colours)) == len(methods)
    blue = [styles[m]["color"] for m in ("ddim", "ddpm-fixedsmall", "dpmpp-2m", "heun")]
    assert all(c[2] > c[0] for c in blue)  # the DDPM family in blues
    assert styles["ldm-f4-ddim"]["color"][0] > styles["ldm-f4-ddim"]["color"][1]  # purples: red over green


def test_past_eight_methods_the_plots_split_into_family_panels() -> None:
    from trilemma_bench.report.plots import MAX_SERIES, series_groups

    few = ["ddim", "vdm", "ddgan"]
    assert series_groups(few) == [sorted(few)]
    many = ["ddim", "ddpm-fixedsmall", "ddpm-fixedlarge", "dpmpp-2m", "dpmpp-3m-logsnr", "heun", "vdm", "ddgan",
            "ldm-f4-ddim", "ldm-f2-ddim"]
    groups = series_groups(many)
    assert sorted(m for g in groups for m in g) == sorted(many) and all(len(g) <= MAX_SERIES for g in groups)
    assert {family_of(m) for m in groups[0]} == {"ddpm"}  # the largest family alone
    assert len(groups) == 2
