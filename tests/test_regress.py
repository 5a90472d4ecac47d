"""The CI regression's verdicts: the baseline passes against itself, degraded or changed tables fail."""

from __future__ import annotations

import pandas as pd
import pytest

from trilemma_bench.bench import regress


def _baseline() -> pd.DataFrame:
    if regress.BASELINE.exists():  # the committed one, as CI compares against it
        return pd.read_csv(regress.BASELINE)
    rows = []
    for method in ("ddim", "ddpm"):
        for nfe in (10, 20):
            for seed in (0, 1, 2):
                rows.append(
                    {
                        "method": method,
                        "sampler": f"{method}-s",
                        "nfe_requested": nfe,
                        "nfe": nfe,
                        "seed": seed,
                        "fid": 0.03 / nfe * 10 + 0.002 * seed,
                        "coverage": 0.5 + 0.01 * seed,
                        "ms_per_image": 0.1,
                    }
                )
    return pd.DataFrame(rows)


def _failed(checks: list[regress.Check]) -> list[tuple[str, str]]:
    return [(c.cell, c.metric) for c in checks if not c.ok]


def test_baseline_passes_against_itself_and_within_its_seed_spread() -> None:
    base = _baseline()
    assert _failed(regress.compare(base, base)) == []
    # A shift of one seed-to-seed standard deviation is noise, not a regression.
    sigma = base.groupby(regress.CELL)[["fid", "coverage"]].transform("std").fillna(0)
    noisy = base.assign(fid=base["fid"] + sigma["fid"], coverage=base["coverage"] - sigma["coverage"])
    assert _failed(regress.compare(base, noisy)) == []


def test_degraded_fid_or_coverage_fails() -> None:
    base = _baseline()
    worse_fid = base.assign(fid=base["fid"] * 2 + 0.05)
    assert {m for _, m in _failed(regress.compare(base, worse_fid))} == {"fid"}
    worse_cov = base.assign(coverage=base["coverage"] - 0.2)
    assert {m for _, m in _failed(regress.compare(base, worse_cov))} == {"coverage"}
    better = base.assign(fid=base["fid"] / 2, coverage=(base["coverage"] + 0.05).clip(upper=1))
    assert _failed(regress.compare(base, better)) == []


def test_a_changed_nfe_count_or_a_missing_cell_fails() -> None:
    base = _baseline()
    first = base["nfe_requested"] == base["nfe_requested"].min()
    changed = base.assign(nfe=base["nfe"].where(~first, base["nfe"] + 1))
    assert {m for _, m in _failed(regress.compare(base, changed))} == {"nfe"}
    dropped = base[base["method"] != base["method"].iloc[0]]
    assert {m for _, m in _failed(regress.compare(base, dropped))} == {"present"}


def test_tolerance_is_the_larger_of_sigmas_and_floors() -> None:
    spread = pd.Series([1.0, 1.1, 1.2])
    assert regress.tolerance("fid", spread) == pytest.approx(regress.TOL_SIGMAS * 0.1)
    flat = pd.Series([0.5, 0.5, 0.5])
    assert regress.tolerance("coverage", flat) == pytest.approx(
        max(regress.TOL_REL["coverage"] * 0.5, regress.TOL_ABS["coverage"])
    )
