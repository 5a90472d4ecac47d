"""What a bench is asked to do, typed: built once by the command line (or ``trilemma_bench.bench``), read by the
config, the harness and the distributed workers. Nothing below the command line reads its parsed arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import LOCAL_DIR


@dataclass(frozen=True)
class BenchRequest:
    """The options of ``trilemma-bench bench``, with its defaults."""

    method: str = "ddim"
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
    # Schedule apart from solver: the method's network walked by this solver (a name, module:function, or from Python
    # the function or Solver itself) on this schedule (default: the solver's own); ``model``: a network of your own
    # (module:factory or diffusers:PATH).
    solver: str | Callable[..., Any] | None = None
    schedule: str | Callable[..., Any] | None = None
    model: str | None = None
    # Join this process's timing run of that name instead of starting one (a script benching many methods in one
    # process, one after another: their times share one axis in the report).
    timing_run: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", Path(self.results) if self.results is not None else LOCAL_DIR)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.nfe is not None:
            object.__setattr__(self, "nfe", tuple(self.nfe))
