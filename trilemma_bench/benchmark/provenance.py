"""Where a row's numbers came from: the code's commit, the weights' digest, paths that travel.

``git_commit`` marks a checkout dirty only for changes to code and configuration: the results and
reports a benchmark writes into the repository are its output, not a change to what produced it.
Paths are recorded relative to the cache (``<cache>/checkpoints/...``), never as the absolute path
of the machine that ran them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from ..paths import cache_dir
from ..weights import DIGEST_CHARS, REPO_DIR, weights_id

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What a benchmark run writes into a checkout, and prose: changing these does not change the numbers.
NOT_CODE = ("results", "benchmarks/results", "benchmarks/baseline", "docs", "README.md")


def git_commit(where: Path | None = None) -> str:
    """Short commit of the checkout holding ``where`` (default: this package), ``+dirty`` when tracked code
    or configuration differs from it; ``unknown`` outside a git checkout."""
    where = where or PACKAGE_DIR

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        top = git("rev-parse", "--show-toplevel")
        excluded = [f":(exclude,top){p}" for p in NOT_CODE]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", top, *excluded],
            cwd=where, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def checkpoint_id(model: torch.nn.Module, stem: str) -> str:
    """``<model>-<preset>-<digest>``: names the sampling weights (what a shipped file holds, :mod:`..weights`),
    not where the cache happens to be; a shipped file of these weights carries the same name."""
    return f"{stem}-{weights_id(model)}"


def weights_digest(checkpoint: str) -> str:
    """The weights SHA-1 prefix that ends a :func:`checkpoint_id`, or "" for a checkpoint named otherwise."""
    tail = checkpoint.rsplit("-", 1)[-1]
    return tail if len(tail) == DIGEST_CHARS and all(c in "0123456789abcdef" for c in tail) else ""


def portable_path(path: Path) -> str:
    """``<cache>/...`` for a path inside the cache, the repository-relative path of a shipped file
    (``models/...``), the file name alone for any other absolute path."""
    path = Path(path).resolve()
    if path.is_relative_to(REPO_DIR / "models"):
        return str(path.relative_to(REPO_DIR))
    try:
        return str(Path("<cache>") / path.relative_to(cache_dir().resolve()))
    except ValueError:
        return path.name
