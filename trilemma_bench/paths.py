"""Where trilemma-bench keeps what it downloads, trains and measures."""

from __future__ import annotations

import os
from pathlib import Path

# The committed reference results, written only when their maintainer asks (``--results results``), and where a
# user's runs go by default: git-ignored, so a bench never changes the published rows.
REFERENCE_DIR = Path("results")
LOCAL_DIR = Path("results/local")


def cache_dir() -> Path:
    """Root of the cache: datasets, checkpoints, feature extractors, reference statistics.

    ``$TRILEMMA_BENCH_CACHE`` overrides the default ``~/.cache/trilemma-bench``.
    """
    root = os.environ.get("TRILEMMA_BENCH_CACHE") or Path.home() / ".cache" / "trilemma-bench"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub_cache(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
