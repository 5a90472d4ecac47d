"""Why DDIM@50 trailed DDPM@1000 on `digits`: FID of both against the length of DDPM training.

    .venv/bin/python benchmarks/study_digits_training_length.py --steps 4000,8000,16000 --n 2000 --threads 1

One training run of the `digits` network (seed 0, the preset's settings, constant learning rate after
warm-up, so a snapshot at step s is what a run of s steps gives), snapshots of the weights at each step
count, then DDIM at 50 and 100 NFE and ancestral DDPM at 1000 NFE from the same 2,000 initial noises,
scored as the benchmark scores them (digits classifier features, FID against the train split). One JSON
line per cell to ``benchmarks/results/digits_training_length.jsonl``. This is a study, not a timing:
it takes about an hour at one thread, most of it 1000-step DDPM. The committed figures came from a draft
of this script with the same seeds, cells and scoring; its 16,000-step DDPM@1000 cell was stopped unrun to
free the CPU.

The committed figures predate the scoring rules of issue 8 (they scored unquantized samples against the
training split, with one noise generator per batch); run now, the script scores as the harness does today.
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

OUT = Path(__file__).resolve().parent / "results" / "digits_training_length.jsonl"
CELLS = (("ddim", 50), ("ddim", 100), ("ddpm-fixedlarge", 1000))


class Snapshots(Callback):
    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        if trainer.global_step in self.steps:
            torch.save(module.state_dict(), self.folder / f"step{trainer.global_step}.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="4000,8000,16000")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/digits-training-length"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(int(s) for s in args.steps.split(","))
    preset = get_preset("digits").with_steps(steps[-1])
    args.work.mkdir(parents=True, exist_ok=True)

    if not all((args.work / f"step{s}.pt").exists() for s in steps):
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(max_steps=steps[-1], accelerator="cpu", devices=1, logger=False,
                            callbacks=[Snapshots(steps, args.work)], enable_checkpointing=False,
                            enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(build_model("ddpm", preset), datamodule=TrilemmaDataModule("digits", batch_size=128, seed=0))

    model = build_model("ddpm", preset).eval()
    cfg = types.SimpleNamespace(preset=preset, extractor="domain", device=torch.device("cpu"), num_samples=args.n)
    ref = load_reference(cfg)
    x_T = initial_noise(DATASETS["digits"].shape, 0, range(args.n))
    for s in steps:
        model.load_state_dict(torch.load(args.work / f"step{s}.pt"))
        for name, nfe in CELLS:
            start = time.perf_counter()
            with torch.no_grad():
                x = torch.cat([
                    get_method(name).sample(model, x_T[i : i + 500], nfe, net=model.denoiser(),
                                            noise=ImageNoise(0, range(i, i + 500)))
                    for i in range(0, args.n, 500)
                ])
            m = score(quantize(x, ref.levels), ref, torch.device("cpu"))
            row = {"steps": s, "method": name, "nfe": nfe, "n": args.n, "sec": round(time.perf_counter() - start),
                   **{k: round(m[k], 3) for k in ("fid", "precision", "recall", "coverage")}}
            print(json.dumps(row), flush=True)
            with OUT.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
