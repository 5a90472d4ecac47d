"""The CI regression's verdicts against the committed baseline: itself passes, a degraded or slowed table fails."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from trilemma_bench.benchmark import cputime, oracle, regress


@pytest.fixture(autouse=True)
def _keep_threads():
    # regress.main runs at 1 thread, as CI does; the rest of the session keeps its own setting.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _baseline() -> pd.DataFrame:
    return pd.read_csv(regress.BASELINE)  # the committed one, as CI compares against it


def _cells(table: pd.DataFrame) -> pd.Series:
    return table["method"] != "real"


def _reproduced() -> pd.DataFrame:
    """What CI's run gives when training reproduces the baseline's checkpoint: training seed 0's rows."""
    base = _baseline()
    return base[base[regress.TRAINING_SEED] == 0].drop(columns=[regress.TRAINING_SEED])


def _failed(checks: list) -> list[tuple[str, str]]:
    return [(c.cell, c.metric) for c in checks if not c.ok]


def test_the_baseline_covers_every_method_nfe_seed_and_checkpoint_of_the_regression() -> None:
    base = _baseline()
    cells = base[_cells(base)]
    assert set(cells["method"]) == set(regress.METHODS)
    assert cells.groupby("method")["nfe_requested"].apply(lambda s: sorted(set(s))).tolist() == [list(regress.NFE)] * 3
    assert sorted(set(cells["seed"])) == list(regress.SEEDS)
    per_checkpoint = cells.groupby(regress.TRAINING_SEED)["checkpoint"].unique()
    assert per_checkpoint.index.tolist() == list(range(regress.CHECKPOINTS))
    assert all(len(ids) == 1 for ids in per_checkpoint) and per_checkpoint.str[0].nunique() == regress.CHECKPOINTS
    assert (cells["threads"] == regress.THREADS).all()
    assert cells[cputime.COLUMN].notna().all() and cells["cpu_ms_per_image"].notna().all()


def test_baseline_passes_against_itself_and_within_its_seed_spread() -> None:
    base, now = _baseline(), _reproduced()
    assert regress.same_checkpoint(base, now)
    assert _failed(regress.compare(base, now)) == []
    # Every metric one seed-to-seed standard deviation worse is noise, not a regression.
    metrics = list(regress.DIRECTION)
    sigma = now.groupby(regress.CELL)[metrics].transform("std").fillna(0)
    noisy = now.copy()
    for m, sign in regress.DIRECTION.items():
        noisy[m] = now[m] - sign * sigma[m]
    assert _failed(regress.compare(base, noisy)) == []


def test_every_retrained_checkpoint_passes_against_the_others() -> None:
    # Out of sample: checkpoint j's rows judged by a baseline that never saw it (its spread from the rest).
    base = _baseline()
    for j in range(1, regress.CHECKPOINTS):
        others = base[base[regress.TRAINING_SEED] != j]
        now = base[base[regress.TRAINING_SEED] == j]
        assert not regress.same_checkpoint(others, now)
        assert _failed(regress.compare(others, now)) == [], f"training seed {j}"


def test_fid_doubled_alone_fails_in_the_cells_above_the_fid_floor() -> None:
    base, now = _baseline(), _reproduced()
    worse = now.assign(fid=now["fid"] * 2)
    failed = _failed(regress.compare(base, worse))
    assert failed, "FID x2 must fail the regression"
    assert {m for _, m in failed} == {"fid"}
    # The NFE-10 cells, far above the floor, catch it wherever the floor cells cannot.
    assert {f"{m} NFE 10" for m in regress.METHODS} <= {c for c, _ in failed}


def test_coverage_down_005_alone_fails() -> None:
    base, now = _baseline(), _reproduced()
    worse = now.assign(coverage=now["coverage"] - 0.05)
    failed = _failed(regress.compare(base, worse))
    assert failed, "coverage -0.05 must fail the regression"
    assert {m for _, m in failed} == {"coverage"}


def test_high_quality_and_mode_kl_see_what_fid_at_its_floor_cannot() -> None:
    base, now = _baseline(), _reproduced()

    def failing(table: pd.DataFrame, metric: str) -> set[str]:
        return {c for c, m in _failed(regress.compare(base, table)) if m == metric}

    fid_blind = {f"{m} NFE {n}" for m in regress.METHODS for n in regress.NFE} - failing(
        now.assign(fid=now["fid"] * 2), "fid")
    assert fid_blind, "every cell caught FID x2: no cell sits at the FID floor any more; revisit the README"
    assert fid_blind & failing(now.assign(high_quality=now["high_quality"] - 0.05), "high_quality")
    assert fid_blind & failing(now.assign(mode_kl=now["mode_kl"] * 2), "mode_kl")


def test_another_checkpoint_widens_the_tolerances_and_fid_doubled_still_fails() -> None:
    base, now = _baseline(), _reproduced()
    other = now.assign(checkpoint="ddpm-smoke-0123456789")
    assert not regress.same_checkpoint(base, other)
    assert _failed(regress.compare(base, other)) == []
    same = set(_failed(regress.compare(base, now.assign(fid=now["fid"] * 2))))
    widened = set(_failed(regress.compare(base, other.assign(fid=other["fid"] * 2))))
    assert widened and widened <= same
    assert ("ddpm-fixedsmall NFE 10", "fid") in widened  # FID 0.13, far above the checkpoints' spread


def test_improvements_pass() -> None:
    base, now = _baseline(), _reproduced()
    better = now.assign(fid=now["fid"] / 2, coverage=(now["coverage"] + 0.05).clip(upper=1),
                        high_quality=(now["high_quality"] + 0.05).clip(upper=1), mode_kl=now["mode_kl"] / 2)
    assert _failed(regress.compare(base, better)) == []


def test_a_changed_nfe_count_or_a_missing_cell_fails() -> None:
    base, now = _baseline(), _reproduced()
    first = now["nfe_requested"] == 10
    changed = now.assign(nfe=now["nfe"].where(~first, now["nfe"] + 1))
    assert {m for _, m in _failed(regress.compare(base, changed))} == {"nfe"}
    dropped = now[now["method"] != regress.METHODS[0]]
    assert {m for _, m in _failed(regress.compare(base, dropped))} == {"present"}


def test_tolerance_is_the_seed_spread_widened_to_the_checkpoint_spread_for_another_checkpoint() -> None:
    spread = pd.Series([1.0, 1.1, 1.2])
    assert regress.tolerance("fid", spread) == pytest.approx(max(regress.TOL_SIGMAS * 0.1, regress.TOL_ABS["fid"]))
    flat = pd.Series([0.5, 0.5, 0.5])
    assert regress.tolerance("coverage", flat) == pytest.approx(regress.TOL_ABS["coverage"])
    checkpoints = pd.Series([1.0, 1.5, 2.0, 0.5])
    assert regress.tolerance("fid", spread, checkpoints) == pytest.approx(regress.TOL_CKPT * checkpoints.std())


def test_cpu_time_of_one_slowed_cell_fails_a_uniformly_slower_machine_passes() -> None:
    base, now = _baseline(), _reproduced()
    assert _failed(cputime.compare(base, now)) == []
    cell = (now["method"] == "ddim") & (now["nfe_requested"] == 20)
    slowed = now.assign(cpu_ms_per_image=now["cpu_ms_per_image"].where(~cell, now["cpu_ms_per_image"] * 2.5))
    assert _failed(cputime.compare(base, slowed)) == [("ddim NFE 20", "cpu/ref")]
    machine = now.assign(cpu_ms_per_image=now["cpu_ms_per_image"] * 2.5, **{cputime.COLUMN: now[cputime.COLUMN] * 2.5})
    assert _failed(cputime.compare(base, machine)) == []
    no_reference = now.drop(columns=[cputime.COLUMN])
    assert _failed(cputime.compare(base, no_reference)) == [("cpu time", "reference")]


def test_reference_workload_is_timed_in_cpu_milliseconds() -> None:
    torch.set_num_threads(1)
    assert 0.1 < cputime.reference_ms(repeats=3) < 10_000


def test_main_exits_1_on_a_smoke_regression_and_0_without(monkeypatch, capsys) -> None:
    now = _reproduced()
    monkeypatch.setattr(regress, "run_cells", lambda *args: now.assign(fid=now["fid"] * 2))
    assert regress.main(["--only", "smoke"]) == 1
    out = capsys.readouterr().out
    assert "FAIL ddim NFE 10" in out and "checks failed" in out and "bit for bit" in out
    monkeypatch.setattr(regress, "run_cells", lambda *args: now)
    assert regress.main(["--only", "smoke"]) == 0
    assert "all" in capsys.readouterr().out


def test_main_exits_1_when_an_oracle_sample_moves(tmp_path: Path, monkeypatch, capsys) -> None:
    # The oracle's own run is tested in test_oracle.py; here the committed cells stand in for it.
    monkeypatch.setattr(oracle, "run_cells", lambda: oracle.load())
    assert regress.main(["--only", "oracle"]) == 0
    doc = json.loads(oracle.BASELINE.read_text())
    doc["cells"][0]["first"][0][0] += 1e-5
    moved = tmp_path / "oracle.json"
    moved.write_text(json.dumps(doc))
    assert regress.main(["--only", "oracle", "--oracle-baseline", str(moved)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL oracle {doc['cells'][0]['method']}" in out and "samples[:16]" in out
