"""Console output shared by the CLI, training and the harness."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)


def log(message: str) -> None:
    console.print(f"[bold cyan]trilemma-bench[/] {message}")
