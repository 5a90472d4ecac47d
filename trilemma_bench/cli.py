"""trilemma-bench train | sample | bench | report | features."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .presets import DEFAULT_PRESET, PRESETS


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 10,20,50, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="ddim",
                   help="method (ddim, ddpm-fixedsmall, ...; `train` also takes a model name such as ddpm); "
                        "see `trilemma-bench methods`")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="size preset (default: %(default)s)")
    p.add_argument("--dataset", default=None, help="dataset (default: the preset's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--retrain", action="store_true", help="train anew even when a checkpoint exists")
    p.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: torch's); 1 runs steadily on a shared machine")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trilemma-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or reuse) the model a method needs")
    _common(p)
    p.add_argument("--nfe", type=int, default=None, help="for methods with one model per NFE (DDGAN's T)")

    p = sub.add_parser("sample", help="draw a sample grid")
    _common(p)
    p.add_argument("--nfe", type=int, default=20, help="network evaluations")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("grid.png"))

    p = sub.add_parser("bench", help="time sampling per NFE, compute metrics, append rows to the results table")
    _common(p)
    p.add_argument("--nfe", type=_int_list, default=None, help="comma-separated NFE grid (default: the method's)")
    p.add_argument("--seeds", type=_int_list, default=[0], help="comma-separated seeds (default: 0)")
    p.add_argument("--num-samples", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--bf16", action="store_true", help="sample under bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--extractor", default=None, choices=["domain", "inception", "raw"])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--repeats", type=int, default=None,
                   help="timed batches at least (default: 5); the published ms/image is their median")

    p = sub.add_parser("report", help="tables, plots and an HTML page from the results table")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <results>/report)")

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


def cmd_train(args: argparse.Namespace) -> None:
    from .methods import MODELS, get_method
    from .train import train_model

    # A model name trains that model; a method name trains the model it samples from.
    if args.method in MODELS:
        spec = args.method
    else:
        method = get_method(args.method)
        spec = method.spec_for(args.nfe if args.nfe is not None else method.default_nfe[0])
    train_model(spec, _preset(args), device=args.device, retrain=args.retrain)


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from .bench.config import resolve_device, sample_shape
    from .grid import save_samples
    from .methods import get_method
    from .noise import ImageNoise, initial_noise
    from .report_utils import log
    from .samplers import CountingModel
    from .train import train_model

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
    from .bench.harness import run_bench

    run_bench(args)


def cmd_report(args: argparse.Namespace) -> None:
    from .report import make_report

    make_report(args.results, args.out or args.results / "report")


def cmd_features(args: argparse.Namespace) -> None:
    from .metrics.features import train_and_cache
    from .report_utils import log

    info = train_and_cache(args.dataset, force=args.force)
    log(f"domain classifier for {args.dataset}: {info}")


def cmd_methods(args: argparse.Namespace) -> None:
    from .methods import METHODS

    for m in METHODS.values():
        print(f"{m.name:16s} model={m.model:6s} sampler={m.sampler:22s} NFE={list(m.default_nfe)}  {m.description}")
    for p in PRESETS.values():
        print(f"preset {p.name:7s} dataset={p.dataset:8s} {p.note}")


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "bench": cmd_bench, "report": cmd_report,
            "features": cmd_features, "methods": cmd_methods}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoints import CheckpointError
    from .data import DatasetUnavailable

    try:
        from .bench.timing import set_threads

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
