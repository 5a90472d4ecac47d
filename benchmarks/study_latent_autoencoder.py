"""How long latent diffusion's autoencoder must train: reconstruction figures against training steps, per f.

    .venv/bin/python benchmarks/study_latent_autoencoder.py --preset digits --f 2 --steps 500,1000,2000,3000 --threads 1

One training run per f of the preset's autoencoder (seed 0, the preset's settings; the learning rate is
constant after warm-up, so a snapshot at step s is what a run of s steps gives), snapshots of the weights,
then the figures the checkpoint records (:func:`~trilemma_bench.methods.autoencoder.reconstruction_metrics`:
test MSE and PSNR, reconstruction FID of the split rows are scored against, in the domain classifier's
features). ``--lr`` and ``--ch`` override the preset to compare settings. One JSON line per snapshot to
``benchmarks/results/latent_autoencoder.jsonl``, with the process CPU seconds per training step (1 thread:
what a quiet machine takes; the wall clock of a shared one also measures the neighbours).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from trilemma_bench.data import TrilemmaDataModule
from trilemma_bench.methods.autoencoder import reconstruction_metrics
from trilemma_bench.methods.latent import autoencoder_spec
from trilemma_bench.methods.latent_samplers import FACTORS
from trilemma_bench.presets import get_preset
from trilemma_bench.train import build_model

OUT = Path(__file__).resolve().parent / "results" / "latent_autoencoder.jsonl"


class Snapshots(Callback):
    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder
        self.cpu: dict[int, float] = {}
        self._start = time.process_time()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        if trainer.global_step in self.steps:
            self.cpu[trainer.global_step] = time.process_time() - self._start
            torch.save(module.state_dict(), self.folder / f"step{trainer.global_step}.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--f", default="1,2,4")
    parser.add_argument("--steps", default="500,1000,2000,3000")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--ch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/latent-autoencoder-study"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(int(s) for s in args.steps.split(","))
    base = get_preset(args.preset)
    cfg = base.models["kl-ae"].replace(train_steps=steps[-1])
    if args.lr is not None:
        cfg = cfg.replace(lr=args.lr)
    if args.ch is not None:
        cfg = cfg.replace(net={**cfg.net, "ch": args.ch})
    preset = base.replace(models={**base.models, "kl-ae": cfg})

    for f in (int(v) for v in args.f.split(",")):
        spec = autoencoder_spec(f, FACTORS[f])
        work = args.work / f"{args.preset}-f{f}-lr{cfg.lr}-ch{cfg.net['ch']}"
        work.mkdir(parents=True, exist_ok=True)
        L.seed_everything(0, verbose=False)
        model = build_model(spec, preset)
        snaps = Snapshots(steps, work)
        trainer = L.Trainer(max_steps=steps[-1], accelerator="cpu", devices=1, logger=False, callbacks=[snaps],
                            enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0, enable_progress_bar=False)
        model.hparams.recon_split = None  # scored below, once per snapshot
        trainer.fit(model, datamodule=TrilemmaDataModule(preset.dataset, batch_size=cfg.batch_size, seed=0))
        model.eval()
        for s in steps:
            model.load_state_dict(torch.load(work / f"step{s}.pt"))
            m = reconstruction_metrics(model, preset.dataset, fid_split=cfg.options["recon_split"])
            row = {"preset": args.preset, "f": f, "channels": FACTORS[f], "ch": cfg.net["ch"], "lr": cfg.lr,
                   "steps": s, "cpu_s_per_step": round(snaps.cpu[s] / s, 4), "threads": args.threads,
                   **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items()}}
            print(json.dumps(row), flush=True)
            with OUT.open("a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
