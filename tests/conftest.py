"""Test-wide settings: a private cache per session, so tests never read or pollute a user's cache."""

from __future__ import annotations

import os

import pytest
import torch

# The cores shared among pytest-xdist's workers: two workers of two threads each on two cores spin against each other
# (a tiny UNet's forward pass took 1 s instead of 10 ms).
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    if "TRILEMMA_BENCH_TEST_CACHE" in os.environ:  # opt-in reuse of a warm cache for local runs
        os.environ["TRILEMMA_BENCH_CACHE"] = os.environ["TRILEMMA_BENCH_TEST_CACHE"]
    else:
        os.environ["TRILEMMA_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
