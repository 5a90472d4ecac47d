"""The command line's options: one parser, built here so the commands (cli.py) stay short."""

from __future__ import annotations

import argparse
from pathlib import Path

from .paths import LOCAL_DIR, REFERENCE_DIR
from .presets import DEFAULT_PRESET, PRESETS

DESCRIPTION = ("Speed, quality and diversity of diffusion acceleration methods under one protocol: train or reuse "
               "a model, bench it, report the trade-off.")
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
    p.add_argument("--steps", type=int, default=None,
                   help="train the model --method names (or samples from) this many steps instead of the preset's; "
                        "what it is trained on keeps the preset's (a latent model's autoencoder); a run of another "
                        "length is its own run, <model>-<preset>-<N>steps")
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
    parser = argparse.ArgumentParser(prog="trilemma-bench", description=DESCRIPTION)
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
    p.add_argument("--no-curves", dest="curves", action="store_false",
                   help="leave out the checkpoints its training kept (ship them only where curve rows cite them)")

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

    p.add_argument("--solver", default=None,
                   help="walk the method's network with this solver instead of its sampler: ddim, dpmpp-2m, "
                        "dpmpp-3m, heun, or module:function (walk(model, x, times) -> x_0)")
    p.add_argument("--schedule", default=None,
                   help="on these times (default: the solver's own): uniform, linspace, logsnr, edm, or "
                        "module:function (schedule(model, steps) -> times)")
    p.add_argument("--model", default=None,
                   help="bench a network of your own instead of the method's: module:factory (returns a model "
                        "keeping the contract) or diffusers:PATH (a local diffusers UNet2DModel + scheduler folder)")
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
    p.add_argument("--svg", action="store_true", help="write each plot as SVG too, beside its PNG (for papers)")
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
