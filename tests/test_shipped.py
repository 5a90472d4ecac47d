"""Shipped weights: every committed row names a file in models/ whose tensors hash to that name; a shipped
model re-scores a committed row; models resolve shipped -> cached -> trained; a bench leaves git status clean."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from trilemma_bench.benchmark.results import read_results
from trilemma_bench.methods import get_method
from trilemma_bench.presets import PRESETS
from trilemma_bench.train import curve_files, run_name, ship_model, train_model
from trilemma_bench.weights import (
    SHIPPED_DIR,
    Shipped,
    WeightsError,
    find_shipped,
    load_weights,
    read_meta,
    sampling_state,
    weights_id,
)

REPO = Path(__file__).resolve().parents[1]
TINY = PRESETS["smoke"].with_steps(30)


def _tables() -> list[Path]:
    """Every committed results table: results/ and each study's folder (results/solvers/, results/mnist/, ...);
    the training-compute rows (results/curves/) cite kept checkpoints, checked below."""
    studies = sorted(d for d in (REPO / "results").iterdir() if (d / "results.csv").exists() and d.name != "curves")
    return [REPO / "results", *studies]


def _committed() -> list[tuple[str, str, str, int, str]]:
    """(dataset, preset, method, NFE asked for, checkpoint) of every committed model, once each."""
    rows = pd.concat([read_results(d) for d in _tables()], ignore_index=True)
    cells = rows[rows["method"] != "real"].drop_duplicates("checkpoint")
    return [(r.dataset, r.preset, r.method, int(r.nfe_requested), r.checkpoint) for r in cells.itertuples()]


def _sha1_of_tensors(path: Path) -> str:
    """The digest written out from its definition (SHA-1 over name, dtype, shape and bytes, names sorted), apart
    from the package's own function."""
    tensors = load_file(str(path))
    h = hashlib.sha1()
    for name in sorted(tensors):
        t = tensors[name].contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(tensors[name].shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@pytest.mark.parametrize(("dataset", "preset", "method", "nfe", "checkpoint"), _committed())
def test_every_committed_checkpoint_is_a_shipped_file_with_that_digest(dataset: str, preset: str, method: str,
                                                                       nfe: int, checkpoint: str) -> None:
    path = SHIPPED_DIR / dataset / f"{checkpoint}.safetensors"
    assert path.exists(), f"a committed results table cites {checkpoint}, but {path.relative_to(REPO)} is not shipped"
    assert _sha1_of_tensors(path).startswith(checkpoint.rsplit("-", 1)[1])
    assert all(not t.is_floating_point() or t.dtype == torch.float32 for t in load_file(str(path)).values())
    # The preset still asks for exactly this model, so `make bench` finds it instead of training.
    spec = get_method(method).spec_for(nfe)
    expected = PRESETS[preset].training_config(spec.name, spec.options)
    found = find_shipped(spec.tag, preset, dataset, expected, seed=read_meta(path).get("train_seed", 0))
    assert found is not None and found.path == path


def test_no_shipped_weights_are_stored_twice() -> None:
    """A curve's last checkpoint is the model itself: shipped as a link to it, so the tracked weights (what a clone
    downloads and what the size budget counts) hold each file's bytes once."""
    seen: dict[str, Path] = {}
    for path in sorted(SHIPPED_DIR.rglob("*.safetensors")):
        if path.is_symlink():
            assert path.resolve().is_file() and not path.resolve().is_symlink(), f"{path} links to nothing"
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        assert digest not in seen, f"{path.relative_to(REPO)} repeats {seen[digest].relative_to(REPO)}: link it"
        seen[digest] = path


def test_every_committed_curve_row_cites_a_shipped_checkpoint_of_its_training() -> None:
    """The training-compute rows (results/curves/) name checkpoints kept on the way: each is a file in
    models/<dataset>/curves/ whose tensors hash to its name and whose JSON says how far it was trained."""
    rows = read_results(REPO / "results" / "curves")
    cells = rows[rows["method"] != "real"].drop_duplicates("checkpoint")
    assert len(cells) >= 6
    for r in cells.itertuples():
        path = SHIPPED_DIR / r.dataset / "curves" / f"{r.checkpoint}.safetensors"
        assert path.exists(), f"results/curves cites {r.checkpoint}, not shipped"
        assert _sha1_of_tensors(path).startswith(r.checkpoint.rsplit("-", 1)[1])
        meta = read_meta(path)
        assert meta["train_steps_done"] == r.train_steps
        assert f"-s{int(r.train_steps):06d}-" in r.checkpoint


def _rebench_committed(tmp_path: Path, method: str, nfe: int) -> None:
    """A committed digits cell (seed 0, the first training) re-benched from the shipped weights: the same FID and
    coverage to 4 digits, and the row names the same checkpoint."""
    from trilemma_bench.cli import main

    rows = read_results(REPO / "results")
    first = pd.to_numeric(rows["train_seed"], errors="coerce").fillna(0) == 0  # the shipped default training
    ref = rows[(rows["method"] == method) & (rows["dataset"] == "digits") & (rows["nfe"] == nfe) & (rows["seed"] == 0)
               & first]
    assert len(ref) == 1, f"the committed digits {method}@{nfe} seed-0 row of the first training"
    out = tmp_path / "results"
    assert main(["bench", "--method", method, "--preset", "digits", "--nfe", str(nfe), "--seeds", "0",
                 "--results", str(out), "--bpd-images", "0"]) == 0
    mine = read_results(out)
    cell = mine[mine["method"] == method].iloc[0]
    assert cell["weights_source"] == "shipped"
    assert cell["checkpoint"] == ref["checkpoint"].iloc[0]
    assert cell["fid"] == pytest.approx(ref["fid"].iloc[0], rel=1e-4)
    assert cell["coverage"] == pytest.approx(ref["coverage"].iloc[0], rel=1e-4)


def test_shipped_weights_reproduce_a_committed_row(tmp_path: Path) -> None:
    """The cheapest committed cell: the f = 4 latent model and its decoder (a few seconds of sampling)."""
    _rebench_committed(tmp_path, "ldm-f4-ddim", 10)


@pytest.mark.slow
def test_shipped_ddpm_reproduces_its_committed_ddim_row(tmp_path: Path) -> None:
    """The main command's model: 2,000 samples at 10 NFE through the full-size UNet (about 30 s on one thread)."""
    _rebench_committed(tmp_path, "ddim", 10)

def test_models_resolve_shipped_then_cached_then_trained(tmp_path: Path) -> None:
    cache, shipped = tmp_path / "cache", tmp_path / "models"
    trained, _ = train_model("ddpm", TINY, device="cpu", root=cache, shipped_root=shipped)
    assert trained.weights_source == "trained"
    cached, _ = train_model("ddpm", TINY, device="cpu", root=cache, shipped_root=shipped)
    assert cached.weights_source == "cached"
    path = ship_model("ddpm", TINY, root=cache, shipped_root=shipped)
    kept = sorted((shipped / "toy2d" / "curves").glob(f"{run_name('ddpm', TINY)}-s*.safetensors"))
    assert kept and kept[-1].is_symlink() and kept[-1].resolve() == path.resolve()  # the model itself: a link
    assert curve_files("ddpm", TINY, root=cache, shipped_root=shipped) == kept
    assert path.name == f"ddpm-smoke-{weights_id(trained)}.safetensors"
    assert set(load_file(str(path))) == set(sampling_state(trained))  # the EMA copy only, no raw network
    assert not any(k.startswith("net.") for k in load_file(str(path)))
    used, where = train_model("ddpm", TINY, device="cpu", root=cache, shipped_root=shipped)
    assert used.weights_source == "shipped" and where == path
    assert weights_id(used) == weights_id(trained)
    x, t = torch.randn(16, 2), torch.randint(0, 1000, (16,))
    assert torch.equal(used.denoiser()(x, t), trained.denoiser()(x, t))
    # Another configuration is never served by these weights; --retrain trains whatever is shipped.
    assert find_shipped("ddpm", "smoke", "toy2d", TINY.with_steps(31).training_config("ddpm"), root=shipped) is None
    assert find_shipped("ddpm", "smoke", "toy2d", TINY.training_config("ddpm"), seed=1, root=shipped) is None
    again, _ = train_model("ddpm", TINY, device="cpu", root=cache, shipped_root=shipped, retrain=True)
    assert again.weights_source == "trained"
    with pytest.raises(ValueError, match="shipped already"):
        ship_model("ddpm", TINY, root=cache, shipped_root=shipped)


def test_an_altered_shipped_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    cache, shipped = tmp_path / "cache", tmp_path / "models"
    train_model("ddpm", TINY, device="cpu", root=cache, shipped_root=shipped)
    path = ship_model("ddpm", TINY, root=cache, shipped_root=shipped)
    kept = sorted((shipped / "toy2d" / "curves").glob(f"{run_name('ddpm', TINY)}-s*.safetensors"))
    assert kept and kept[-1].is_symlink() and kept[-1].resolve() == path.resolve()  # the model itself: a link
    assert curve_files("ddpm", TINY, root=cache, shipped_root=shipped) == kept
    state = load_file(str(path))
    key = min(state)
    state[key] = state[key] + 1e-3
    from safetensors.torch import save_file

    save_file(state, str(path))
    from trilemma_bench.train import build_model

    with pytest.raises(WeightsError, match="altered or damaged"):
        load_weights(build_model("ddpm", TINY), Shipped(path, read_meta(path)))
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="missing or not JSON"):
        find_shipped("ddpm", "smoke", "toy2d", TINY.training_config("ddpm"), root=shipped)


@pytest.mark.slow
def test_a_bench_in_a_fresh_clone_leaves_git_status_clean(tmp_path: Path) -> None:
    """The working tree's files, committed in a new repository, benched the way `make bench` runs it: the rows,
    grids and report land in the ignored results/local/, the model in the cache; nothing tracked changes."""
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=clone, check=True)
    run = [sys.executable, "-m", "trilemma_bench.cli"]
    env = {"PATH": "/usr/bin:/bin", "TRILEMMA_BENCH_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    for cmd in (["bench", "--method", "ddim", "--preset", "smoke", "--steps", "20", "--nfe", "2", "--seeds", "0",
                 "--num-samples", "200"], ["report"]):
        done = subprocess.run([*run, *cmd], check=False, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (clone / "results" / "local" / "results.csv").exists()
    assert (clone / "results" / "local" / "report" / "index.html").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status


def test_ship_from_the_cli_leaves_the_kept_checkpoints_out_when_asked(tmp_path: Path, monkeypatch) -> None:
    from trilemma_bench import weights
    from trilemma_bench.cli import main

    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "models")
    tiny = ["--method", "ddpm", "--preset", "smoke", "--steps", "30", "--threads", "1"]
    assert main(["train", *tiny]) == 0
    assert main(["ship", *tiny, "--no-curves"]) == 0
    assert len(list((tmp_path / "models" / "toy2d").glob("ddpm-smoke-*.safetensors"))) == 1
    assert not (tmp_path / "models" / "toy2d" / "curves").exists()
