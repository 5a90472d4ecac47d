"""trilemma-bench: speed, quality and diversity of diffusion acceleration methods under one protocol."""

__version__ = "0.1.0"
