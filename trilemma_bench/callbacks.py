"""Training callbacks: weights on a log-spaced schedule of steps (the training-compute curve), and one progress
bar over the whole run instead of one per tiny epoch."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from .weights import save_weights

# Batches (a GAN's iterations) after which the weights are kept: doubling, so quality against training compute is
# read on a log axis from one run that continues rather than restarts.
CURVE_STEPS = tuple(250 * 2**k for k in range(12))


def curve_steps(total: int) -> list[int]:
    """The schedule's steps up to ``total``, and ``total`` itself."""
    return sorted({s for s in CURVE_STEPS if s < total} | {total})


class TrainingClock:
    """Wall and CPU seconds (all threads) since training began."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"wall_seconds": round(time.perf_counter() - self.wall0, 1),
                "cpu_seconds": round(time.process_time() - self.cpu0, 1)}


class CurveCheckpoints(L.Callback):
    """Saves the sampling weights (EMA) at each step of :func:`curve_steps` into ``directory`` as shipped files
    (``<stem>-s<steps>-<digest>.safetensors``), with the seconds spent so far, so each can be benched later."""

    def __init__(self, directory: Path, stem: str, total: int, meta: dict[str, Any], clock: TrainingClock):
        self.directory, self.stem, self.meta, self.clock = directory, stem, meta, clock
        self.at = set(curve_steps(total))
        self.batches = 0
        self.pending = False

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.batches += 1
        self.pending = self.batches in self.at

    # Lightning runs callbacks' batch-end hooks before the module's, where the EMA takes the step: so the weights
    # of step n are saved when step n + 1 begins, or when training ends.
    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._save(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._save(trainer, module)

    def _save(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.pending or not trainer.is_global_zero:
            return
        self.pending = False
        meta = {**self.meta, "train_steps_done": self.batches, **self.clock.read(),
                "threads": torch.get_num_threads(), "host_cpus": os.cpu_count()}
        save_weights(module, self.directory, f"{self.stem}-s{self.batches:06d}", meta)


class StepProgress(L.Callback):
    """One bar for the whole run: steps done of the total, the latest training losses, the time left. On a
    terminal a rich bar; in a log (CI, nohup) a line every twentieth of the run."""

    def __init__(self, total: int, every: int = 10):
        self.total, self.every = total, every
        self.batches = 0
        self.progress: Any = None
        self.lines = max(1, total // 20)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.start = time.perf_counter()
        if trainer.is_global_zero and Console().is_terminal:
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[loss]}"), TimeRemainingColumn())
            self.task = self.progress.add_task("train", total=self.total, loss="")
            self.progress.start()

    def _losses(self, trainer: L.Trainer) -> str:
        losses = {k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        return " ".join(f"{k} {v:.4g}" for k, v in list(losses.items())[:3])

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.batches += 1
        done = self.batches == self.total
        if self.progress is not None and (self.batches % self.every == 0 or done):
            self.progress.update(self.task, completed=self.batches, loss=self._losses(trainer))
        elif self.progress is None and trainer.is_global_zero and (self.batches % self.lines == 0 or done):
            spent = time.perf_counter() - self.start
            left = spent / self.batches * (self.total - self.batches)
            print(f"training {self.batches}/{self.total} {self._losses(trainer)} "
                  f"({spent / 60:.1f} min, about {left / 60:.1f} min left)", flush=True)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
