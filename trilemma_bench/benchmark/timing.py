"""The timing protocol of DESIGN.md ("Timing"), as one function over a batch sampler.

    warm-up (untimed) -> synchronize -> reset the memory high-water mark
    -> for each batch of the fixed size: start clock, sample, synchronize, stop clock
    -> median over batches

GPU: CUDA events around the sampler call only; CPU: ``time.perf_counter``. The process's CPU time per
batch (``time.process_time``, all threads) is recorded beside it: on a shared machine the wall clock
also measures the neighbours, a single-threaded run's CPU time much less. Whatever happens to the
samples afterwards (feature extraction, metrics, writing files) is outside the timed region. Every
batch of the sample set is one repeat (no sample is drawn only to be timed), and batch 0 is timed
again until there are ``min_repeats`` timings: the median then never rests on a single run.

Peak memory means two different things, recorded as ``peak_mem_kind``:

- ``cuda_allocated``: ``torch.cuda.max_memory_allocated`` over the timed region, tensors only
  (the caching allocator may hold more);
- ``cpu_rss_hwm``: the process's resident-set high-water mark (``VmHWM``) over the timed region,
  reset first through ``/proc/self/clear_refs``. It is the whole process (interpreter, libraries,
  the model, cached data), not the sampler's own allocations;
- ``cpu_rss_hwm_lifetime``: as above where the mark cannot be reset: the peak since the process began.
"""

from __future__ import annotations

import contextlib
import math
import re
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

# Dense peak FLOP/s from the vendors' datasheets (the sparsity figures halved): "float32" is the
# non-tensor-core rate, "tf32" the tensor-core rate float32 matmuls get when TF32 is allowed, "bfloat16"
# the tensor-core rate under bf16 autocast. Matched by substring of the device name, first match wins:
# the NVL and PCIe parts (lower clocks and power) must come before the generic H100/H200 (SXM) entries.
PEAK_FLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 NVL", {"bfloat16": 835e12, "tf32": 417.5e12, "float32": 60e12}),
    ("H100 PCIe", {"bfloat16": 756e12, "tf32": 378e12, "float32": 51.2e12}),
    ("H100", {"bfloat16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12}),
    ("H200 NVL", {"bfloat16": 835e12, "tf32": 417.5e12, "float32": 60e12}),
    ("H200", {"bfloat16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12}),
    ("A100", {"bfloat16": 312e12, "tf32": 156e12, "float32": 19.5e12}),
    ("L40S", {"bfloat16": 362e12, "tf32": 183e12, "float32": 91.6e12}),
    ("L4", {"bfloat16": 121e12, "tf32": 60e12, "float32": 30.3e12}),
]


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None keeps torch's default) before any work; every timing records the count.

    On a shared 2-core machine, two torch processes with 2 threads each ran 4-40x slower: 1 runs steadily.
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be positive, got {threads}")
    torch.set_num_threads(threads)


def peak_flops(device_name: str, dtype: str) -> float:
    """Datasheet peak FLOP/s of the GPU named ``device_name`` for ``dtype``; NaN when unknown."""
    for key, peaks in PEAK_FLOPS:
        if key.lower() in device_name.lower():
            return peaks.get(dtype, math.nan)
    return math.nan


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (the thread count is recorded in a column of its own)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "cpu"


def math_precision(device: torch.device, dtype: str) -> dict[str, Any]:
    """The precision a network's matmuls actually run in, and the switches that decide it.

    float32 on a GPU runs on TF32 tensor cores when ``torch.backends.cuda.matmul.allow_tf32`` is on
    (``set_float32_matmul_precision("high")`` turns it on); convolutions follow cuDNN's own flag.
    ``peak_precision`` is the datasheet row the achieved FLOP/s are compared with.
    """
    if device.type != "cuda":
        return {"tf32_matmul": False, "tf32_cudnn": False, "peak_precision": dtype}
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    peak = dtype if dtype == "bfloat16" else ("tf32" if matmul or cudnn else "float32")
    return {"tf32_matmul": bool(matmul), "tf32_cudnn": bool(cudnn), "peak_precision": peak}


class FlopProbe(nn.Module):
    """Counts the FLOPs of the first call of a network (matmuls, convolutions, attention; not the
    elementwise ops, as ``torch.utils.flop_counter`` does), then gets out of the way.

    The count runs on the eager ``net``; later calls go to ``then`` (e.g. its ``torch.compile``
    version, which the counter's dispatch mode should not trace) when given.
    """

    def __init__(self, net: Callable[..., Tensor], then: Callable[..., Tensor] | None = None):
        super().__init__()
        self.net = net
        self.then = then or net
        self.flops_per_call: int | None = None
        self.batch: int | None = None

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if self.flops_per_call is not None:
            return self.then(x, *args, **kwargs)
        with FlopCounterMode(display=False) as counter:
            out = self.net(x, *args, **kwargs)
        self.flops_per_call, self.batch = counter.get_total_flops(), x.shape[0]
        return out

    def rates(self, nfe: int, timing: Timing, precision: str) -> dict[str, float]:
        """Network GFLOPs per image (one call's count x measured NFE), achieved TFLOP/s, and % of the GPU's
        peak for ``precision`` (float32, tf32 or bfloat16: what the matmuls ran in, see math_precision)."""
        if not self.flops_per_call or not self.batch:
            return {"gflops_per_image": math.nan, "achieved_tflops": math.nan, "pct_of_peak": math.nan}
        gflops = self.flops_per_call / self.batch * nfe / 1e9
        achieved = gflops * 1e9 * timing.images_per_s
        peak = peak_flops(timing.device_name, precision) if timing.device == "cuda" else math.nan
        return {
            "gflops_per_image": gflops,
            "achieved_tflops": achieved / 1e12,
            "pct_of_peak": 100.0 * achieved / peak,
        }


@dataclass
class Timing:
    """What one timed run measured; ``ms_per_batch`` is the median over ``times_ms`` (``STATISTIC``)."""

    STATISTIC = "median"

    batch_size: int
    times_ms: list[float]
    device: str
    device_name: str
    threads: int
    peak_mem_mb: float
    peak_mem_kind: str
    cpu_times_ms: list[float] = field(default_factory=list)  # process CPU time per batch, all threads
    warmup_ms: float = math.nan  # the untimed warm-up, compilation included

    @property
    def cpu_ms_per_image(self) -> float:
        """Median process CPU time per image. On a shared CPU, wall time also measures the neighbours;
        the CPU time of a single-threaded run much less so (with n threads it is up to n x wall)."""
        return statistics.median(self.cpu_times_ms) / self.batch_size if self.cpu_times_ms else math.nan

    @property
    def ms_per_batch(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def ms_per_image(self) -> float:
        return self.ms_per_batch / self.batch_size

    @property
    def images_per_s(self) -> float:
        return 1000.0 / self.ms_per_image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vm_kib(field_name: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _reset_peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda_allocated"
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        _vm_kib("VmHWM")
        return "cpu_rss_hwm"
    except (OSError, AttributeError):
        return "cpu_rss_hwm_lifetime"


def _peak_memory_mb(device: torch.device, kind: str) -> float:
    if kind == "cuda_allocated":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if kind == "cpu_rss_hwm":
        return _vm_kib("VmHWM") / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def precision(device: torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast when asked, else nothing: the network's own dtype (float32)."""
    if bf16:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def time_batches(
    sample_batch: Callable[[int], Tensor],
    n_batches: int,
    batch_size: int,
    *,
    device: torch.device | str,
    warmup: Callable[[], Any] | None = None,
    warmup_runs: int = 1,
    min_repeats: int = 5,
    after_batch: Callable[[int], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> tuple[list[Tensor], Timing]:
    """Time ``sample_batch(i)`` for each of the ``n_batches`` full batches of ``batch_size``.

    ``warmup`` (default: sampling batch 0) runs ``warmup_runs`` times untimed first: it should exercise
    the same kernels at the same batch shape (lazy initialisation, allocator, autotuning, compilation).
    ``after_batch(i)`` (a progress bar, say) runs after each timed batch, outside the timed region.
    Returns the samples of every batch, in order, and the timing.
    """
    device = torch.device(device)
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"need at least one batch of at least one sample, got {n_batches} x {batch_size}")
    w0 = time.perf_counter()
    for _ in range(warmup_runs):
        (warmup or (lambda: sample_batch(0)))()
    _sync(device)
    warmup_ms = (time.perf_counter() - w0) * 1000.0
    mem_kind = _reset_peak_memory(device)

    outputs: list[Tensor] = []
    times_ms: list[float] = []
    cpu_times_ms: list[float] = []
    for i in range(max(n_batches, min_repeats)):
        c0 = cpu_clock()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = sample_batch(i % n_batches)
            end.record()
            end.synchronize()
            times_ms.append(start.elapsed_time(end))
        else:
            t0 = clock()
            out = sample_batch(i % n_batches)
            times_ms.append((clock() - t0) * 1000.0)
        cpu_times_ms.append((cpu_clock() - c0) * 1000.0)
        if i < n_batches:  # the extra repeats of batch 0 are timed only
            outputs.append(out)
        if after_batch is not None:
            after_batch(i)

    return outputs, Timing(
        batch_size=batch_size,
        times_ms=times_ms,
        device=device.type,
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        peak_mem_mb=_peak_memory_mb(device, mem_kind),
        peak_mem_kind=mem_kind,
        cpu_times_ms=cpu_times_ms,
        warmup_ms=warmup_ms,
    )
