"""How long DDGAN must train on `digits`: FID, precision, recall and coverage against training length, and
the cost of a training step.

    .venv/bin/python benchmarks/study_ddgan_digits_length.py --steps 1000,2000,4000 --n 2000 --threads 1

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

from trilemma_bench.bench.scoring import load_reference, quantize, score
from trilemma_bench.data import DATASETS, TrilemmaDataModule
from trilemma_bench.methods import get_method
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import get_preset
from trilemma_bench.train import build_model

OUT = Path(__file__).resolve().parent / "results" / "ddgan_digits_length.jsonl"


class Snapshots(Callback):
    """EMA generator weights at the listed iterations, and the clock at each of them."""

    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder
        self.clock: dict[int, tuple[float, float]] = {0: (time.perf_counter(), time.process_time())}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        done = module.iteration
        if done in self.steps and done not in self.clock:
            self.clock[done] = (time.perf_counter(), time.process_time())
            torch.save(module.state_dict(), self.folder / f"step{done}.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1000,2000,4000")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ddgan-digits-length"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(int(s) for s in args.steps.split(","))
    preset = get_preset("digits").with_steps(steps[-1])
    spec = get_method("ddgan").spec_for(4)
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
        row = {"steps": s, "T": T, "n": args.n, "threads": args.threads,
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
