"""The Python entry point: ``trilemma_bench.bench(...)`` runs what ``trilemma-bench bench`` runs and returns the
rows as a pandas DataFrame.

    import trilemma_bench as tb
    rows = tb.bench("ddim", nfe=[10, 20], seeds=[0, 1, 2], threads=1)
    rows[["method", "nfe", "seed", "fid", "coverage", "ms_per_image"]]

Every option is the command line's, typed; the request is validated (unknown method, NFE the sampler refuses,
too few samples) before any training, with the same messages.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .paths import LOCAL_DIR


@dataclass(frozen=True)
class BenchRequest:
    """What to bench; the fields and defaults of ``trilemma-bench bench``'s options."""

    method: str
    preset: str = "digits"
    dataset: str | None = None
    nfe: Sequence[int] | None = None  # None: the method's grid
    seeds: Sequence[int] = (0,)
    num_samples: int | None = None  # None: the preset's
    batch_size: int | None = None
    device: str = "auto"
    threads: int | None = None
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    extractor: str | None = None
    results: Path = LOCAL_DIR
    repeats: int | None = None
    bpd_images: int | None = None
    retrain: bool = False
    steps: int | None = None
    train_seed: int = 0
    weights: Path | None = None
    devices: int = 1
    strategy: str | None = None
    extra: dict = field(default_factory=dict)

    def namespace(self) -> argparse.Namespace:
        """The harness's view of the request (the command line builds the same)."""
        values = asdict(self)
        values.update(values.pop("extra"))
        values["nfe"] = list(self.nfe) if self.nfe is not None else None
        values["seeds"] = list(self.seeds)
        values["results"] = Path(self.results)
        return argparse.Namespace(**values)


def bench(method: str, **options) -> pd.DataFrame:
    """Bench ``method`` (see :class:`BenchRequest` for the options) and return its cells' rows; the rows are also
    written to ``results`` (default: results/local/, as the command line does)."""
    from .benchmark.harness import run_bench
    from .benchmark.timing import set_threads

    request = BenchRequest(method=method, **options)
    set_threads(request.threads)
    return pd.DataFrame.from_records(run_bench(request.namespace()))
