"""How long DDGAN must train on `digits`, and at which learning rates: FID, precision, recall, coverage and
the discriminator's mean loss against training length, and the cost of a training step.

    .venv/bin/python benchmarks/study_ddgan_digits_length.py --steps 1000,2000,4000 --n 2000 --threads 1
    .venv/bin/python benchmarks/study_ddgan_digits_length.py --steps 500,1000,2000 --lr-g 1.6e-4 --lr-d 5e-4

A D whose loss stays at chance (2 ln 2 = 1.386) gives G no signal; the learning-rate options show whether
a faster D (the two-time-scale rule) or faster both leave chance sooner than the preset's official rates.

One training run of the `digits` DDGAN (seed 0, the preset's settings; the cosine learning-rate decay
spans the longest length, so a snapshot at s steps is close to, not the same as, a run of s steps), EMA
snapshots at each length, then sampling at the preset's T from the same initial noises, scored as the
benchmark scores them (digits classifier features, FID against the train split). One JSON line per cell
to ``benchmarks/results/ddgan_digits_length.jsonl``, with the wall-clock and process CPU seconds per
training step (at one thread the CPU time is what a quiet machine's wall clock would read).
"""

from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from trilemma_bench.benchmark.scoring import load_reference, score
from trilemma_bench.data import DATASETS, TrilemmaDataModule
from trilemma_bench.methods import get_method
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import get_preset
from trilemma_bench.quantize import quantize
from trilemma_bench.train import build_model

OUT = Path(__file__).resolve().parent / "results" / "ddgan_digits_length.jsonl"


class Snapshots(Callback):
    """EMA generator weights at the listed iterations, and the clock at each of them."""

    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder
        self.clock: dict[int, tuple[float, float]] = {0: (time.perf_counter(), time.process_time())}
        self.d_losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        done = module.iteration
        if "train/d_loss" in trainer.callback_metrics and "train/r1" not in trainer.callback_metrics:
            self.d_losses[done] = float(trainer.callback_metrics["train/d_loss"])
        trainer.callback_metrics.pop("train/r1", None)  # logged on R1 iterations only; their d_loss carries it
        if done in self.steps and done not in self.clock:
            self.clock[done] = (time.perf_counter(), time.process_time())
            torch.save(module.state_dict(), self.folder / f"step{done}.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1000,2000,4000")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr-g", type=float, default=None, help="G's learning rate (default: the preset's)")
    parser.add_argument("--lr-d", type=float, default=None, help="D's learning rate (default: the preset's)")
    parser.add_argument("--nfe", type=int, default=4, help="DDGAN's T")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ddgan-digits-length"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(int(s) for s in args.steps.split(","))
    preset = get_preset("digits").with_steps(steps[-1])
    cfg0 = preset.train_config("ddgan")
    lr_g = args.lr_g if args.lr_g is not None else cfg0.lr
    lr_d = args.lr_d if args.lr_d is not None else cfg0.options["lr_d"]
    preset = preset.replace(models={**preset.models, "ddgan": cfg0.replace(lr=lr_g).with_options(lr_d=lr_d)})
    spec = get_method("ddgan").spec_for(args.nfe)
    T = spec.options["num_timesteps"]
    args.work.mkdir(parents=True, exist_ok=True)

    L.seed_everything(0, verbose=False)
    module = build_model(spec, preset)
    snaps = Snapshots(steps, args.work)
    trainer = L.Trainer(max_steps=steps[-1] * module.optimizer_steps_per_batch, accelerator="cpu", devices=1,
                        logger=False, callbacks=[snaps], enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=TrilemmaDataModule("digits", batch_size=preset.train_config("ddgan").batch_size,
                                                       seed=0))

    model = build_model(spec, preset).eval()
    cfg = types.SimpleNamespace(preset=preset, extractor="domain", device=torch.device("cpu"), num_samples=args.n)
    ref = load_reference(cfg)
    x_T = initial_noise(DATASETS["digits"].shape, 0, range(args.n))
    previous = 0
    for s in steps:
        model.load_state_dict(torch.load(args.work / f"step{s}.pt"))
        with torch.no_grad():
            x = torch.cat([
                get_method("ddgan").sample(model, x_T[i : i + 500], T, net=model.denoiser(),
                                           noise=ImageNoise(0, range(i, i + 500)))
                for i in range(0, args.n, 500)
            ])
        m = score(quantize(x, ref.levels), ref, torch.device("cpu"))
        (w0, c0), (w1, c1) = snaps.clock[previous], snaps.clock[s]
        window = [v for k, v in snaps.d_losses.items() if previous < k <= s]
        row = {"steps": s, "T": T, "lr_g": lr_g, "lr_d": lr_d, "n": args.n, "threads": args.threads,
               "d_loss_mean": round(sum(window) / max(len(window), 1), 4),
               "wall_s_per_step": round((w1 - w0) / (s - previous), 4),
               "cpu_s_per_step": round((c1 - c0) / (s - previous), 4),
               **{k: round(m[k], 3) for k in ("fid", "precision", "recall", "coverage")}}
        previous = s
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
