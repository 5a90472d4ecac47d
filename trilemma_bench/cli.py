"""trilemma-bench train | sample | bench | bpd | report | features."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .paths import LOCAL_DIR, REFERENCE_DIR
from .presets import DEFAULT_PRESET, PRESETS

ALL = "all"  # `bench --method all`: every method whose model the preset configures


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 10,20,50, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="ddim",
                   help="method (ddim, ddpm-fixedsmall, ...; `train` also takes a model name such as ddpm; "
                        f"`bench` also takes {ALL!r}: every method of the preset); see `trilemma-bench methods`")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="size preset (default: %(default)s)")
    p.add_argument("--dataset", default=None, help="dataset (default: the preset's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--retrain", action="store_true", help="train anew even when a checkpoint exists")
    p.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: torch's); 1 runs steadily on a shared machine")
    p.add_argument("--train-seed", type=int, default=0,
                   help="training seed of the model (default: 0, the shipped run; another seed is another training)")


def _distributed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=1,
                   help="processes (GPUs, or CPU processes) that train data-parallel and sample sharded (default: 1)")
    p.add_argument("--strategy", default="auto",
                   help="Lightning strategy for --devices > 1 (train: ddp or ddp_spawn; bench: ddp_spawn)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trilemma-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or reuse) the model a method needs")
    _common(p)
    _distributed(p)
    p.add_argument("--nfe", type=int, default=None, help="for methods with one model per NFE (DDGAN's T)")

    p = sub.add_parser("ship", help="maintainers: copy a cached model's sampling weights into the repository's models/")
    _common(p)
    p.add_argument("--nfe", type=int, default=None, help="for methods with one model per NFE (DDGAN's T)")
    p.add_argument("--classifier", action="store_true",
                   help="ship the dataset's cached domain classifier (models/extractors/) instead of a model")

    p = sub.add_parser("sample", help="draw a sample grid")
    _common(p)
    p.add_argument("--nfe", type=int, default=20, help="network evaluations")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("grid.png"))

    p = sub.add_parser("bench", help="time sampling per NFE, compute metrics, append rows to the results table")
    _common(p)
    _distributed(p)
    p.add_argument("--nfe", type=_int_list, default=None, help="comma-separated NFE grid (default: the method's)")
    p.add_argument("--seeds", type=_int_list, default=[0], help="comma-separated seeds (default: 0)")
    p.add_argument("--num-samples", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--bf16", action="store_true", help="sample under bf16 autocast")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (static shapes; compile time recorded apart as warmup_seconds)")
    p.add_argument("--channels-last", action="store_true", help="network and inputs in channels_last memory format")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --compile on a GPU: replay the compiled network as CUDA graphs (mode reduce-overhead)")
    p.add_argument("--extractor", default=None, choices=["domain", "inception", "raw"])
    p.add_argument("--results", type=Path, default=LOCAL_DIR,
                   help="results folder (default: %(default)s, git-ignored; the committed reference table is "
                        f"{REFERENCE_DIR}/, written only when asked for by --results {REFERENCE_DIR})")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed batches at least (default: 5); the published ms/image is their median")
    p.add_argument("--bpd-images", type=int, default=None,
                   help="methods with a likelihood (vdm, ddpm-fixed*): bits/dim bound of this many test images in "
                        "every row (default: 500, or the whole split if smaller; 0: none)")

    p.add_argument("--weights", type=Path, default=None,
                   help="sample from this shipped-format file (.safetensors with its .json) instead of the model the "
                        "preset resolves to (shipped, cached or trained)")

    p = sub.add_parser("curve", help="quality against training compute: bench every checkpoint a model's training "
                                     "kept (250, 500, 1k, ... steps) at one NFE")
    _common(p)
    p.add_argument("--nfe", type=int, default=None, help="the one NFE each checkpoint is benched at")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--num-samples", type=int, default=None)
    p.add_argument("--results", type=Path, default=LOCAL_DIR / "curves",
                   help="results folder of the curve rows (default: %(default)s; the committed ones: results/curves)")

    p = sub.add_parser("diagnose", help="the exact denoiser of the training points beside the learned network, "
                                        "through the method's sampler: a broken pipeline or an under-trained network?")
    _common(p)
    p.add_argument("--nfe", type=_int_list, default=None, help="comma-separated NFE grid (default: the method's)")
    p.add_argument("--num-samples", type=int, default=500, help="samples per NFE and network (default: 500)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("bpd", help="bits/dim bound on the test split (VDM's, or DDPM's with its discretized decoder)")
    _common(p)
    p.set_defaults(method="vdm")  # vdm, ddpm-fixedlarge or ddpm-fixedsmall: the methods with a likelihood
    p.add_argument("--num-images", type=int, default=None, help="first N images of the split (default: all)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image likelihood streams")
    p.add_argument("--time-samples", type=int, default=None, help="VDM: times per image for the diffusion term")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--results", type=Path, default=None,
                   help="also write the figure into the rows of this method's checkpoint in this results folder "
                        "(and a learned schedule into its schedules/, as the bench does)")

    p = sub.add_parser("retime", help="re-time every cell of a results table in one timing run (round-robin), so "
                                      "its ms/image figures compare; quality columns are left as they are")
    p.add_argument("--preset", default="digits", choices=sorted(PRESETS), help="the preset's rows (default: digits)")
    p.add_argument("--method", type=lambda s: s.split(","), default=None, help="comma-separated methods (default: all)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds over all rows; a row's figure is its median")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads; 1 runs steadily on a shared machine")
    p.add_argument("--results", type=Path, default=LOCAL_DIR,
                   help="the results folder whose rows are re-timed (default: %(default)s; the reference: results)")

    p = sub.add_parser("report", help="tables, plots and an HTML page from the results table")
    p.add_argument("--results", type=Path, default=LOCAL_DIR,
                   help="your results (default: %(default)s); drawn beside the reference rows, labelled '(yours)'")
    p.add_argument("--reference", type=Path, default=None,
                   help=f"the committed reference results drawn beside yours (default: {REFERENCE_DIR} when --results "
                        "is left at its default, none otherwise); the same folder as --results: that folder alone")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <results>/report)")
    p.add_argument("--budget-nfe", type=float, default=None,
                   help="print the best cell on quality and diversity within this many NFE (no report written)")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="print the best cell on quality and diversity within this ms/image (no report written)")

    p = sub.add_parser("readme", help="maintainers: regenerate the README's (and docs/results.md's) numbers from "
                                      "results/results.csv, or --check that they are current")
    p.add_argument("--check", action="store_true", help="write nothing; fail when a generated block is stale")

    p = sub.add_parser("features", help="feature extractors")
    fsub = p.add_subparsers(dest="features_command", required=True)
    f = fsub.add_parser("train", help="train and cache the domain classifier of a dataset")
    f.add_argument("--dataset", required=True)
    f.add_argument("--force", action="store_true")

    sub.add_parser("methods", help="list methods and presets")
    return parser


def _preset(args: argparse.Namespace):
    from .train import resolve_preset

    preset = resolve_preset(PRESETS[args.preset], args.dataset)
    if args.steps is not None:
        preset = preset.with_steps(args.steps)
    return preset


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

    print(ship_model(_spec_of(args), _preset(args), seed=args.train_seed))


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from .benchmark.config import resolve_device, sample_shape
    from .grid import save_samples
    from .methods import get_method
    from .noise import ImageNoise, initial_noise
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
    x_T = initial_noise(sample_shape(model, preset.dataset), args.seed, range(args.n), device)
    x = method.sample(model, x_T, args.nfe, net=net, noise=ImageNoise(args.seed, range(args.n)))
    if method.decoder is not None:
        with torch.no_grad():
            x = method.decoder(model)(x)
    save_samples(x, args.out, title=f"{method.name}, {net.nfe} NFE")
    log(f"{args.n} samples from {method.name} at {net.nfe} NFE -> {args.out}")


def cmd_bench(args: argparse.Namespace) -> None:
    from .benchmark.harness import run_bench

    if args.method == ALL:
        bench_all(args)
    else:
        run_bench(args)


def bench_all(args: argparse.Namespace) -> dict[str, int]:
    """``bench --method all``: every method whose model the preset configures, each on its default NFE grid,
    reusing trained models, then the report. Every method is validated (and dry-run) before any training; a
    method that fails later is reported and the rest go on, finished rows kept. Returns rows per method."""
    import traceback

    from rich.markup import escape

    from .benchmark.config import config_from_args, dry_run
    from .benchmark.harness import run_bench
    from .methods import METHODS
    from .report_utils import console, log
    from .train import resolve_preset

    if getattr(args, "nfe", None):
        raise ValueError(f"--nfe cannot be combined with --method {ALL}: each method runs its own default grid "
                         "(`trilemma-bench methods` lists them); bench one method to choose its NFEs")
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}: choose one of {', '.join(PRESETS)}")
    preset = resolve_preset(PRESETS[args.preset], getattr(args, "dataset", None))
    names = [m.name for m in METHODS.values() if m.model in preset.models]
    if not names:
        raise ValueError(f"preset {preset.name!r} configures no model that a method samples from")

    # One Namespace per method, as the parser makes it for `bench --method <name>` with the same options.
    per_method = {}
    for name in names:
        ns = build_parser().parse_args(["bench", "--method", name])
        ns.__dict__.update({k: v for k, v in vars(args).items() if k != "method"})
        per_method[name] = ns
    specs = {}
    for name, ns in per_method.items():
        try:
            cfg = config_from_args(ns)
            dry_run(cfg)
        except ValueError as err:
            raise ValueError(f"--method {ALL}: method {name}: {err}") from None
        specs[name] = {cfg.spec_for(n).tag for n in cfg.nfes}

    log(f"bench --method {ALL} on preset {preset.name}: {', '.join(names)}")
    done: dict[str, int] = {}
    failed: dict[str, str] = {}
    retrained: set[str] = set()
    for name, ns in per_method.items():
        ns.retrain = bool(getattr(args, "retrain", False)) and not specs[name] <= retrained  # once per model
        try:
            done[name] = len(run_bench(ns))
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
    from .train import curve_files

    _not_all(args)
    method = get_method(args.method)
    nfe = args.nfe if args.nfe is not None else method.default_nfe[0]
    preset = _preset(args)
    files = curve_files(method.spec_for(nfe), preset, seed=args.train_seed)
    if not files:
        raise ValueError(f"no kept checkpoints of {method.spec_for(nfe).tag}-{preset.name}: train it "
                         f"(`trilemma-bench train --method {args.method} --preset {preset.name}`) first")
    for path in files:
        ns = build_parser().parse_args(["bench", "--method", args.method])
        ns.__dict__.update({k: v for k, v in vars(args).items() if k in vars(ns) and k not in ("nfe", "command")})
        ns.nfe, ns.weights, ns.bpd_images = [nfe], path, 0
        run_bench(ns)


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
    for spec, (model, grid) in runs.items():
        result = diagnose(method, model, x_train, grid, n=args.num_samples, seed=args.seed)
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
    make_report(args.results, args.out or args.results / "report", args.reference)


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


COMMANDS = {"train": cmd_train, "ship": cmd_ship, "curve": cmd_curve, "diagnose": cmd_diagnose, "sample": cmd_sample, "bench": cmd_bench, "bpd": cmd_bpd, "report": cmd_report,
            "retime": cmd_retime, "readme": cmd_readme,
            "features": cmd_features, "methods": cmd_methods}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoints import CheckpointError
    from .data import DatasetUnavailable

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
