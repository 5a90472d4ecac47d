"""The report from small synthetic results tables: one timing condition per section, intervals over seeds
(against scipy), the real-data floor, significance near the Pareto front, the trilemma view, and plots a
reader can trust (staircase front, labels that never overlap, seeds in the legend)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from trilemma_bench.benchmark.results import upsert_row
from trilemma_bench.cli import main
from trilemma_bench.report import load_sections, make_report
from trilemma_bench.report.front import comparison_table, front_comparisons, pareto_mask, staircase
from trilemma_bench.report.html import SCRIPT, selector_data
from trilemma_bench.report.labels import Label, place_labels, text_box
from trilemma_bench.report.notes import timing_note
from trilemma_bench.report.plots import quality_figure
from trilemma_bench.report.setting import current_rows, normalize, setting_label
from trilemma_bench.report.stats import paired_difference, t_half_width, t_interval, t_quantile
from trilemma_bench.report.tables import display_table, fmt, summarize
from trilemma_bench.report.trilemma import best_within, ms_grid, nfe_grid

BASE = {
    "preset": "p", "sampler": "s", "checkpoint": "ddpm-x-abc", "device": "cpu", "dtype": "float32",
    "compiled": False, "model": "ddpm", "num_samples": 100, "batch_size": 50, "feature_extractor": "raw",
    "reference_split": "test", "reference_n": 1000, "device_name": "test cpu", "threads": 1,
    "timing_statistic": "median", "timing_repeats": 5, "torch_version": "x", "git_commit": "y",
    "timestamp": "2026-01-01T00:00:00+00:00", "dataset_source": "generated", "dataset": "toy2d",
}


def _row(results: Path, **values) -> None:
    row = {**BASE, **values}
    row.setdefault("nfe_requested", row["nfe"])
    upsert_row(results, row)


def _real(results: Path, seed: int, fid: float, *, n: int = 100, matched: bool = True,
          sampler: str = "heldout-val", **values) -> None:
    _row(results, method="real", sampler=sampler, nfe=0, seed=seed, checkpoint="data:generated", model="real",
         real_n=n, matched_n=matched, ms_per_image=math.nan, fid=fid, kid=0.0, precision=0.9, recall=0.9,
         coverage=0.95, **values)


def _rows(results: Path) -> None:
    """Two methods x three NFE x two seeds on two datasets; FID falls and time grows with NFE; real rows."""
    for dataset, preset in (("digits", "digits"), ("toy2d", "smoke")):
        for method, speed in (("ddim", 1.0), ("ddpm", 1.3)):
            for nfe in (10, 20, 50):
                for seed in (0, 1):
                    grid = f"grids/{dataset}/{method}-{preset}-nfe{nfe}-seed{seed}.png"
                    (results / grid).parent.mkdir(parents=True, exist_ok=True)
                    Image.new("RGB", (8, 8), (seed * 100, nfe, 0)).save(results / grid)
                    _row(results, dataset=dataset, preset=preset, method=method, sampler=f"{method}-sampler",
                         nfe=nfe, seed=seed, ms_per_image=0.1 * nfe * speed + 0.01 * seed,
                         fid=100.0 / nfe * speed + seed, kid=0.01 + 0.001 * seed, precision=0.5 + 0.001 * nfe,
                         recall=0.4 + 0.002 * nfe + 0.01 * seed, density=1.0, coverage=0.6 + 0.001 * nfe,
                         vendi=3.0 + seed if dataset == "digits" else np.nan,
                         copy_share=0.01 * seed if dataset == "digits" else np.nan,
                         modes=25 - seed if dataset == "toy2d" else np.nan,
                         mode_kl=0.1 if dataset == "toy2d" else np.nan, grid=grid)
        for seed in (0, 1):
            _real(results, seed, 0.5 + 0.1 * seed, dataset=dataset, preset=preset)


def test_report_builds_tables_plots_and_a_page_that_stands_alone(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "elsewhere" / "report"
    _rows(results)
    index = make_report(results, out)

    summary = pd.read_csv(out / "summary.csv")
    model = summary[summary["method"] != "real"]
    assert len(model) == 2 * 2 * 3 and set(model["n_seeds"]) == {2}
    cell = model[(model["dataset"] == "digits") & (model["method"] == "ddim") & (model["nfe"] == 10)].iloc[0]
    half = stats.t.ppf(0.975, 1) * np.std([10, 11], ddof=1) / np.sqrt(2)
    assert cell["fid_mean"] == pytest.approx(10.5) and cell["fid_ci95"] == pytest.approx(half)
    assert cell["ms_per_image_mean"] == pytest.approx(1.005)

    md = (out / "report.md").read_text()
    assert "## digits · preset digits · n=100 · raw features vs test split · test cpu (cpu, 1 thread) · float32" in md
    # ms/image then FID, each 'mean ± 95% half-width', the half-width to two significant digits
    assert f"| ddim | ddim-sampler | 10 | 2 | 1.005 ± 0.064 | 10.5 ± {half:.1f} |" in md
    assert "| real data (floor) | heldout-val, n=100 as the cells | – | 2 |" in md
    assert "Student-t" in md and "median of 5 timed batches" in md and "against the test split" in md
    toy = md.split("## toy2d")[1]
    assert "modes" in toy and "modes" not in md.split("## toy2d")[0].split("| method")[1].split("\n")[0]
    assert "Vendi" in md.split("## toy2d")[0] and "copy share" in md.split("## toy2d")[0]
    assert "Significance on and near the Pareto front" in md and "Trilemma view" in md

    sections, _ = load_sections(results)
    assert len(sections) == 2
    for plot in ("fid_vs_nfe", "fid_vs_ms", "diversity_vs_ms", "precision_vs_recall"):
        assert len(list((out / "plots").glob(f"digits-digits-cpu-1t-*-{plot}.png"))) == 1
    assert not list((out / "plots").glob("*.svg"))  # only when asked: see the next test

    page = index.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(links) >= 2 * (4 + 6) * 2 - 4
    for link in links:
        assert not link.startswith(("/", "http")), link  # relative: opens from disk, folder can move
        assert (out / link).is_file(), link
    assert "<table" in page and "trilemmaAnswer" in page and "application/json" in page



def test_svg_only_when_asked(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from trilemma_bench.report.plots import save_figure

    for svg in (False, True):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        png = save_figure(fig, tmp_path / f"f{svg}.png", svg)
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert png.with_suffix(".svg").exists() == svg
        assert not plt.fignum_exists(fig.number)  # closed: a report of many plots holds none open

def test_cells_timed_at_different_thread_counts_are_never_averaged(tmp_path: Path) -> None:
    for seed, threads, ms in ((0, 2, 1.0), (1, 1, 2.0), (2, 1, 2.2)):
        _row(tmp_path, method="ddim", nfe=10, seed=seed, threads=threads, ms_per_image=ms, fid=1.0 + seed)
    for seed in (0, 1, 2):
        _real(tmp_path, seed, 0.1)
    sections, notes = load_sections(tmp_path)
    summary = pd.concat([s[2] for s in sections])
    model = summary[summary["method"] == "ddim"].sort_values("threads")
    assert model["threads"].tolist() == ["1", "2"] and model["n_seeds"].tolist() == [2, 1]
    assert model["ms_per_image_mean"].tolist() == pytest.approx([2.1, 1.0])  # never (1 + 2 + 2.2) / 3
    assert [setting_label(k).split(" · ")[4] for k, _, _ in sections] == ["test cpu (cpu, 1 thread)",
                                                                          "test cpu (cpu, 2 threads)"]
    text = " ".join(notes)
    assert "timed under 2 conditions" in text and "never averaged" in text
    assert "ddim@10: its seeds were timed apart (seeds 1,2 | 0)" in text
    # the real data (no timing) is the floor of both sections
    assert (summary["method"] == "real").sum() == 2 and set(summary.loc[summary["method"] == "real", "n_seeds"]) == {3}


def test_an_old_table_without_threads_renders_and_says_so(tmp_path: Path) -> None:
    for seed in (0, 1):
        _row(tmp_path, method="ddim", nfe=10, seed=seed, ms_per_image=1.0, fid=1.0)
    table = pd.read_csv(tmp_path / "results.csv").drop(columns=["threads", "timing_statistic"])
    table.to_csv(tmp_path / "results.csv", index=False)
    (key, rows, _), = (sections := load_sections(tmp_path))[0]
    assert key["threads"] == "unknown" and "threads unknown" in setting_label(key)
    assert any("Not recorded in this table (older rows): threads" in n for n in sections[1])
    assert "the statistic is not recorded" in timing_note(rows, key)[0]


def test_sample_size_and_features_are_part_of_the_setting(tmp_path: Path) -> None:
    # seeds of one cell scored at two sample sizes, and a method scored in other features: never one mean
    _row(tmp_path, method="ddim", nfe=10, seed=0, ms_per_image=1.0, fid=1.0, num_samples=100)
    _row(tmp_path, method="ddim", nfe=10, seed=1, ms_per_image=1.0, fid=2.0, num_samples=200)
    _row(tmp_path, method="ddpm", nfe=10, seed=0, ms_per_image=1.0, fid=3.0, feature_extractor="inception")
    sections, _ = load_sections(tmp_path)
    assert sorted(s[2]["fid_mean"].iloc[0] for s in sections) == [1.0, 2.0, 3.0]
    assert sorted((k["num_samples"], k["feature_extractor"]) for k, _, _ in sections) == [
        ("100", "inception"), ("100", "raw"), ("200", "raw")]
    assert len({setting_label(k) for k, _, _ in sections}) == 3  # every section's title says how it differs


def test_older_checkpoints_are_left_out(tmp_path: Path) -> None:
    _rows(tmp_path)
    rows = pd.read_csv(tmp_path / "results.csv")
    old = rows[rows["method"] != "real"].assign(checkpoint="ddpm-x-old", timestamp="2025-01-01T00:00:00+00:00",
                                                fid=999.0)
    kept, dropped = current_rows(pd.concat([old, rows]))
    assert dropped == len(old) and (kept["fid"] < 999).all()
    kept, setting, _ = normalize(kept)
    assert len(summarize(kept, setting)) == 12 + 2


def test_t_quantiles_and_intervals_match_closed_forms_and_scipy() -> None:
    # df = 1 (Cauchy) and df = 2 have closed-form quantiles
    assert t_quantile(1) == pytest.approx(math.tan(math.pi * (0.975 - 0.5)), rel=1e-10)
    p = 0.975
    assert t_quantile(2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 12):
        v = rng.normal(3.0, 2.0, n)
        iv = t_interval(list(v) + [math.nan])  # NaN is not a seed's value
        lo, hi = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
        assert iv.n == n and iv.lo == pytest.approx(lo) and iv.hi == pytest.approx(hi)
    one = t_interval([4.0])
    assert one.mean == 4.0 and math.isnan(one.half) and math.isnan(t_half_width(1.0, 1))


def test_paired_difference_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 7):
        a, b = rng.normal(1, 1, n), rng.normal(1.5, 1, n)
        ref = stats.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        # keyed by seed, in another order, with an unshared seed on each side
        got = paired_difference({**{s: a[s] for s in reversed(range(n))}, 99: 5.0}, {**dict(enumerate(b)), 98: 1.0})
        assert got.n == n and got.seeds == tuple(range(n))
        assert got.p_value == pytest.approx(ref.pvalue) and got.lo == pytest.approx(ci.low)
        assert got.hi == pytest.approx(ci.high) and got.significant == (ref.pvalue < 0.05)
    assert paired_difference({0: 1.0}, {0: 2.0}).significant is None  # one seed: no test
    assert paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}).significant is True  # a constant shift


def test_tables_show_interval_seeds_kid_vendi_copy_share_extras_and_the_floor(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        _row(tmp_path, method="ddim", nfe=10, seed=seed, ms_per_image=1.0, fid=2.0 + seed, kid=0.01 * seed,
             vendi=4.0, copy_share=0.02, bpd=3.5 + 0.1 * seed, recon_fid=0.7, mystery_metric=1.0)
        _real(tmp_path, seed, 0.3)
        _real(tmp_path, seed, 0.9, n=40, matched=False, sampler="heldout-val+test")
    _row(tmp_path, method="vdm", nfe=20, seed=0, ms_per_image=2.0, fid=1.0)
    sections, _ = load_sections(tmp_path)
    table = display_table(sections[0][2])
    ddim = table[table["method"] == "ddim"].iloc[0]
    assert ddim["FID"] == fmt(3.0, stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3), "{:.3g}") == "3.0 ± 2.5"
    assert ddim["seeds"] == "3" and ddim["KID"].startswith("0.010 ± ")
    assert ddim["Vendi"] == "4 ± 0" and ddim["copy share"] == "0.020 ± 0"
    assert ddim["bits/dim"].startswith("3.60 ± ") and ddim["recon FID (ceiling)"] == "0.7 ± 0"
    vdm = table[table["method"] == "vdm"].iloc[0]
    assert vdm["seeds"] == "1 (no interval)" and vdm["FID"] == "1"
    floor = table[table["method"] == "real data (floor)"].iloc[0]
    assert floor["NFE"] == "–" and floor["ms/image"] == "–" and floor["FID"] == "0.3 ± 0"
    unmatched = table[table["method"] == "real data (not matched)"].iloc[0]
    assert "n=40 (fewer than the cells)" in unmatched["sampler"]


def test_the_fid_plot_draws_the_matched_floor_with_its_band_and_counts_seeds(tmp_path: Path) -> None:
    for seed, fid in ((0, 0.5), (1, 0.7), (2, 0.65)):
        _real(tmp_path, seed, fid)
        _real(tmp_path, seed, 5.0, n=40, matched=False, sampler="heldout-val+test")
        for nfe in (10, 20):
            _row(tmp_path, method="ddim", nfe=nfe, seed=seed, ms_per_image=0.1 * nfe, fid=20.0 / nfe + seed)
    _row(tmp_path, method="ddpm", nfe=10, seed=0, ms_per_image=1.5, fid=3.0)
    (_, _, summary), = load_sections(tmp_path)[0]
    fig = quality_figure(summary, "ms_per_image", "t", "FID")
    ax = fig.axes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "ddim (3 seeds)" in legend and "ddpm (1 seed)" in legend
    floor = [t for t in legend if t.startswith("real data at n=100 (floor")]
    assert len(floor) == 1 and not any("n=40" in t for t in legend)  # the unmatched set is not a floor
    line = next(ln for ln in ax.get_lines() if ln.get_label() == floor[0])
    assert line.get_ydata()[0] == pytest.approx(np.mean([0.5, 0.7, 0.65]))
    iv = t_interval([0.5, 0.7, 0.65])
    bands = [p for p in ax.patches if p.get_alpha() == pytest.approx(0.08)]  # axhspan: y in data units
    assert len(bands) == 1
    assert bands[0].get_y() == pytest.approx(iv.lo) and bands[0].get_y() + bands[0].get_height() == pytest.approx(iv.hi)
    plt.close(fig)


def test_pareto_mask_minimises_and_maximises() -> None:
    ms = np.array([1.0, 2.0, 3.0, 2.5, np.nan])
    fid = np.array([30.0, 10.0, 5.0, 12.0, 1.0])
    assert pareto_mask(ms, fid).tolist() == [True, True, True, False, False]  # (2.5, 12) beaten by (2, 10)
    recall = np.array([0.3, 0.2, 0.5, 0.5, 0.1])
    assert pareto_mask(ms, recall, min_y=False).tolist() == [True, False, False, True, False]


def test_the_front_is_drawn_as_the_attainable_staircase() -> None:
    ms, fid = [3.0, 1.0, 2.0, 2.5], [5.0, 30.0, 10.0, 12.0]
    xs, ys = staircase(ms, fid, extend=4.0)  # a cost: flat to the next front point's time, then down
    assert list(zip(xs, ys)) == [(1, 30), (2, 30), (2, 10), (3, 10), (3, 5), (4, 5)]
    xs, ys = staircase([1.0, 2.0, 3.0], [0.3, 0.5, 0.4], min_y=False)  # recall vs ms: (3, 0.4) dominated
    assert list(zip(xs, ys)) == [(1, 0.3), (2, 0.3), (2, 0.5)]
    # precision vs recall, both benefits: the best precision at recall r comes from the first front point >= r
    xs, ys = staircase([0.5, 0.8, 0.9], [0.9, 0.7, 0.4], min_x=False, min_y=False, extend=0.2)
    assert list(zip(xs, ys)) == [(0.2, 0.9), (0.5, 0.9), (0.5, 0.7), (0.8, 0.7), (0.8, 0.4), (0.9, 0.4)]


def test_nfe_labels_never_overlap_in_a_crowded_plot() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(1, 1.3, 40), rng.uniform(1, 1.2, 40)  # 40 points in a small patch of the axes
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(x, y)
    ax.set(xlim=(0.5, 2), ylim=(0.5, 2))
    placed, left_out = place_labels(ax, [Label(a, b, str(10 * i)) for i, (a, b) in enumerate(zip(x, y))])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [text_box(a, renderer) for a in placed]
    assert len(placed) + left_out == 40 and len(placed) >= 30
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    # the naive fixed offset the report used before does overlap here
    naive = [ax.annotate(str(i), (a, b), xytext=(4, 4), textcoords="offset points", fontsize=7)
             for i, (a, b) in enumerate(zip(x, y))]
    fig.canvas.draw()
    nb = [a.get_window_extent(renderer) for a in naive]
    assert any(nb[i].overlaps(nb[j]) for i in range(len(nb)) for j in range(i + 1, len(nb)))
    plt.close(fig)


def _cells(tmp_path: Path, cells: dict[str, tuple[int, float, list[float]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """method -> (nfe, ms/image, per-seed FID); returns (rows, summary) of the one section."""
    for method, (nfe, ms, fids) in cells.items():
        for seed, fid in enumerate(fids):
            _row(tmp_path, method=method, nfe=nfe, seed=seed, ms_per_image=ms, fid=fid, coverage=0.5, recall=0.5)
    (_, rows, summary), = load_sections(tmp_path)[0]
    return rows, summary


def test_significance_on_and_near_the_front(tmp_path: Path) -> None:
    rows, summary = _cells(tmp_path, {
        "fast": (5, 1.0, [10.0, 11.0, 12.0]),
        "good": (20, 2.0, [5.0, 5.5, 6.2]),      # front; significantly better than fast
        "near": (50, 3.0, [4.0, 7.0, 6.0]),      # dominated by good on the means, within seed noise
        "worse": (50, 4.0, [8.0, 8.6, 9.1]),     # dominated, significantly worse than good
    })
    comparisons, cells = front_comparisons(summary, rows, "fid")
    flags = dict(zip(cells["method"], zip(cells["front"], cells["near"])))
    assert flags == {"fast": (True, False), "good": (True, False), "near": (False, True), "worse": (False, False)}
    table = comparison_table(comparisons, "FID", "{:.3g}")
    assert table["cell"].tolist() == ["good@20", "near@50"] and table["vs"].tolist() == ["fast@5", "good@20"]
    assert table["verdict"].tolist() == ["significant: good@20 better", "not significant (within seed noise)"]
    ref = stats.ttest_rel([5.0, 5.5, 6.2], [10.0, 11.0, 12.0])
    assert comparisons[0].test.p_value == pytest.approx(ref.pvalue)


def test_trilemma_best_within_a_budget_reports_ties_not_a_single_winner(tmp_path: Path) -> None:
    rows, summary = _cells(tmp_path, {
        "a": (10, 1.0, [3.0, 3.2, 3.1]),
        "b": (10, 1.2, [3.1, 2.9, 3.4]),    # tied with a: the per-seed differences straddle 0
        "c": (20, 2.0, [1.0, 1.1, 1.2]),
    })
    best = best_within(summary, rows, "nfe", 10, "fid", higher=False)
    assert best.cell == "a@10" and best.ties == ["b@10"] and "tied with 1 (b@10)" in best.text("{:.3g}")
    assert best_within(summary, rows, "nfe", 20, "fid", higher=False).cell == "c@20"
    assert best_within(summary, rows, "ms_per_image", 1.1, "fid", higher=False).ties == []
    assert best_within(summary, rows, "nfe", 5, "fid", higher=False) is None
    _row(tmp_path, method="d", nfe=10, seed=0, ms_per_image=0.5, fid=3.5)  # one seed: cannot be tested
    (_, rows, summary), = load_sections(tmp_path)[0]
    assert best_within(summary, rows, "nfe", 10, "fid", higher=False).untested == ["d@10"]


def test_budget_grids_span_the_data() -> None:
    assert nfe_grid([5, 10, 20, 50]) == [10, 20, 50]
    assert nfe_grid([1, 4, 35]) == [1, 2, 4, 10, 20, 50]
    assert nfe_grid([2000]) == [2000]
    assert ms_grid([0.084, 0.57]) == [0.1, 0.2, 0.5, 1.0]
    assert ms_grid([2.0, 244.0]) == [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]


def test_report_budget_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _cells(tmp_path, {"a": (10, 1.0, [3.0, 3.2, 3.1]), "b": (10, 1.2, [3.1, 2.9, 3.4]),
                      "c": (20, 2.0, [1.0, 1.1, 1.2])})
    assert main(["report", "--results", str(tmp_path), "--budget-nfe", "10"]) == 0
    out = capsys.readouterr().out
    assert "NFE ≤ 10" in out and "a@10" in out and "tied with 1 (b@10)" in out and "c@20" not in out
    assert main(["report", "--results", str(tmp_path), "--budget-ms", "5"]) == 0
    assert "c@20 (1.10 ± 0.25)" in capsys.readouterr().out
    assert main(["report", "--results", str(tmp_path), "--budget-ms", "0"]) == 2
    assert not (tmp_path / "report").exists()  # a budget question writes no report


def test_report_refuses_an_empty_results_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no results"):
        make_report(tmp_path, tmp_path / "report")


NODE_STUB = """
const [data, raw] = process.argv.slice(-2), budgets = JSON.parse(raw);
for (const [nfe, ms] of budgets) {
  const fields = {'.b-nfe': {value: nfe}, '.b-ms': {value: ms}, '.answer': {innerHTML: ''},
                  'script[type="application/json"]': {textContent: data}};
  trilemmaAnswer({querySelector: q => fields[q]});
  console.log(fields['.answer'].innerHTML);
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the page's script; not installed")
def test_the_page_budget_script_gives_the_python_answer(tmp_path: Path) -> None:
    rows, summary = _cells(tmp_path, {
        "a": (10, 1.0, [3.0, 3.2, 3.1]),
        "b": (10, 1.2, [3.1, 2.9, 3.4]),
        "c": (20, 2.0, [1.0, 1.1, 1.2]),
        "d": (50, 0.5, [2.0]),
    })
    budgets = [("10", ""), ("", "1.1"), ("20", "5"), ("1", "")]
    script = SCRIPT + NODE_STUB
    out = subprocess.run(["node", "-e", script, "--", json.dumps(selector_data(summary, rows)), json.dumps(budgets)],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip().split("\n")
    for (nfe, ms), answer in zip(budgets, out):
        fid = re.search(r"<th>best FID \(lower\)</th><td>([^<]*)</td>", answer).group(1)
        if nfe == "1":
            assert fid == "no cell within this budget"
            continue
        col, budget = ("nfe", float(nfe)) if nfe else ("ms_per_image", float(ms))
        best = best_within(summary, rows, col, budget, "fid", higher=False)
        if nfe and ms:  # both budgets: only d@50 is out (its NFE), c@20 is the best, untested against d
            assert fid.startswith("c@20 (") and "untested" not in fid
            continue
        ties = f"tied with {len(best.ties)} ({', '.join(best.ties[:3])}"
        assert fid.startswith(f"{best.cell} (") and (ties in fid) == bool(best.ties)
        assert (f"; {len(best.untested)} untested" in fid) == bool(best.untested)
        assert (f"better than {best.beaten} of {best.n_tests} (Holm)" in fid) == bool(best.n_tests)


def test_learned_schedules_in_the_results_folder_get_their_own_section(tmp_path: Path) -> None:
    from trilemma_bench.benchmark.results import write_schedule

    results, out = tmp_path / "results", tmp_path / "report"
    _rows(results)
    t = np.linspace(0, 1, 1001)
    a = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    ddpm = [math.nan, *np.log(a / (1 - a))]
    write_schedule(results, "vdm-digits-abc", {"t": t.tolist(), "logsnr_vdm": (13.3 - 18.3 * t).tolist(),
                                               "logsnr_ddpm_linear": ddpm})
    make_report(results, out)
    md = (out / "report.md").read_text()
    section = md.split("## Noise schedules")[1]
    summary = section.split("\n")
    row = next(line for line in summary if line.startswith("| vdm-digits-abc"))
    assert [float(v) for v in row.strip("| ").split("|")[1:]] == pytest.approx([13.3, 4.15, -5.0])
    fixed = next(line for line in summary if line.startswith("| DDPM linear"))
    assert float(fixed.strip("| ").split("|")[-1]) == pytest.approx(float(np.log(a[-1] / (1 - a[-1]))), abs=1e-3)
    assert (out / "plots" / "schedules.png").is_file() and "plots/schedules.png" in (out / "index.html").read_text()


def test_no_schedules_no_schedule_section(tmp_path: Path) -> None:
    _rows(tmp_path / "results")
    make_report(tmp_path / "results", tmp_path / "report")
    assert "Noise schedules" not in (tmp_path / "report" / "report.md").read_text()


def test_a_latent_model_draws_its_autoencoder_ceiling_once_per_autoencoder(tmp_path: Path) -> None:
    for method in ("ldm-f2-ddim", "ldm-f2-dpmpp-2m"):
        for nfe in (10, 20):
            for seed in (0, 1):
                _row(tmp_path, method=method, nfe=nfe, seed=seed, ms_per_image=0.1 * nfe, fid=5.0 / nfe + seed,
                     recon_fid=0.4)
    _row(tmp_path, method="ddim", nfe=10, seed=0, ms_per_image=1.0, fid=1.0)
    (_, _, summary), = load_sections(tmp_path)[0]
    fig = quality_figure(summary, "ms_per_image", "t", "FID")
    lines = [ln for ln in fig.axes[0].get_lines() if "ceiling" in str(ln.get_label())]
    assert len(lines) == 1 and lines[0].get_label() == "ldm-f2: autoencoder reconstruction (ceiling)"
    assert lines[0].get_ydata()[0] == pytest.approx(0.4)
    plt.close(fig)
    # A ceiling far below every point (FIDs over a decade apart: a log axis) stays inside the axes.
    for seed in (0, 1):
        _row(tmp_path, method="ldm-f4-ddim", nfe=10, seed=seed, ms_per_image=0.5, fid=40.0, recon_fid=0.05)
    (_, _, summary), = load_sections(tmp_path)[0]
    fig = quality_figure(summary, "ms_per_image", "t", "FID")
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_ylim()[0] < 0.05
    plt.close(fig)


def test_a_long_legend_grows_the_figure_not_shrinks_the_axes() -> None:
    from trilemma_bench.report.plots import finish

    def axes_inches(methods: int) -> float:
        fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=100)
        for i in range(methods):
            ax.plot([1, 2], [i, i + 1], label=f"method {i}")
        finish(fig, [], ax)
        height = ax.get_window_extent().height / fig.dpi
        plt.close(fig)
        return height

    one, twenty = axes_inches(1), axes_inches(20)
    assert one > 3.5  # most of the 4.6 inches asked for
    assert twenty == pytest.approx(one, rel=0.05)  # the 20-entry legend went below, not into the axes


def test_a_section_with_known_modes_prints_the_perfect_model_floor_at_its_sample_size(tmp_path: Path) -> None:
    """The floor is the one for the cells' n: E[modes hit] = M (1 - (1 - 1/M)^N) exactly, 864.9 for 2,000 draws
    over 1000 modes (a perfect model does not hit them all there), against 1000 at 26,000 draws."""
    for n, total in ((2000, 1000), (26_000, 1000)):
        results = tmp_path / str(n)
        for seed in (0, 1):
            _row(results, dataset="stacked-mnist", method="ddgan", nfe=4, seed=seed, ms_per_image=1.0, fid=5.0,
                 num_samples=n, modes=800 + seed, modes_total=total, mode_kl=0.3)
        make_report(results, results / "report")
        md = (results / "report" / "report.md").read_text()
        line = next(t for t in md.splitlines() if t.startswith("Mode floor"))
        hit = float(re.search(r"hit ([\d.]+) of 1000 modes", line).group(1))
        kl = float(re.search(r"at KL ([\d.]+)", line).group(1))
        assert f"{n:,} draws" in line
        assert hit == pytest.approx(total * (1 - (1 - 1 / total) ** n), abs=2.0)
        if n == 26_000:  # the chi-square approximation (M - 1) / (2N) holds for N >> M
            assert kl == pytest.approx(999 / (2 * n), rel=0.05)
    # Without a known number of modes (digits; toy2d rows that carry modes but no modes_total) no such line.
    _rows(tmp_path / "none")
    make_report(tmp_path / "none", tmp_path / "none" / "report")
    assert "Mode floor" not in (tmp_path / "none" / "report" / "report.md").read_text()


def test_up_to_twenty_methods_each_get_a_colour_of_their_own() -> None:
    from trilemma_bench.report.plots import method_styles

    for n in (3, 10, 11, 20):
        styles = method_styles([f"m{i:02d}" for i in range(n)])
        assert len({s["color"] for s in styles.values()}) == n, n
        assert len({(s["color"], s["marker"]) for s in styles.values()}) == n
    assert method_styles(["b", "a"])["a"] == method_styles(["a", "b", "c"])["a"]  # by sorted name


def test_your_rows_are_drawn_beside_the_reference_labelled_and_never_merged(tmp_path: Path) -> None:
    """A user's bench writes to its own folder; the report shows those rows as '<method> (yours)' beside the
    committed reference rows of the same cells, copies both folders' grids, and changes neither table."""
    reference, mine = tmp_path / "results", tmp_path / "results" / "local"
    _rows(reference)
    _row(mine, dataset="toy2d", preset="smoke", method="ddim", sampler="ddim-sampler", nfe=10, seed=0,
         ms_per_image=5.0, fid=7.0, precision=0.5, recall=0.4, coverage=0.6, modes=20, mode_kl=0.1)
    before = (reference / "results.csv").read_text()
    index = make_report(mine, mine / "report", reference)
    sections, notes = load_sections(mine, reference)
    methods = set().union(*(set(rows["method"]) for _, rows, _ in sections))
    assert {"ddim", "ddpm", "ddim (yours)"} <= methods
    toy = next(rows for key, rows, _ in sections if key["dataset"] == "toy2d")
    assert toy.loc[toy["method"] == "ddim (yours)", "fid"].tolist() == [7.0]
    assert 7.0 not in toy.loc[toy["method"] == "ddim", "fid"].tolist()
    assert any("(yours)" in n and "reference rows" in n for n in notes)
    assert index.exists() and (mine / "report" / "grids" / "digits").is_dir()  # the reference's grids too
    assert (reference / "results.csv").read_text() == before
    # Read alone (the maintainer's view), the reference has no rows of yours.
    alone, _ = load_sections(reference, reference)
    assert not any("(yours)" in m for _, rows, _ in alone for m in rows["method"])


def test_training_compute_curves_say_converged_only_when_the_last_doubling_changed_nothing(tmp_path: Path) -> None:
    """Two runs benched at each kept checkpoint: one whose FID still falls from 4k to 8k steps at every seed
    (still changing), one whose last two checkpoints differ by seed noise only (converged); the report draws both."""
    from trilemma_bench.report.curves import curve_table, read_curves

    curves = tmp_path / "curves"
    noise = {0: 0.03, 1: -0.02, 2: -0.01}
    for run, fids in (("a-digits", {2000: 5.0, 4000: 3.0, 8000: 2.0}), ("b-digits", {2000: 3.0, 4000: 2.0, 8000: 2.0})):
        for steps, fid in fids.items():
            for seed in (0, 1, 2):
                shift = noise[seed] * (1 if steps == 8000 else -1) if run == "b-digits" else 0.01 * seed
                _row(curves, dataset="digits", preset="digits", method="ddim", sampler="ddim", nfe=20, seed=seed,
                     checkpoint=f"{run}-s{steps:06d}-abcdef0123", ms_per_image=1.0, fid=fid + shift, coverage=0.9,
                     train_steps=steps, train_gflops=steps * 0.4, train_cpu_seconds=steps * 0.2)
    table = curve_table(read_curves(tmp_path))
    last = table[table["verdict"] != ""].set_index("model")["verdict"]
    assert last["a-digits"].startswith("FID: still changing")
    assert last["b-digits"].startswith("FID: converged")
    assert len(table) == 6 and set(table["train steps"]) == {2000, 4000, 8000}
    _rows(tmp_path)
    make_report(tmp_path, tmp_path / "report")
    assert (tmp_path / "report" / "plots" / "digits-training-compute.png").exists()
    assert "Quality against training compute" in (tmp_path / "report" / "report.md").read_text()


def test_answer_cells_carry_their_models_convergence(tmp_path: Path) -> None:
    """A cell whose model's curve still improved at its checkpoint is marked †, one whose curve had flattened is not,
    and one of a training no curve passes through (another seed) is marked ‡; a longer run speaks for the preset's."""
    import pandas as pd

    from trilemma_bench.report.answer import NOT_CONVERGED, NOT_MEASURED, answer_note, cell_training
    from trilemma_bench.report.curves import read_curves, training_status

    curves = tmp_path / "curves"
    noise = {0: 0.03, 1: -0.02, 2: -0.01}
    for run, fids in (("a-digits", {4000: 3.0, 8000: 2.0}), ("b-digits-16000steps", {8000: 2.0, 16000: 2.0})):
        for steps, fid in fids.items():
            for seed in (0, 1, 2):
                shift = noise[seed] * (1 if steps == 16000 else -1) if run.startswith("b") else 0.01 * seed
                _row(curves, dataset="digits", preset="digits", method="ddim", sampler="ddim", nfe=20, seed=seed,
                     checkpoint=f"{run}-s{steps:06d}-abcdef0123", ms_per_image=1.0, fid=fid + shift, coverage=0.9,
                     train_steps=steps, train_gflops=steps * 0.4, train_cpu_seconds=steps * 0.2, train_seed=0)
    status = training_status(read_curves(tmp_path))
    assert status[("a-digits", 0, 8000)] is False and status[("b-digits", 0, 8000)] is True
    rows = pd.DataFrame([
        {"method": "ddim", "nfe": 10, "checkpoint": "a-digits-1234567890", "train_seed": 0, "train_steps": 8000},
        {"method": "other", "nfe": 10, "checkpoint": "b-digits-0987654321", "train_seed": 0, "train_steps": 8000},
        {"method": "ddim (training 1)", "nfe": 10, "checkpoint": "a-digits-1111111111", "train_seed": 1,
         "train_steps": 8000},
    ])
    marks = cell_training(rows, status)
    assert marks == {"ddim@10": NOT_CONVERGED, "other@10": "", "ddim (training 1)@10": NOT_MEASURED}
    assert NOT_CONVERGED in answer_note(pd.DataFrame({"best": [f"ddim@10{NOT_CONVERGED}: 1.0"]}))
    assert NOT_CONVERGED not in answer_note(pd.DataFrame({"best": ["other@10: 1.0"]}))
