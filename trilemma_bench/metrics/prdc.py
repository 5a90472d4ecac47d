"""Precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020).

All four come from k-nearest-neighbour balls around samples. The reference package ``prdc`` builds
the full N x N distance matrices (20k samples: 5 GB); here distances are produced one tile at a time,
so memory beyond the features is a few tiles per worker whatever N, and everything runs on the device
of the inputs.

Conventions, pinned to ``prdc`` 0.2 (``prdc/prdc.py``), so numbers are comparable with the papers' code:

* radius of a sample = distance to its k-th nearest neighbour in its own set, the sample itself
  excluded (prdc takes the (k+1)-th smallest distance of the row, which holds the zero self-distance;
  an exact duplicate of the sample therefore counts as a neighbour at distance 0);
* a point is inside a ball when ``distance < radius``, strictly. A sample whose radius is 0
  (more than k duplicates) thus contains nothing, as in prdc;
* distances are Euclidean, float32, computed the way scikit-learn's ``pairwise_distances`` does for
  float32 input, which prdc calls: the squared distance ``|x|^2 + |y|^2 - 2 x.y`` in float64, rounded
  to float32, then numpy's (correctly rounded) float32 square root. Matching that arithmetic, and not
  only the maths, keeps the strict comparisons identical to prdc's, ties included (integer-valued
  features give exact ties); the tests check equality with prdc, not closeness.

Why float64 GEMM and not ``torch.cdist``: cdist's default ``use_mm_for_euclid_dist_if_necessary``
uses the same norm expansion, but in float32, for more than 25 rows; the cancellation costs about
eps32 * |x|^2. On 3000 x 64 features centred at 3, 96% of its k-NN radii differed from prdc's (up to
4e-6 relative), which can flip strict comparisons (none flipped in that run).
``donot_use_mm_for_euclid_dist`` sums differences in float32: closer (3e-7), but 43% of radii still
differed and one coverage decision in 3000 flipped; it is also several times slower than the float64
GEMM on this CPU (2000 x 20000 x 64: 0.84 s against 0.15 s). The float64 GEMM is the one that
reproduces prdc; a float32 GEMM only ever screens, with a proven error bound. (On GPUs with weak
float64, e.g. consumer cards, it costs speed; H100/H200 have full-rate float64.)

Radii (the two k-NN passes, most of the work) are screened in float32, then the few candidates per
sample are recomputed in float64 and the choice is certified (:func:`_kth_neighbour_sq`): the radii are
the float64 ones. This and pruning top-k by group minima (:func:`_smallest`) made 10k x 10k ~25% faster.

Speed: nothing is square-rooted per pair. Rounding to float32 and the float32 square root are both
monotone, so "sqrt32(f32(d2)) < r" is the same as "d2 <= T(r)" for one float64 threshold per ball,
found once per radius (:func:`_inside_threshold`); each tile is then one GEMM (norms folded into the
operands, :func:`_row_operand`) and comparisons, sized to stay in cache, on per-core worker threads
(:func:`_workers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import Tensor

from .checks import as_features, check_min_samples, check_pair, check_positive_int

# Tile of the distance matrix computed at once (rows, columns). On the CPU: MKL's float64 GEMM runs
# at ~47 GFLOP/s on tiles like these but ~24 on 50 x 20000 strips (it repacks the wide operand each
# call), and a 4 MiB float64 tile per worker plus masks stays in the 32 MiB L3. 256 x 2048 was the
# fastest of seven shapes from 128 x 8192 to 1024 x 2048 (within 15% of each other) on a 10k x 10k
# run. A GPU wants fewer, larger launches.
_TILE = {"cpu": (256, 2048), "cuda": (4096, 16384)}

R = TypeVar("R")
RunRowTiles = Callable[[Callable[[list[int]], R], int], list[R]]


def _tile_shape(n_rows: int, n_cols: int, chunk_size: int | None, device: torch.device) -> tuple[int, int]:
    rows, cols = (chunk_size, chunk_size) if chunk_size else _TILE.get(device.type, _TILE["cpu"])
    return min(rows, n_rows), min(cols, n_cols)


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    return [(start, min(start + step, n)) for start in range(0, n, step)]


@contextmanager
def _workers(device: torch.device) -> Iterator[RunRowTiles]:
    """Yield ``run(work, n_tiles)``: calls ``work(tile_indices)`` once per worker, each with its share
    of the row tiles (dealt round-robin); ``run`` returns the workers' results.

    On the CPU there are torch.get_num_threads() workers, Python threads each running torch
    single-threaded: intra-op parallelism is set to 1 inside the ``with`` and restored after (so do
    not call this from several Python threads at once). A tile then stays in one core's cache and no
    operation waits on a fork-join barrier: with torch's own threads, each of the ~7 small operations
    per tile synchronizes both cores, which on a busy 2-core machine made a 10k x 10k run 5x slower
    than one thread (17 s against 3.3 s). torch releases the GIL inside its operations. One pool
    serves the whole call: fresh threads per pass left memory behind.
    """
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers == 1:
        yield lambda work, n_tiles: [work(list(range(n_tiles)))]
        return
    torch.set_num_threads(1)  # threads created from now on start with one intra-op thread
    try:
        with ThreadPoolExecutor(workers) as pool:

            def run(work: Callable[[list[int]], R], n_tiles: int) -> list[R]:
                shares = [list(range(w, n_tiles, workers)) for w in range(min(workers, n_tiles))]
                return list(pool.map(work, shares))

            yield run
    finally:
        torch.set_num_threads(workers)


def _scratch(flat: Tensor, rows: int, cols: int) -> Tensor:
    """A contiguous rows x cols view at the start of a reused flat buffer (edge tiles are smaller)."""
    return flat[: rows * cols].view(rows, cols)


def _gemm_operand(x: Tensor) -> Tensor:
    """[x, |x|^2, 1] in float64 for N x D features: the column operand of the distance GEMM."""
    x64 = x.to(torch.float64)
    sq = (x64 * x64).sum(dim=1, keepdim=True)
    return torch.cat([x64, sq, torch.ones_like(sq)], dim=1)


def _row_operand(columns: Tensor) -> Tensor:
    """[-2x, 1, |x|^2] from rows of :func:`_gemm_operand`; row_i . column_j = |x_i - x_j|^2.

    One GEMM per tile then yields squared distances with no broadcast passes to add the norms (those
    cost 12% of the run). Only the column operand is kept for the whole set (halving the float64 copy,
    which dominates memory at D = 2048); row operands are built per row tile. The float64 summation
    order differs from scikit-learn's; that matters only where a float64 result lies within float64
    round-off of a float32 rounding boundary, and integer-valued features are exact either way.
    """
    return torch.cat([-2 * columns[:, :-2], columns[:, -1:], columns[:, -2:-1]], dim=1)


def _tile_sq_distances(rows: Tensor, columns: Tensor, c0: int, c1: int, out: Tensor) -> Tensor:
    """Squared distances of a row tile to columns c0:c1 (in the operands' dtype), written into the flat ``out``."""
    return torch.mm(rows, columns[c0:c1].T, out=_scratch(out, rows.shape[0], c1 - c0))


def _any_per_row(mask: Tensor) -> Tensor:
    """``mask.any(dim=1)``, fast: on the CPU (torch 2.13) a bool row-reduction of a 256 x 2048 tile with
    few True takes ~0.2 ms, the same bytes read as uint8 ~10 us."""
    return mask.view(torch.uint8).amax(dim=1).bool()


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


_U32 = 2.0**-24  # unit round-off of float32


def _float32_gemm_error(columns: Tensor) -> float:
    """c with |d2_float32 - d2_float64| <= c * (|x|^2 + |y|^2) for every pair of the float32 distance GEMM.

    An inner product of n terms in float32, in any summation order and with or without FMA, is within
    gamma_n * sum|a_k b_k| of the exact one (gamma_n = n u / (1 - n u), Higham, Accuracy and Stability,
    section 3.1); for the operands of :func:`_row_operand` sum|a_k b_k| <= 2 (|x|^2 + |y|^2). Rounding the
    float64 norms to float32 adds u (|x|^2 + |y|^2). The float64 GEMM's own error (1e-16 relative) and
    everything else is covered by the factor 2. Assumes true float32 arithmetic: see :func:`_exact_float32`.
    """
    n = columns.shape[1]
    gamma = n * _U32 / (1 - n * _U32)
    return 2 * (2 * gamma * (1 + _U32) + _U32)


@contextmanager
def _exact_float32() -> Iterator[None]:
    """float32 matmuls in float32: TF32 or bf16 (``torch.set_float32_matmul_precision``) would void the bound."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _kth_neighbour_sq(columns: Tensor, k: int, chunk_size: int | None, run: RunRowTiles) -> Tensor:
    """Squared (float64) distance of each sample to its k-th nearest other sample, tile by tile.

    The wanted value is the (k+1)-th smallest float64 d2 of each row (prdc's, which holds the zero
    self-distance). Screening runs in float32, at twice the GEMM speed and a quarter less for top-k: each
    row keeps the k+2 smallest float32 d2 with their columns, those candidates get exact float64 d2, and
    the answer is certified: every other column has float32 d2 >= the largest candidate's, so float64 d2
    >= that minus the error bound; when that is >= the (k+1)-th exact candidate, no other column can be
    among the k+1 smallest. Rows that fail the check (a near tie between the (k+1)-th and (k+2)-th
    neighbours, or exact ties in integer features) are recomputed in float64 over all columns.
    """
    n, device = columns.shape[0], columns.device
    tile_rows, tile_cols = _tile_shape(n, n, chunk_size, device)
    row_spans, col_spans = _spans(n, tile_rows), _spans(n, tile_cols)
    columns32 = columns.to(torch.float32)
    norms = columns[:, -2]
    error = _float32_gemm_error(columns) * (norms + norms.max())  # per row, against any column
    keep = min(k + 2, n)
    kth = torch.empty(n, dtype=torch.float64, device=device)

    def work(row_tiles: list[int]) -> None:
        # Reused across tiles: a fresh 4 MiB tensor per tile made glibc's per-thread arenas grow.
        buffer = torch.empty(tile_rows * tile_cols, dtype=torch.float32, device=device)
        for r0, r1 in (row_spans[i] for i in row_tiles):
            rows32 = _row_operand(columns32[r0:r1])
            best = torch.full((r1 - r0, keep), torch.inf, device=device)
            best_at = torch.zeros((r1 - r0, keep), dtype=torch.int64, device=device)
            for c0, c1 in col_spans:
                d2 = _tile_sq_distances(rows32, columns32, c0, c1, buffer)
                values, at = _smallest(d2, keep)
                best, which = torch.cat([best, values], dim=1).topk(keep, dim=1, largest=False, sorted=False)
                best_at = torch.cat([best_at, at + c0], dim=1).gather(1, which)
            rows = _row_operand(columns[r0:r1])
            exact = torch.einsum("rd,rcd->rc", rows, columns[best_at])
            kth[r0:r1] = exact.kthvalue(k + 1, dim=1).values
            # (Non-finite float32 d2, from norms beyond float32's range, are never certified.)
            certain = (best.amax(dim=1).to(torch.float64) - error[r0:r1] >= kth[r0:r1]) & best.isfinite().all(dim=1)
            if keep < n and not bool(certain.all()):
                redo = (~certain).nonzero().squeeze(1)
                kth[r0 + redo] = _kth_exact(rows[redo], columns, k, tile_cols)

    with _exact_float32():
        run(work, len(row_spans))
    return kth


def _smallest(d2: Tensor, keep: int, group: int = 16) -> tuple[Tensor, Tensor]:
    """The ``keep`` smallest values of each row and their columns (unordered), pruned by group minima.

    top-k over a whole 256 x 2048 tile cost more than the GEMM that made it. The keep smallest values of
    a row all lie in the keep groups of ``group`` columns with the smallest minima: a value in any other
    group has keep group minima, in distinct groups, at or below it. (Ties may swap equal values, which
    leaves the values, and hence the certificate in :func:`_kth_neighbour_sq`, unchanged.) So: group
    minima, top-k of those, then top-k of the group x keep values they point to.
    """
    rows, cols = d2.shape
    full = cols - cols % group
    if full // group <= keep:
        return d2.topk(min(keep, cols), dim=1, largest=False, sorted=False)
    # Group g holds columns g, g + n, g + 2n, ... (n groups): the minima are then an elementwise min of
    # ``group`` contiguous slices, ~25x faster than a min over 16 adjacent values per group.
    n = full // group
    groups = d2[:, :full].view(rows, group, n)
    chosen = groups.amin(dim=1).topk(keep, dim=1, largest=False, sorted=False).indices
    values = groups.gather(2, chosen.unsqueeze(1).expand(rows, group, keep)).reshape(rows, group * keep)
    offsets = torch.arange(0, full, n, device=d2.device).view(1, group, 1)
    at = (chosen.unsqueeze(1) + offsets).reshape(rows, group * keep)
    if full < cols:  # the ragged last columns join as candidates of their own
        values = torch.cat([values, d2[:, full:]], dim=1)
        at = torch.cat([at, torch.arange(full, cols, device=d2.device).expand(rows, cols - full)], dim=1)
    values, which = values.topk(keep, dim=1, largest=False, sorted=False)
    return values, at.gather(1, which)


def _kth_exact(rows: Tensor, columns: Tensor, k: int, tile_cols: int) -> Tensor:
    """The (k+1)-th smallest float64 d2 of each of a few rows against all columns (the uncertified rows)."""
    best = torch.full((rows.shape[0], k + 1), torch.inf, dtype=torch.float64, device=rows.device)
    for c0, c1 in _spans(columns.shape[0], tile_cols):
        d2 = rows @ columns[c0:c1].T
        best = torch.cat([best, d2], dim=1).topk(k + 1, dim=1, largest=False).values
    return best.amax(dim=1)


def knn_radii(features: Tensor, k: int, chunk_size: int | None = None) -> Tensor:
    """Distance of each sample to its k-th nearest neighbour in ``features``, itself excluded (float32)."""
    x = as_features(features, "features")
    check_positive_int(k, "k")
    check_min_samples(x, k + 1, "features", f"a {k}-nearest-neighbour radius (k + 1 samples)")
    # Rounding and sqrt are monotone, so the k-th smallest d2 maps to the k-th smallest distance.
    with _workers(x.device) as run:
        return _as_sklearn_distance(_kth_neighbour_sq(_gemm_operand(x), k, chunk_size, run))


def prdc(real: Tensor, fake: Tensor, k: int = 5, chunk_size: int | None = None) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density, coverage (Naeem et al. 2020) of N x D features.

    precision: share of fake samples inside at least one real k-NN ball;
    recall: share of real samples inside at least one fake k-NN ball;
    density: mean over fake samples of (number of real balls containing it) / k;
    coverage: share of real samples whose ball contains at least one fake sample.
    ``chunk_size`` is the edge of the square tiles of distances computed at once (default: 256 x 2048
    tiles on CPU, 4096 x 16384 on GPU).
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

    real_columns, fake_columns = _gemm_operand(real), _gemm_operand(fake)
    with _workers(real.device) as run:
        real_radii = _as_sklearn_distance(_kth_neighbour_sq(real_columns, k, chunk_size, run))
        fake_radii = _as_sklearn_distance(_kth_neighbour_sq(fake_columns, k, chunk_size, run))
        real_threshold = _inside_threshold(real_radii).unsqueeze(1)
        fake_threshold = _inside_threshold(fake_radii).unsqueeze(0)
        n_real, n_fake = real.shape[0], fake.shape[0]
        tile_rows, tile_cols = _tile_shape(n_real, n_fake, chunk_size, real.device)
        row_spans, col_spans = _spans(n_real, tile_rows), _spans(n_fake, tile_cols)
        real_ball_has_fake = torch.zeros(n_real, dtype=torch.bool, device=real.device)
        real_in_some_fake_ball = torch.zeros(n_real, dtype=torch.bool, device=real.device)

        # One pass over real x fake tiles serves all four metrics: a worker owns whole row tiles, so
        # row flags are its own to write; column counts are summed over workers at the end.
        def work(row_tiles: list[int]) -> Tensor:
            real_balls_per_fake = torch.zeros(n_fake, dtype=torch.int64, device=real.device)
            buffer = torch.empty(tile_rows * tile_cols, dtype=torch.float64, device=real.device)
            mask = torch.empty(tile_rows * tile_cols, dtype=torch.bool, device=real.device)
            # int32 per tile (at most tile_rows): summing bools into int32 is ~2x faster than into int64.
            counts = torch.empty(tile_cols, dtype=torch.int32, device=real.device)
            for r0, r1 in (row_spans[i] for i in row_tiles):
                rows = _row_operand(real_columns[r0:r1])
                for c0, c1 in col_spans:
                    d2 = _tile_sq_distances(rows, fake_columns, c0, c1, buffer)
                    inside = torch.le(d2, real_threshold[r0:r1], out=_scratch(mask, r1 - r0, c1 - c0))
                    real_balls_per_fake[c0:c1] += torch.sum(inside, dim=0, dtype=torch.int32, out=counts[: c1 - c0])
                    real_ball_has_fake[r0:r1] |= _any_per_row(inside)
                    inside = torch.le(d2, fake_threshold[:, c0:c1], out=_scratch(mask, r1 - r0, c1 - c0))
                    real_in_some_fake_ball[r0:r1] |= _any_per_row(inside)
            return real_balls_per_fake

        real_balls_per_fake = sum(run(work, len(row_spans)))

    return {
        "precision": float((real_balls_per_fake > 0).double().mean()),
        "recall": float(real_in_some_fake_ball.double().mean()),
        "density": float(real_balls_per_fake.double().mean() / k),
        "coverage": float(real_ball_has_fake.double().mean()),
    }
