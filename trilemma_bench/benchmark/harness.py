"""``trilemma-bench bench``: train (or reuse) a method's model, then for each seed and NFE time the
sampling, measure quality and diversity, and write one results row as soon as the cell is done.

The run, in order:

1. validation and a dry run of every NFE (:mod:`.config`), before any training;
2. the model of each NFE trained or reused (one for most methods; one per NFE where the NFE is a
   property of the model, as DDGAN's T);
3. the reference data and features (:mod:`.scoring`), and per seed the real-data rows: what real
   images score under the same protocol (the floor of every metric at this sample size);
4. per seed and NFE one cell (:mod:`.cell`): timed sampling, quantization to the data's grid, metrics
   outside the timed region, a sample grid, the row (``results.py`` writes it atomically).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from torch import Tensor

from ..data import DATASETS, dataset_source
from ..methods import ModelSpec
from ..noise import initial_noise
from ..paths import REFERENCE_DIR
from ..quantize import quantize
from ..report_utils import console, log
from .cell import GRID_SAMPLES, cell_row, real_row, sample_cell, save_grid
from .compute import training_gflops
from .config import BenchConfig, DryRun, dry_run, make_config, sample_shape
from .distributed import SPAWN, Shard, run_sharded
from .provenance import checkpoint_id, git_commit, portable_path, weights_digest
from .request import BenchRequest
from .results import read_results, upsert_row, write_schedule
from .scoring import load_reference, real_sets, score, score_parts, shard_parts
from .speed import accelerated
from .timing import FlopProbe, device_name, set_threads
from .timing_run import TimingRun


def run_bench(req: BenchRequest) -> list[dict[str, Any]]:
    """The ``bench`` command: every (seed, NFE) cell of one method, one row each. Returns the cells' rows."""
    from ..train import train_model

    cfg = make_config(req)
    set_threads(req.threads)  # recorded in every row
    plan = dry_run(cfg)
    # The code that runs is the code checked out now: training can take an hour, and a commit made meanwhile
    # must not be named by rows it did not produce. Workers of a sharded run are given it.
    commit = git_commit()
    log(
        f"bench {cfg.method.name} on {cfg.preset.dataset} (preset {cfg.preset.name}): NFE {list(cfg.nfes)}, "
        f"seeds {list(cfg.seeds)}, {cfg.num_samples} samples in batches of {cfg.batch_size} on {cfg.device}"
        f"{f' x {cfg.devices} processes' if cfg.devices > 1 else ''} ({cfg.dtype}"
        f"{', compiled' if cfg.compile else ''}{', channels_last' if cfg.channels_last else ''}"
        f"{', CUDA graphs' if cfg.cuda_graphs else ''}, {torch.get_num_threads()} threads) -> {cfg.results_dir}"
    )
    # Train (or find) every model first; the rows say where each one's weights came from (shipped, cached,
    # trained), which the later load in bench_cells cannot tell (a model trained now is cached by then).
    sources: dict[str, str] = {}
    given = cfg.weights is not None or cfg.external is not None
    for spec in dict.fromkeys(cfg.spec_for(nfe) for nfe in cfg.nfes) if not given else ():
        module, _ = train_model(spec, cfg.preset, device=cfg.device.type, retrain=cfg.retrain, devices=cfg.devices,
                                strategy=SPAWN if cfg.devices > 1 else "auto", seed=cfg.train_seed)
        sources[spec.tag] = module.weights_source
    if cfg.devices > 1:
        return run_sharded(req, plan, cfg.devices, "gpu" if cfg.device.type == "cuda" else "cpu",
                           make_config=make_config, cells=bench_cells, commit=commit, sources=sources)
    return bench_cells(cfg, plan, Shard(), commit=commit, sources=sources)


def load_models(cfg: BenchConfig) -> dict[ModelSpec, tuple[Any, FlopProbe, str, str, FlopProbe | None]]:
    """Each model the cells sample from (trained by now), with its FLOP probe, identity and decoder."""
    from ..train import load_weights_file, train_model

    models: dict[ModelSpec, tuple[Any, FlopProbe, str, str, FlopProbe | None]] = {}
    fast = {"compile": cfg.compile, "channels_last": cfg.channels_last, "cuda_graphs": cfg.cuda_graphs}
    for nfe in cfg.nfes:
        spec = cfg.spec_for(nfe)
        if spec in models:
            continue
        if cfg.external is not None:  # --model: the user's network, as it was given
            model, path, name = cfg.external, Path(cfg.model_ref.rpartition(":")[2]), spec.tag
        elif cfg.weights is not None:  # one given file (a training-compute curve's checkpoint): named as it is
            model, path = load_weights_file(spec, cfg.preset, cfg.weights), cfg.weights
            name = path.stem.rsplit("-", 1)[0]
        else:
            model, path = train_model(spec, cfg.preset, device=cfg.device.type, seed=cfg.train_seed)
            name = f"{spec.tag}-{cfg.preset.name}"
        model = model.to(cfg.device).eval()
        eager = model.denoiser()
        probe = FlopProbe(eager, then=accelerated(eager, **fast))
        decoder = None
        if cfg.method.decoder is not None:
            eager_decoder = cfg.method.decoder(model)
            decoder = FlopProbe(eager_decoder, then=accelerated(eager_decoder, **fast))
        models[spec] = (model, probe, checkpoint_id(model, name), portable_path(path), decoder)
    return models


def bench_cells(cfg: BenchConfig, plan: DryRun, shard: Shard, commit: str,
                sources: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every cell of ``cfg``, this process sampling its block of each (all of it when alone). ``commit``: the
    code's commit when the run began (:func:`run_bench` reads it before any training); ``sources``: model tag ->
    where its weights came from when the run began (default: where they were loaded from now)."""
    ds = cfg.preset.dataset
    models = load_models(cfg)
    ref = load_reference(cfg)
    env = {
        "torch_version": torch.__version__,
        "git_commit": commit,
        "dataset_source": dataset_source(ds),
        "device_name": device_name(cfg.device),
        "threads": torch.get_num_threads(),
        "world_size": shard.world,
    }
    scored = {"feature_extractor": ref.extractor.name, "reference_split": ref.split, "reference_n": ref.stats_n,
              "quantized_levels": ref.levels if ref.levels is not None else math.nan,
              "extractor_accuracy": ref.extractor.accuracy if ref.extractor.accuracy is not None else math.nan}
    lo, hi = shard.block(cfg.num_samples, cfg.batch_size)
    run = TimingRun.shared(cfg.timing_run) if cfg.timing_run else TimingRun.start("bench", "sequential")
    # Figures of each checkpoint, the same in all its rows, timed nowhere: its bits/dim bound, and what the model
    # says about itself (a latent model: its autoencoder's reconstruction FID, the ceiling of its samples).
    per_model: dict[ModelSpec, dict[str, Any]] = {}
    if shard.is_main:
        from ..likelihood import bpd_columns

        for spec, (model, _probe, ckpt, *_rest) in models.items():
            info = model.row_info()
            per_model[spec] = {**info, "weights_source": (sources or {}).get(spec.tag, model.weights_source),
                               "train_seed": cfg.train_seed, **model.training_record,
                               **bpd_columns(cfg.method.name, model, ds, num_images=cfg.bpd_images,
                                                     device=cfg.device)}
            schedule = model.schedule_table()
            if schedule is not None:  # a learned noise schedule: the report draws it
                write_schedule(cfg.results_dir, ckpt, schedule)

    rows: list[dict[str, Any]] = []
    n_full, partial = divmod(hi - lo, cfg.batch_size)
    n_batches = max(n_full, cfg.min_repeats) + (1 if partial else 0)  # timed repeats, then the untimed rest
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not shard.is_main) as progress:
        cells = progress.add_task("cells", total=len(cfg.seeds) * len(cfg.nfes))
        batches = progress.add_task("batches", total=n_batches)
        for seed in cfg.seeds:
            if shard.is_main:  # real data is scored once, by the process that writes
                progress.update(cells, description=f"real data, seed {seed}")
                for real in real_sets(cfg, ref, seed):
                    metrics = score(real.images, ref, cfg.device)
                    if real.copies_training:
                        metrics["copy_share"] = math.nan  # 1 by construction: its images are training images
                    upsert_row(cfg.results_dir, real_row(cfg, env, sampler=real.sampler, seed=seed,
                                                         real_n=len(real.images), matched_n=real.matched,
                                                         metrics=metrics, **scored))
            x_Ts: dict[tuple[int, ...], Tensor] = {}  # per shape: a latent model draws x_T in its own space
            for nfe in cfg.nfes:
                spec = cfg.spec_for(nfe)
                model, probe, ckpt, ckpt_path, decoder = models[spec]
                shape = sample_shape(model, ds)
                if shape not in x_Ts:
                    x_Ts[shape] = initial_noise(shape, seed, range(lo, hi))
                progress.update(cells, description=f"{cfg.method.name} NFE {nfe} seed {seed}")
                progress.reset(batches, total=n_batches, description="  sampling batches")
                t0 = time.perf_counter()
                samples, timing, counted, decode_timing = sample_cell(
                    cfg, model, probe, x_Ts[shape], nfe, seed, plan.warmup[nfe], lambda: progress.advance(batches),
                    decoder, first_image=lo,
                )
                if counted != plan.counted[nfe]:
                    log(f"[yellow]warning[/]: NFE {nfe} counted {counted} calls, the dry run {plan.counted[nfe]}")
                t1 = time.perf_counter()
                progress.update(batches, description="  metrics")
                if DATASETS[ds].is_image:
                    samples = quantize(samples, ref.levels)  # scored as a saved image would be
                metrics = score_parts(shard.gather(shard_parts(samples, ref)), ref, cfg.device)
                throughput = sum(shard.gather_numbers(timing.images_per_s))
                shown = shard.gather({"grid": samples if samples.dim() == 2 else samples[:GRID_SAMPLES]})["grid"]
                if not shard.is_main:
                    continue
                # The weights' digest in the name: a retrained model's grids sit beside the old rows' grids
                # instead of overwriting the images those rows point to.
                weights = weights_digest(ckpt)
                grid = save_grid(cfg, shown, f"{cfg.method.name}-{cfg.preset.name}"
                                 f"{'-' + weights if weights else ''}-nfe{nfe}-seed{seed}",
                                 f"{cfg.method.name}, {counted} NFE, seed {seed}")
                row = cell_row(cfg, env, nfe_requested=nfe, nfe=counted, seed=seed, model=spec.tag, checkpoint=ckpt,
                               checkpoint_path=ckpt_path, timing=timing, probe=probe, metrics=metrics, grid=grid,
                               decode_timing=decode_timing, decoder_probe=decoder,
                               images_per_s=throughput if shard.world > 1 else None,
                               sample_seconds=t1 - t0, metric_seconds=time.perf_counter() - t1, **scored,
                               **per_model[spec], train_gflops=train_gflops(model, probe, cfg.preset, spec),
                               **run.columns())
                upsert_row(cfg.results_dir, row)
                rows.append(row)
                progress.advance(cells)
    if shard.is_main:
        console.print(summary_table(rows, cfg, _published(rows, cfg.results_dir)))
    return rows


def train_gflops(model: Any, probe: FlopProbe, preset: Any, spec: ModelSpec) -> float:
    """Training compute of the weights: the model's ``train_passes`` x the sampled network's counted forward FLOPs
    per example x the preset's batch x the steps trained, plus its prerequisites' training (``pretrain_gflops``:
    a latent model's autoencoder); NaN when a term is unknown."""
    steps = model.training_record.get("train_steps")
    if not steps or not probe.flops_per_call or not probe.batch:
        return math.nan
    return training_gflops(model.pretrain_gflops, model.train_passes, probe.flops_per_call / probe.batch / 1e9,
                           preset.train_config(spec.name).batch_size, steps)


def summary_table(rows: list[dict[str, Any]], cfg: BenchConfig,
                  published: dict[tuple[Any, ...], str] | None = None) -> Table:
    """The run's rows on the console; ``published``: the reference table's FID of the same cells, shown beside."""
    table = Table(title=f"{cfg.method.name} on {cfg.preset.dataset} ({cfg.preset.name}, {cfg.device}, {cfg.dtype})")
    cols = [
        ("NFE", "nfe", "{}"),
        ("seed", "seed", "{}"),
        ("ms/image", "ms_per_image", "{:.3f}"),
        ("FID", "fid", "{:.3f}"),
        ("precision", "precision", "{:.3f}"),
        ("recall", "recall", "{:.3f}"),
        ("coverage", "coverage", "{:.3f}"),
    ]
    caption = None
    with_modes = [r for r in rows if not math.isnan(r["modes"])]
    if with_modes:
        from ..metrics import floor_text

        cols += [("modes", "modes", "{:.0f}"), ("mode KL", "mode_kl", "{:.4f}")]
        caption = floor_text(int(with_modes[0]["num_samples"]), int(with_modes[0]["modes_total"]))
    table.caption = caption
    if published:
        cols.append(("published FID", "_published", "{}"))
        table.caption = ((caption + "\n") if caption else "") + (
            f"published FID: the committed row of the same weights, sampler, NFE and seed in {REFERENCE_DIR}/ "
            "('-': none); the same weights and seed give the same samples, so FIDs agree to float rounding")
    for title, _, _ in cols:
        table.add_column(title, justify="right")
    for r in rows:
        if published:
            r = {**r, "_published": published.get(_cell_key(r), "-")}
        table.add_row(*(fmt.format(r[key]) for _, key, fmt in cols))
    return table


def _cell_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(str(row[k]) for k in ("dataset", "preset", "method", "sampler", "nfe", "seed", "checkpoint"))


def _published(rows: list[dict[str, Any]], results_dir: Path) -> dict[tuple[Any, ...], str]:
    """FID of the committed reference row of each cell benched here, when the run wrote elsewhere."""
    if not rows or Path(results_dir).resolve() == REFERENCE_DIR.resolve():
        return {}
    ref = read_results(REFERENCE_DIR)
    mine = {_cell_key(r) for r in rows}
    return {key: f"{r['fid']:.3f}" for r in ref.to_dict("records") if (key := _cell_key(r)) in mine}
