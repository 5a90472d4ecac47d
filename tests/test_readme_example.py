"""The README's "Benchmark your own model or sampler" example, executed as written: a solver of the reader's own,
passed as a function, benched on the shipped digits DDPM; and it draws what the package's DDIM draws on the same
times (it is DDIM written out), so the example teaches something true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- example: own-solver"


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert MARKER in text, "the README lost its executed example"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.DOTALL)
    assert block is not None
    return block.group(1)


def test_the_example_is_short_and_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code = readme_example()
    assert len(code.strip().splitlines()) < 20
    monkeypatch.chdir(tmp_path)  # its rows go to results/local/ under the working directory, not the repository's
    scope: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code, executed as a reader would
    printed = capsys.readouterr().out
    assert "ddim_by_hand@logsnr" in printed
    rows = scope["rows"]
    assert len(rows) == 1 and rows["nfe"].item() == 10 and 0 < rows["fid"].item() < 50
    assert (tmp_path / "results" / "local" / "results.csv").exists()

    # The function in the README is DDIM: on the same schedule, the package's own walk gives the same samples.
    from trilemma_bench.denoisers import eps_denoiser
    from trilemma_bench.samplers import ddim_walk
    from trilemma_bench.solver_schedule import logsnr

    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    model = eps_denoiser(lambda x, t: torch.tanh(x) * (1 + t.double().view(-1, 1) / 1000).float(), alpha_bar)
    x_T = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    times = logsnr(model, 10)
    torch.testing.assert_close(scope["ddim_by_hand"](model, x_T, times), ddim_walk(model, x_T, times),
                               rtol=0, atol=1e-5)
