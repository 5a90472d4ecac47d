"""Precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020).

All four come from k-nearest-neighbour balls around samples. The reference package ``prdc`` builds
the full N x N distance matrices (20k samples: 5 GB); here distances are produced one block of rows at
a time, so memory grows as block_rows x N, and everything runs on the device of the inputs.

Conventions, pinned to ``prdc`` 0.2 (``prdc/prdc.py``), so numbers are comparable with the papers' code:

* radius of a sample = distance to its k-th nearest neighbour in its own set, the sample itself
  excluded (prdc takes the (k+1)-th smallest distance of the row, which holds the zero self-distance;
  an exact duplicate of the sample therefore counts as a neighbour at distance 0);
* a point is inside a ball when ``distance < radius``, strictly. A sample whose radius is 0
  (more than k duplicates) thus contains nothing, as in prdc;
* distances are Euclidean, float32, computed the way scikit-learn's ``pairwise_distances`` does for
  float32 input, which prdc calls: the squared distance ``|x|^2 + |y|^2 - 2 x.y`` in float64, rounded
  to float32, then numpy's (correctly rounded) float32 square root. Matching that arithmetic, and not
  only the maths, keeps the strict comparisons identical to prdc's even on ties (integer-valued
  features give exact ties).

Why float64 GEMM and not ``torch.cdist``: cdist's default ``use_mm_for_euclid_dist_if_necessary``
uses the same norm expansion, but in float32, for more than 25 rows; the cancellation costs about
eps32 * |x|^2. On 3000 x 64 features centred at 3, 96% of its k-NN radii differed from prdc's (up to
4e-6 relative), which can flip strict comparisons (none flipped in that run).
``donot_use_mm_for_euclid_dist`` sums differences in float32: closer (3e-7), but 43% of radii still
differed and one coverage decision in 3000 flipped; it is also several times slower than the float64
GEMM on this CPU (2000 x 20000 x 64: 0.84 s against 0.15 s). The float64 GEMM is both the fastest
and the one that reproduces prdc. (On GPUs with weak float64, e.g. consumer cards, it costs speed;
H100/H200 have full-rate float64.)

Speed: nothing is square-rooted per pair. Rounding to float32 and the float32 square root are both
monotone, so "sqrt32(f32(d2)) < r" is the same as "d2 <= T(r)" for one float64 threshold per ball,
found once per radius (:func:`_inside_threshold`); each block is then one GEMM, one add and
comparisons, sized to stay in cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import Tensor

from .checks import as_features, check_min_samples, check_pair, check_positive_int

# Distances per block (rows x columns). On the CPU, 2**20 float64 values (8 MiB) plus their boolean
# masks stay in this machine's 32 MiB L3 cache; 8-16x larger blocks were 1.4-3.5x slower end to end
# (the passes over a block are memory-bound). A GPU wants fewer, larger launches: 2**26 (512 MiB).
_BLOCK_ELEMENTS = {"cpu": 2**20, "cuda": 2**26}


def _rows_per_block(n_rows: int, n_columns: int, chunk_size: int | None, device: torch.device) -> int:
    budget = _BLOCK_ELEMENTS.get(device.type, _BLOCK_ELEMENTS["cpu"])
    return min(n_rows, chunk_size or max(1, budget // n_columns))


Blocks = list[tuple[int, int]]
R = TypeVar("R")


RunBlocks = Callable[[int, int, Callable[[Blocks], R]], list[R]]


@contextmanager
def _block_workers(device: torch.device) -> Iterator[RunBlocks]:
    """Yield ``run(n_rows, step, work)``: rows cut into blocks of ``step``, ``work`` called once per
    worker with its share of the blocks; ``run`` returns the workers' results.

    On the CPU, blocks are dealt round-robin to torch.get_num_threads() Python threads, each running
    torch single-threaded: intra-op parallelism is set to 1 inside the ``with`` and restored after
    (so do not call this from several Python threads at once). Each block then stays in one core's
    cache and no operation waits on a fork-join barrier: with torch's own threads, each of the ~7
    small operations per block synchronizes both cores, which on a busy 2-core machine made the same
    10k x 10k run 5x slower than one thread (17 s against 3.3 s). torch releases the GIL inside its
    operations. One pool serves the whole call: fresh threads per pass left memory behind.
    """
    workers = torch.get_num_threads() if device.type == "cpu" else 1

    def serial(n_rows: int, step: int, work: Callable[[Blocks], R]) -> list[R]:
        return [work([(start, min(start + step, n_rows)) for start in range(0, n_rows, step)])]

    if workers == 1:
        yield serial
        return
    torch.set_num_threads(1)  # threads created from now on start with one intra-op thread
    try:
        with ThreadPoolExecutor(workers) as pool:

            def run(n_rows: int, step: int, work: Callable[[Blocks], R]) -> list[R]:
                blocks = [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]
                shares = [blocks[w::workers] for w in range(min(workers, len(blocks)))]
                return list(pool.map(work, shares))

            yield run
    finally:
        torch.set_num_threads(workers)


def _with_sq_norms(x: Tensor) -> tuple[Tensor, Tensor]:
    x64 = x.to(torch.float64)
    return x64, (x64 * x64).sum(dim=1)


def _block_sq_distances(rows: Tensor, rows_sq: Tensor, cols: Tensor, cols_sq: Tensor, out: Tensor) -> Tensor:
    """Squared distances in float64 into ``out``, summed in scikit-learn's order: (-2 x.y + |x|^2) + |y|^2."""
    torch.addmm(rows_sq.unsqueeze(1), rows, cols.T, alpha=-2.0, out=out)
    return out.add_(cols_sq.unsqueeze(0))


def _midpoint_squared(lo: Tensor, hi: Tensor) -> Tensor:
    """((lo + hi) / 2)^2 of adjacent float32 values, exact: 25 significant bits, squared 50, fit float64."""
    return ((lo.to(torch.float64) + hi.to(torch.float64)) / 2) ** 2


def _sqrt_f32(a: Tensor) -> Tensor:
    """Correctly rounded float32 square root of non-negative float32 ``a``.

    torch's vectorized CPU sqrt is not correctly rounded (torch 2.13, AVX-512: 17% of random float32
    inputs and 1% of float64 ones come out one ulp off numpy's IEEE sqrt), and prdc's radii are
    numpy's. So: a float64 first guess, then exact corrections. sqrt(a) is never exactly a float32
    midpoint, so RN(sqrt(a)) = r exactly when midpoint(pred r, r)^2 < a < midpoint(r, succ r)^2.
    """
    a64 = a.to(torch.float64)
    r = a64.sqrt().to(torch.float32)
    zero, inf = torch.zeros_like(r), torch.full_like(r, float("inf"))
    for _ in range(2):
        up = torch.nextafter(r, inf)
        r = torch.where(a64 > _midpoint_squared(r, up), up, r)
        down = torch.nextafter(r, zero)
        r = torch.where((r > 0) & (a64 < _midpoint_squared(down, r)), down, r)
    return r


def _as_sklearn_distance(d2: Tensor) -> Tensor:
    """What scikit-learn returns for a float64 squared distance of float32 data: sqrt32(max(f32(d2), 0))."""
    return _sqrt_f32(d2.to(torch.float32).clamp_min_(0))


def _inside_threshold(radii: Tensor) -> Tensor:
    """Per radius r (float32), the float64 T with: sqrt32(max(f32(d2), 0)) < r  <=>  d2 <= T.

    No square root is taken (see :func:`_sqrt_f32` for why that matters). With m the midpoint of r
    and its float32 predecessor, RN(sqrt(A)) < r <=> A < m^2 (no ties are possible), and m^2 is exact
    in float64. The float32 A below m^2 are those <= P = the float32 just under m^2; the float64 d2 that
    round to at most P end at the midpoint of P and its successor, included or not as
    round-half-to-even decides.
    """
    r = radii.to(torch.float32)
    zero = torch.zeros_like(r)
    m2 = _midpoint_squared(torch.nextafter(r, zero), r)
    p = m2.to(torch.float32)  # round to nearest, then step down to the float32 strictly below m^2
    p = torch.where(p.to(torch.float64) >= m2, torch.nextafter(p, zero), p)
    succ = torch.nextafter(p, torch.full_like(p, float("inf")))
    # succ = inf when P is the largest float32; 2**128 is where the next float32 would be.
    succ64 = torch.where(torch.isinf(succ), torch.full_like(m2, 2.0**128), succ.to(torch.float64))
    mid = (p.to(torch.float64) + succ64) / 2  # exact: a float32 plus one bit fits a float64
    rounds_down = mid.to(torch.float32) <= p
    threshold = torch.where(rounds_down, mid, torch.nextafter(mid, torch.full_like(mid, -float("inf"))))
    # r == 0 (more than k duplicates): prdc's strict "< 0" holds for no distance.
    return torch.where(r > 0, threshold, torch.full_like(threshold, -float("inf")))


def _kth_neighbour_sq(x64: Tensor, sq: Tensor, k: int, chunk_size: int | None, run: RunBlocks) -> Tensor:
    """Squared (float64) distance of each row of ``x64`` to its k-th nearest other row, block by block."""
    n = x64.shape[0]
    kth = torch.empty(n, dtype=torch.float64, device=x64.device)
    step = _rows_per_block(n, n, chunk_size, x64.device)

    def work(blocks: Blocks) -> None:
        # One buffer per worker, reused: allocating a block per step made glibc's per-thread arenas
        # grow to 5x the working set (its mmap threshold adapts upwards after the first free).
        buffer = torch.empty(step, n, dtype=torch.float64, device=x64.device)
        for start, stop in blocks:
            d2 = _block_sq_distances(x64[start:stop], sq[start:stop], x64, sq, buffer[: stop - start])
            # The (k+1)-th smallest of the row, as prdc: the self-distance (0) is one of the k+1.
            kth[start:stop] = d2.topk(k + 1, dim=1, largest=False, sorted=True).values[:, k]

    run(n, step, work)
    return kth


def knn_radii(features: Tensor, k: int, chunk_size: int | None = None) -> Tensor:
    """Distance of each sample to its k-th nearest neighbour in ``features``, itself excluded (float32)."""
    x = as_features(features, "features")
    check_positive_int(k, "k")
    check_min_samples(x, k + 1, "features", f"a {k}-nearest-neighbour radius (k + 1 samples)")
    # Rounding and sqrt are monotone, so the k-th smallest d2 maps to the k-th smallest distance.
    with _block_workers(x.device) as run:
        return _as_sklearn_distance(_kth_neighbour_sq(*_with_sq_norms(x), k, chunk_size, run))


def prdc(real: Tensor, fake: Tensor, k: int = 5, chunk_size: int | None = None) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density, coverage (Naeem et al. 2020) of N x D features.

    precision: share of fake samples inside at least one real k-NN ball;
    recall: share of real samples inside at least one fake k-NN ball;
    density: mean over fake samples of (number of real balls containing it) / k;
    coverage: share of real samples whose ball contains at least one fake sample.
    ``chunk_size`` is the number of rows per distance block (default: 2**20 distances a block on CPU,
    2**26 on GPU).
    Same conventions as the reference ``prdc`` package (strict ``<``; see the module docstring).
    """
    real = as_features(real, "real")
    fake = as_features(fake, "fake")
    check_pair(real, fake)
    check_positive_int(k, "k")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
    need = f"k={k} nearest neighbours (k + 1 samples)"
    check_min_samples(real, k + 1, "real", need)
    check_min_samples(fake, k + 1, "fake", need)

    with _block_workers(real.device) as run:
        real64, real_sq = _with_sq_norms(real)
        fake64, fake_sq = _with_sq_norms(fake)
        real_radii = _as_sklearn_distance(_kth_neighbour_sq(real64, real_sq, k, chunk_size, run))
        fake_radii = _as_sklearn_distance(_kth_neighbour_sq(fake64, fake_sq, k, chunk_size, run))
        real_threshold = _inside_threshold(real_radii)
        fake_threshold = _inside_threshold(fake_radii).unsqueeze(0)
        n_real, n_fake = real.shape[0], fake.shape[0]
        real_in_some_fake_ball = torch.empty(n_real, dtype=torch.bool, device=real.device)
        real_ball_has_fake = torch.empty(n_real, dtype=torch.bool, device=real.device)

        # One pass over blocks of real rows against all fake columns serves all four metrics:
        # row reductions complete within a block, column counts add up over blocks.
        step = _rows_per_block(n_real, n_fake, chunk_size, real.device)

        def work(blocks: Blocks) -> Tensor:
            real_balls_per_fake = torch.zeros(n_fake, dtype=torch.int64, device=real.device)
            counts = torch.empty_like(real_balls_per_fake)
            distances = torch.empty(step, n_fake, dtype=torch.float64, device=real.device)
            inside = torch.empty(step, n_fake, dtype=torch.bool, device=real.device)
            for start, stop in blocks:
                d2 = _block_sq_distances(
                    real64[start:stop], real_sq[start:stop], fake64, fake_sq, distances[: stop - start]
                )
                inside_real_ball = torch.le(
                    d2, real_threshold[start:stop].unsqueeze(1), out=inside[: stop - start]
                )
                real_balls_per_fake += torch.sum(inside_real_ball, dim=0, out=counts)
                real_ball_has_fake[start:stop] = inside_real_ball.any(dim=1)
                inside_fake_ball = torch.le(d2, fake_threshold, out=inside[: stop - start])
                real_in_some_fake_ball[start:stop] = inside_fake_ball.any(dim=1)
            return real_balls_per_fake

        real_balls_per_fake = sum(run(n_real, step, work))

    return {
        "precision": float((real_balls_per_fake > 0).double().mean()),
        "recall": float(real_in_some_fake_ball.double().mean()),
        "density": float(real_balls_per_fake.double().mean() / k),
        "coverage": float(real_ball_has_fake.double().mean()),
    }
