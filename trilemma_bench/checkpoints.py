"""Where trained checkpoints live, and the checks that refuse a corrupt or mismatched one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .paths import sub_cache

if TYPE_CHECKING:  # the report and the CLI's error handling import this module; Lightning takes seconds to load
    import lightning as L


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, or made under another configuration."""


def checkpoint_path(model: str, preset: str, dataset: str, root: Path | None = None, seed: int = 0) -> Path:
    """``<cache>/checkpoints/<dataset>/<model>-<preset>.ckpt`` (``-seed<N>`` before ``.ckpt`` for training seed N
    > 0); the cache is $TRILEMMA_BENCH_CACHE."""
    base = Path(root) if root is not None else sub_cache("checkpoints")
    return base / dataset / f"{model}-{preset}{f'-seed{seed}' if seed else ''}.ckpt"


def _canonical(config: dict[str, Any]) -> dict[str, Any]:
    # Tuples and lists compare equal once both went through JSON, as they do after a checkpoint round trip.
    return json.loads(json.dumps(config, sort_keys=True))


def check_checkpoint(path: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """Read the checkpoint's stored training config and refuse it unless it equals `expected`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        stored = ckpt["hyper_parameters"]["training_config"]
    except Exception as err:  # noqa: BLE001 - any failure to read means the file is unusable
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a trilemma-bench checkpoint ({type(err).__name__}: {err}). "
            "Delete it, or pass --retrain to train a new one."
        ) from None
    want, have = _canonical(expected), _canonical(stored or {})
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        details = "; ".join(f"{k}: checkpoint has {have.get(k)!r}, asked for {want.get(k)!r}" for k in diff)
        raise CheckpointError(
            f"checkpoint {path} was trained under another configuration ({details}). "
            "It is never used silently: delete it, pass --retrain, or ask for the configuration it was made with."
        )
    return ckpt


def load_checkpoint(cls: type[L.LightningModule], path: Path, expected: dict[str, Any]) -> L.LightningModule:
    check_checkpoint(path, expected)
    model = cls.load_from_checkpoint(path, map_location="cpu")
    return model.eval()
