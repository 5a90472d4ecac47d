"""trilemma-bench: the commands (train, ship, sample, bench, curve, diagnose, bpd, retime, report, readme, features,
methods); their options are in cli_parser.py."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_parser import ALL, build_parser
from .paths import LOCAL_DIR, REFERENCE_DIR
from .presets import PRESETS

if TYPE_CHECKING:
    from torch import Tensor


def _preset(args: argparse.Namespace):
    from .train import resolve_preset

    preset = resolve_preset(PRESETS[args.preset], args.dataset)
    if args.steps is not None:  # the named model's steps; `bench --method all`: every model's
        preset = preset.with_steps(args.steps, None if args.method == ALL else _model_name(args))
    return preset


def _model_name(args: argparse.Namespace) -> str:
    """The model --method names (a model name) or samples from (a method name; every NFE's variant alike)."""
    from .methods import METHODS, MODELS, get_method

    return args.method if args.method in MODELS and args.method not in METHODS else get_method(args.method).model


def _request(args: argparse.Namespace, **override):
    """The bench request of the parsed options (other commands' extra ones ignored), ``override`` on top: the one
    place a Namespace becomes the typed request everything below reads."""
    from .benchmark.request import BenchRequest

    names = {f.name for f in dataclasses.fields(BenchRequest)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return BenchRequest(**{**values, **override})


def _not_all(args: argparse.Namespace) -> None:
    if args.method == ALL:
        raise ValueError(f"--method {ALL} is for `bench` only; `{args.command}` takes one method "
                         "(see `trilemma-bench methods`)")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import train_model

    _not_all(args)
    train_model(_spec_of(args), _preset(args), device=args.device, retrain=args.retrain, devices=args.devices,
                strategy=args.strategy, seed=args.train_seed)


def _spec_of(args: argparse.Namespace):
    """A model name names that model; a method name the model it samples from (at --nfe for a method with one
    model per NFE, such as ddgan, which names both a method and its model)."""
    from .methods import METHODS, MODELS, get_method

    if args.method in MODELS and args.method not in METHODS:
        return args.method
    method = get_method(args.method)
    return method.spec_for(args.nfe if args.nfe is not None else method.default_nfe[0])


def cmd_ship(args: argparse.Namespace) -> None:
    _not_all(args)
    if args.classifier:
        from .metrics.classifier import ship_classifier

        print(ship_classifier(args.dataset or PRESETS[args.preset].dataset))
        return
    from .train import ship_model

    print(ship_model(_spec_of(args), _preset(args), seed=args.train_seed, curves=args.curves))


def cmd_sample(args: argparse.Namespace) -> None:

    from .benchmark.config import resolve_device, sample_shape
    from .generate import generate
    from .grid import save_samples
    from .methods import get_method
    from .report_utils import log
    from .samplers import CountingModel
    from .train import train_model

    _not_all(args)
    method, preset = get_method(args.method), _preset(args)
    device = resolve_device(args.device)
    model, _ = train_model(method.spec_for(args.nfe), preset, device=device.type, retrain=args.retrain)
    model = model.to(device)
    net = CountingModel(model.denoiser())
    # The same streams as the benchmark's: image i of --seed here is image i of that seed's cells. A latent
    # model draws x_T in its own shape, and its samples are decoded.
    x = generate(method, model, args.nfe, seed=args.seed, images=args.n, shape=sample_shape(model, preset.dataset),
                 net=net)
    save_samples(x, args.out, title=f"{method.name}, {net.nfe} NFE")
    log(f"{args.n} samples from {method.name} at {net.nfe} NFE -> {args.out}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .benchmark.harness import run_bench

    if args.method == ALL:
        bench_all(args)
    else:
        run_bench(_request(args))


def bench_all(args: argparse.Namespace) -> dict[str, int]:
    """``bench --method all``: every method whose model the preset configures, each on its default NFE grid,
    reusing trained models, then the report. Every method is validated (and dry-run) before any training; a
    method that fails later is reported and the rest go on, finished rows kept. Returns rows per method."""
    import traceback

    from rich.markup import escape

    from .benchmark.config import dry_run, make_config
    from .benchmark.harness import run_bench
    from .methods import METHODS
    from .report_utils import console, log
    from .train import resolve_preset

    if any(getattr(args, k, None) for k in ("solver", "schedule", "model")):
        raise ValueError(f"--solver, --schedule and --model name one method: they cannot be combined with --method {ALL}")
    if getattr(args, "nfe", None):
        raise ValueError(f"--nfe cannot be combined with --method {ALL}: each method runs its own default grid "
                         "(`trilemma-bench methods` lists them); bench one method to choose its NFEs")
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}: choose one of {', '.join(PRESETS)}")
    preset = resolve_preset(PRESETS[args.preset], getattr(args, "dataset", None))
    names = [m.name for m in METHODS.values() if m.model in preset.models]
    if not names:
        raise ValueError(f"preset {preset.name!r} configures no model that a method samples from")

    # One request per method: `bench --method <name>` with the same options.
    per_method = {name: _request(args, method=name) for name in names}
    specs = {}
    for name, req in per_method.items():
        try:
            cfg = make_config(req)
            dry_run(cfg)
        except ValueError as err:
            raise ValueError(f"--method {ALL}: method {name}: {err}") from None
        specs[name] = {cfg.spec_for(n).tag for n in cfg.nfes}

    log(f"bench --method {ALL} on preset {preset.name}: {', '.join(names)}")
    done: dict[str, int] = {}
    failed: dict[str, str] = {}
    retrained: set[str] = set()
    for name, req in per_method.items():
        retrain = bool(getattr(args, "retrain", False)) and not specs[name] <= retrained  # once per model
        try:
            done[name] = len(run_bench(dataclasses.replace(req, retrain=retrain)))
            retrained |= specs[name]
        except Exception as err:  # noqa: BLE001  one method's failure must not cost the others' rows
            failed[name] = f"{type(err).__name__}: {err}"
            console.print(traceback.format_exc(), markup=False, highlight=False)
            log(f"[red]method {escape(name)} failed[/] ({escape(failed[name])}); going on with the rest")

    from .benchmark.results import results_path

    results = Path(getattr(args, "results", None) or LOCAL_DIR)
    if results_path(results).exists():
        from .report import make_report

        reference = REFERENCE_DIR if results == LOCAL_DIR else None  # as `trilemma-bench report` draws them
        log(f"report -> {make_report(results, results / 'report', reference)}")
    for name in names:
        log(f"  {name:20s} " + (f"{done[name]} rows" if name in done else f"[red]failed[/]: {escape(failed[name])}"))
    if failed:
        raise ValueError(f"{len(failed)} of {len(names)} methods failed ({', '.join(failed)}); the rows of the "
                         "others are in the results and the report; rerun one with --method <name>")
    return done


def cmd_curve(args: argparse.Namespace) -> None:
    """Each kept checkpoint of the model's training (shipped under models/<dataset>/curves/, else the cache's),
    benched at one NFE into a results folder of its own: the rows of a training-compute curve."""
    from .benchmark.harness import run_bench
    from .methods import get_method
    from .report_utils import log
    from .train import curve_files

    _not_all(args)
    method = get_method(args.method)
    nfe = args.nfe if args.nfe is not None else method.default_nfe[0]
    preset = _preset(args)
    files = curve_files(method.spec_for(nfe), preset, seed=args.train_seed)
    if not files:
        raise ValueError(f"no kept checkpoints of {method.spec_for(nfe).tag}-{preset.name}: train it "
                         f"(`trilemma-bench train --method {args.method} --preset {preset.name}`) first")

    done = _benched(args.results, method.name, nfe, args.seeds, args.num_samples or preset.num_samples)
    for path in files:
        # A name carries the weights' digest: rows under it are these weights' (a longer run's first kept
        # checkpoints are the preset run's, benched already).
        if path.stem in done:
            log(f"{path.stem}: benched already at NFE {nfe}, seeds {args.seeds} in {args.results}; skipped")
            continue
        run_bench(_request(args, nfe=[nfe], weights=path, bpd_images=0))


def _benched(results: Path, method: str, nfe: int, seeds: list[int], num_samples: int) -> set[str]:
    """Checkpoints with a row for every one of ``seeds`` at (method, NFE, samples) in a results folder."""
    from .benchmark.results import read_results

    rows = read_results(results)
    rows = rows[(rows["method"] == method) & (rows["nfe"].astype(str) == str(nfe))]
    rows = rows[rows["num_samples"].astype(str) == str(num_samples)]
    have = rows.groupby("checkpoint")["seed"].agg(lambda s: {int(v) for v in s})
    return {name for name, got in have.items() if set(seeds) <= got}


def _bench_features(dataset: str) -> Callable[[Tensor], Tensor] | None:
    """Images as the bench scores them: quantized to the data's levels, then the default extractor's features."""
    from .metrics.extractor import dataset_info
    from .metrics.features import default_extractor, get_extractor
    from .quantize import quantize

    info = dataset_info(dataset)
    if not info.is_image:
        return None
    extractor = get_extractor(default_extractor(dataset), dataset)
    return lambda images: extractor(quantize(images, info.levels))


def cmd_diagnose(args: argparse.Namespace) -> None:
    from .data import load_split
    from .diagnose import diagnose, print_diagnosis
    from .methods import get_method
    from .train import train_model

    _not_all(args)
    method, preset = get_method(args.method), _preset(args)
    x_train, _ = load_split(preset.dataset, "train")
    nfes = args.nfe or list(method.default_nfe)
    runs = {}
    for nfe in nfes:  # one model per NFE where the method has one (DDGAN's T)
        spec = method.spec_for(nfe)
        if spec not in runs:
            runs[spec] = (train_model(spec, preset, seed=args.train_seed)[0], [])
        runs[spec][1].append(nfe)
    features = _bench_features(preset.dataset)
    for spec, (model, grid) in runs.items():
        result = diagnose(method, model, x_train, grid, n=args.num_samples, seed=args.seed, features=features)
        print_diagnosis(result, f"diagnose {method.name} ({spec.tag}, preset {preset.name}): samples against the "
                                f"{len(x_train)} training points, {args.num_samples} per cell")


def cmd_bpd(args: argparse.Namespace) -> None:
    from .benchmark.config import resolve_device
    from .likelihood import TIME_SAMPLES, check_request, evaluate_bpd
    from .methods import get_method
    from .report_utils import log
    from .train import train_model

    time_samples = args.time_samples or TIME_SAMPLES
    if time_samples < 1 or args.batch_size < 1:
        raise ValueError("--time-samples and --batch-size must be positive")
    method, preset = get_method(args.method), _preset(args)
    check_request(args.method, preset.dataset, args.split, args.num_images)  # bad input refused before training
    device = resolve_device(args.device)
    spec = method.spec_for(method.default_nfe[0])
    model, _ = train_model(spec, preset, device=device.type, retrain=args.retrain)
    res = evaluate_bpd(args.method, model, preset.dataset, split=args.split, num_images=args.num_images,
                       batch_size=args.batch_size, seed=args.seed, time_samples=time_samples, device=device)
    terms = ", ".join(f"{k} {v:.4f}" for k, v in res.terms.items())
    log(f"{args.method} on {preset.dataset} (preset {preset.name}, {args.split} split, {res.n} images): "
        f"{res.mean:.4f} +- {res.sem:.4f} bits/dim (mean +- standard error over images); terms: {terms}")
    if args.results is not None:
        from .benchmark.provenance import checkpoint_id
        from .benchmark.results import set_columns, write_schedule

        where = {"method": args.method, "preset": preset.name, "checkpoint": checkpoint_id(model, f"{spec.tag}-{preset.name}")}
        schedule = model.schedule_table()
        if schedule is not None:  # as the bench does: the report draws the learned schedule
            write_schedule(args.results, where["checkpoint"], schedule)
        changed = set_columns(args.results, where, {"bpd": res.mean, "bpd_sem": res.sem, "bpd_n": res.n,
                                                    "bpd_split": args.split})
        log(f"bits/dim written into {changed} rows of {args.method} ({where['checkpoint']}) in {args.results}"
            + ("" if changed else ": none matched (bench this method and checkpoint first)"))
    print(f"{res.mean:.6f} {res.sem:.6f}")


def cmd_report(args: argparse.Namespace) -> None:
    from .report import make_report

    if args.reference is None and args.results == LOCAL_DIR:
        args.reference = REFERENCE_DIR

    if getattr(args, "budget_nfe", None) is not None or getattr(args, "budget_ms", None) is not None:
        from .report.budget import print_budget

        print_budget(args.results, args.budget_nfe, args.budget_ms, args.reference)
        return
    make_report(args.results, args.out or args.results / "report", args.reference, svg=args.svg)


def cmd_retime(args: argparse.Namespace) -> None:
    from .benchmark.retime import retime
    from .report_utils import log

    run, done, skipped = retime(args.results, args.preset, methods=args.method, rounds=args.rounds, device=args.device)
    for line in skipped:
        log(f"[yellow]skipped[/] {line}")
    log(f"re-timed {done} rows in timing run {run.id}; `trilemma-bench report` draws them on one ms axis")


def cmd_readme(args: argparse.Namespace) -> None:
    from .report.readme import stale_blocks, write_blocks

    if args.check:
        stale = stale_blocks()
        if stale:
            raise ValueError(f"generated numbers out of date in {', '.join(stale)}: run `trilemma-bench readme`")
        print("generated blocks are current")
        return
    changed = write_blocks()
    print(f"rewrote {', '.join(changed)}" if changed else "generated blocks were current")


def cmd_features(args: argparse.Namespace) -> None:
    from .metrics.features import train_and_cache
    from .report_utils import log

    info = train_and_cache(args.dataset, force=args.force)
    log(f"domain classifier for {args.dataset}: {info}")


def cmd_methods(args: argparse.Namespace) -> None:
    from .methods import METHODS

    for m in METHODS.values():
        print(f"{m.name:20s} model={m.model:6s} sampler={m.sampler:38s} NFE={list(m.default_nfe)}  {m.description}")
    for p in PRESETS.values():
        print(f"preset {p.name:7s} dataset={p.dataset:8s} {p.note}")
    from .solver_schedule import SCHEDULES, SOLVERS

    print(f"solvers (--solver): {', '.join(f'{n} (on {s.default_schedule})' for n, s in SOLVERS.items())}; "
          f"schedules (--schedule): {', '.join(SCHEDULES)}; or module:function")


COMMANDS = {"train": cmd_train, "ship": cmd_ship, "curve": cmd_curve, "diagnose": cmd_diagnose, "sample": cmd_sample, "bench": cmd_bench, "bpd": cmd_bpd, "report": cmd_report,
            "retime": cmd_retime, "readme": cmd_readme,
            "features": cmd_features, "methods": cmd_methods}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoints import CheckpointError
    from .datasets.common import DatasetUnavailable

    try:
        from .benchmark.timing import set_threads

        set_threads(getattr(args, "threads", None))
        COMMANDS[args.command](args)
    except (CheckpointError, DatasetUnavailable, ValueError) as err:
        # Known user errors: one clear line, no traceback from deep inside torch.
        print(f"trilemma-bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trilemma-bench: interrupted; finished rows and checkpoints are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
