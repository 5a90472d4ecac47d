"""A timing run: the one process, on one day, whose timings may be compared with each other.

Quality figures do not depend on the machine; timings do, and on a shared machine they depend on the day
too (networks of identical FLOPs ran 1.4-2.15x faster on one day than another, each row saying "AMD EPYC,
1 thread"). So every timed row names its run: ``timing_run`` (``<kind>-<UTC time>-<host>``), with the host,
the 1-minute load average before the run and when the row was written, and the threads. The report draws
and ranks on one ms axis only cells of one run; ``trilemma-bench retime`` re-times a whole table in one run.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
from dataclasses import dataclass

import torch

# Columns a timed row carries about its run (the report splits sections by ``timing_run``).
COLUMNS = ("timing_run", "timing_host", "timing_order", "timing_load_before", "timing_load_after")


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): how many other jobs shared the machine."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return math.nan


_SHARED: dict[str, TimingRun] = {}  # named runs of this process, shared by the benches that join them


@dataclass(frozen=True)
class TimingRun:
    """One timing run. ``order``: ``sequential`` (a bench: each cell's batches in a row) or ``round-robin``
    (retime: every cell timed once per round, so drift and load hit all cells alike)."""

    id: str
    host: str
    order: str
    load_before: float
    threads: int

    @classmethod
    def start(cls, kind: str, order: str) -> TimingRun:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        host = socket.gethostname()
        return cls(f"{kind}-{now}-{host}", host, order, load_average(), torch.get_num_threads())

    @classmethod
    def shared(cls, name: str) -> TimingRun:
        """The run ``name`` of this process, started at its first call: a script's benches in one process, one after
        another on one day (``sequential``), whose times may then be compared (``bench(..., timing_run=name)``)."""
        if name not in _SHARED:
            _SHARED[name] = cls.start(name, "sequential")
        return _SHARED[name]

    def columns(self) -> dict[str, object]:
        """What a row timed in this run records; the load after is read now (when the row is written)."""
        return {"timing_run": self.id, "timing_host": self.host, "timing_order": self.order,
                "timing_load_before": self.load_before, "timing_load_after": load_average()}
