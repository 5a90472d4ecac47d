"""The README's numbers are generated from the committed results: the committed blocks are what the command
writes, a hand-edited number fails the check, and the README is short before it sends the reader to docs/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from trilemma_bench.cli import main
from trilemma_bench.report.readme import BLOCKS, stale_blocks, write_blocks

REPO = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in {"README.md", *(f for f, _ in BLOCKS.values())}:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    shutil.copytree(REPO / "results", root / "results", ignore=shutil.ignore_patterns("local", "report", "grids"))
    return root


def test_the_committed_readme_numbers_are_what_the_results_give() -> None:
    assert stale_blocks(REPO) == [], "run `trilemma-bench readme` and commit the result"


def test_a_hand_edited_number_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    block = re.search(r"<!-- generated:answer begin.*?<!-- generated:answer end -->", text, re.DOTALL).group(0)
    number = re.search(r"\d+\.\d+", block).group(0)
    edited = block.replace(number, str(round(float(number) + 0.1, 6)), 1)
    readme.write_text(text.replace(block, edited))
    assert stale_blocks(root) == ["README.md"]
    monkeypatch.chdir(root)
    assert main(["readme", "--check"]) == 2  # the CLI fails with the file named
    assert write_blocks(root) == ["README.md"] and stale_blocks(root) == []
    assert readme.read_text() == text  # regenerating restores the committed text exactly


def test_the_readme_is_short_before_it_links_into_docs() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if "](docs/" in line and not line.startswith("!["))
    assert first < 150
    assert any("docs/img/report-first-screen.png" in line for line in lines[:15])  # the first screen shows the answer
