"""The Python entry point: ``trilemma_bench.bench(...)`` runs what ``trilemma-bench bench`` runs and returns the
rows as a pandas DataFrame.

    import trilemma_bench as tb
    rows = tb.bench("ddim", nfe=[10, 20], seeds=[0, 1, 2], threads=1)
    rows[["method", "nfe", "seed", "fid", "coverage", "ms_per_image"]]

Every option is the command line's, typed (:class:`BenchRequest`); the request is validated (unknown method, NFE
the sampler refuses, too few samples) before any training, with the same messages.
"""

from __future__ import annotations

import pandas as pd

from .benchmark.request import BenchRequest

__all__ = ["BenchRequest", "bench"]


def bench(method: str = "ddim", **options: object) -> pd.DataFrame:
    """Bench ``method`` (see :class:`BenchRequest` for the options: ``solver=``, ``schedule=`` and ``model=`` put your
    own solver, schedule or network on it) and return its cells' rows; the rows are also
    written to ``results`` (default: results/local/, as the command line does)."""
    from .benchmark.harness import run_bench

    return pd.DataFrame.from_records(run_bench(BenchRequest(method=method, **options)))
