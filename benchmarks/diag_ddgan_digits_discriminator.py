"""Does the `digits` DDGAN discriminator learn? D against a frozen, untrained G, then D and G together.

    .venv/bin/python benchmarks/diag_ddgan_digits_discriminator.py --iterations 150 --threads 1

The preset's `digits` DDGAN (official learning rates and Adam betas) logged D's loss at log 4 (chance) with
R1 below 1e-4 for the first 1,450 of its 4,000 iterations, and 1.37-1.38 at the end. This separates the two explanations: a D that cannot learn at all
(a bug: its loss stays at chance even against a frozen G) from a G that keeps pace with D from the start (D
learns alone but not in the game). Prints D's loss and, at the least noisy step t = 0, D's mean logit on
real and on fake pairs every 25 iterations. ``--lr-d`` / ``--lr-g`` override the preset's rates.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch

from trilemma_bench.data import TrilemmaDataModule
from trilemma_bench.presets import get_preset
from trilemma_bench.train import build_model


def batches(data: TrilemmaDataModule) -> Iterator[torch.Tensor]:
    while True:
        for x, _ in data.train_dataloader():
            yield x


def run(train_g: bool, iterations: int, lr_d: float | None, lr_g: float | None, seed: int) -> None:
    torch.manual_seed(seed)
    preset = get_preset("digits")
    model = build_model("ddgan", preset).train()
    data = TrilemmaDataModule("digits", batch_size=preset.train_config("ddgan").batch_size, seed=seed)
    data.prepare_data()
    data.setup()
    (opt_g, opt_d), _ = model.configure_optimizers()  # the module's own Adam settings; no cosine decay here
    for opt, lr in ((opt_d, lr_d), (opt_g, lr_g)):
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr
    if not train_g:
        print(f"digits DDGAN, lr_d {opt_d.param_groups[0]['lr']:g}, lr_g {opt_g.param_groups[0]['lr']:g}, "
              f"{torch.get_num_threads()} thread(s), seed {seed}")
    print(f"--- {'D and G together' if train_g else 'D alone, G frozen at its initialisation'}")
    for i, x0 in zip(range(iterations), batches(data)):
        losses = model.discriminator_loss(x0, with_r1=False)
        opt_d.zero_grad(set_to_none=True)
        losses["d_loss"].backward()
        opt_d.step()
        if train_g:
            opt_g.zero_grad(set_to_none=True)
            model.generator_loss(x0).backward()
            opt_g.step()
        if i % 25 == 0 or i == iterations - 1:
            with torch.no_grad():
                t = torch.zeros(len(x0), dtype=torch.long)
                x_prev, x_t = model.q_pair(x0, t)
                real, fake = model.disc(x_prev, x_t, t), model.disc(model.fake_pair(x_t, t), x_t, t)
            print(f"{i:5d}  d_loss {losses['d_loss'].item():.4f}  t=0 logits: real {real.mean():+.3f} "
                  f"fake {fake.mean():+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-d", type=float, default=None)
    parser.add_argument("--lr-g", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for train_g in (False, True):
        run(train_g, args.iterations, args.lr_d, args.lr_g, args.seed)


if __name__ == "__main__":
    main()
