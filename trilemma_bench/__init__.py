"""trilemma-bench: speed, quality and diversity of diffusion acceleration methods under one protocol.

``trilemma_bench.bench("ddim", nfe=[10, 20], seeds=[0, 1, 2])`` returns the rows as a DataFrame (see
:mod:`trilemma_bench.api`); the command line is ``trilemma-bench``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["BenchRequest", "bench"]


def __getattr__(name: str):
    # Lazy: `import trilemma_bench` stays light (no torch) until the API is used.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'trilemma_bench' has no attribute {name!r}")
