"""Sampling and evaluation sharded across processes with Lightning Fabric (training's DDP is the Trainer's).

Each process samples a contiguous block of whole batches of a cell: the same batches, at the same batch
size, that a single process samples, and with per-image random streams (noise.py) the same images,
bit for bit. It extracts their features; the features (and mode labels) are all-gathered in rank
order, so every process holds exactly what one process would have computed; every process then scores
the whole set, so none waits on a collective that another skips, and rank 0 writes the rows.

Processes are spawned (``ddp_spawn``): a bench trains, then samples, inside one command, which a
launcher that re-runs the command per process (``ddp``) would repeat whole in every process.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

SPAWN = "ddp_spawn"


@dataclass
class Shard:
    """This process's place among ``world`` processes (one process: rank 0 of 1, nothing to gather)."""

    rank: int = 0
    world: int = 1
    fabric: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def block(self, n: int, batch: int) -> tuple[int, int]:
        """Images [lo, hi) this process samples: whole batches, the untimed partial batch on the last rank."""
        return shard_block(n, batch, self.rank, self.world)

    def gather(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every process's rows of each tensor, concatenated in rank order (blocks are in image order)."""
        if self.world == 1:
            return parts
        return {key: self._gather_rows(value) for key, value in parts.items()}

    def gather_numbers(self, value: float) -> list[float]:
        if self.world == 1:
            return [value]
        out = self.fabric.all_gather(torch.tensor([value], dtype=torch.float64, device=self.fabric.device))
        return out.flatten().cpu().tolist()

    def _gather_rows(self, t: Tensor) -> Tensor:
        counts = [int(c) for c in self.fabric.all_gather(torch.tensor([len(t)], device=self.fabric.device)).flatten()]
        pad = max(counts) - len(t)  # all_gather needs one shape on every process
        padded = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))]).to(self.fabric.device)
        gathered = self.fabric.all_gather(padded).cpu()
        return torch.cat([gathered[r, :c] for r, c in enumerate(counts)])


def shard_block(n: int, batch: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous blocks of whole batches per rank; the last rank also takes the final partial batch."""
    full, partial = divmod(n, batch)
    per = math.ceil(full / world)
    lo, hi = min(rank * per, full) * batch, min((rank + 1) * per, full) * batch
    if rank == world - 1 and partial:
        hi = n
    return lo, hi


def check_shards(n: int, batch: int, world: int) -> None:
    """Every process must time at least one full batch; say how to get there otherwise."""
    if world < 1:
        raise ValueError(f"--devices must be positive, got {world}")
    if world == 1:
        return
    empty = [r for r in range(world) if shard_block(n, batch, r, world)[1] - shard_block(n, batch, r, world)[0] < batch]
    if empty:
        raise ValueError(
            f"{n} samples in batches of {batch} give processes {empty} of {world} no full batch to time: "
            f"use --batch-size {max(1, n // world)} or smaller, or fewer --devices"
        )


def run_sharded(req: Any, plan: Any, devices: int, accelerator: str, *, make_config: Callable[[Any], Any],
                cells: Callable[..., list[dict[str, Any]]], commit: str, sources: dict[str, str]
                ) -> list[dict[str, Any]]:
    """Spawn ``devices`` processes that bench the cells together; returns rank 0's rows. Each process builds its
    config with ``make_config`` and runs ``cells`` (the harness passes both: this module sits below it)."""
    import lightning as L

    fabric = L.Fabric(accelerator=accelerator, devices=devices, strategy=SPAWN)
    # The request travels as its fields: Fabric's launcher walks the arguments' dataclasses and refuses frozen ones.
    return fabric.launch(_worker, type(req), dataclasses.asdict(req), plan, make_config, cells, commit, sources)


def _worker(fabric: Any, request_type: type, fields: dict[str, Any], plan: Any, make_config: Callable[[Any], Any],
            cells: Callable[..., list[dict[str, Any]]], commit: str, sources: dict[str, str]) -> list[dict[str, Any]]:
    import torch

    req = request_type(**fields)
    if req.threads is not None:
        torch.set_num_threads(req.threads)
    cfg = dataclasses.replace(make_config(req), device=fabric.device)
    return cells(cfg, plan, Shard(fabric.global_rank, fabric.world_size, fabric), commit=commit, sources=sources)
