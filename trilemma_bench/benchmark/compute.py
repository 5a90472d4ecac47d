"""Training compute (``train_gflops``) of a row's weights, and its recount for rows benched before a model's
count changed (latent models' encoder passes and autoencoder training, DDGAN's discriminator): the count needs
only the row's per-call network FLOPs, its training steps and the preset, not the weights or a new bench."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..methods import get_method
from ..presets import Preset


def training_gflops(pretrain: float, passes: float, forward_gflops: float, batch: int, steps: float) -> float:
    """Prerequisites' training + ``passes`` x the sampled network's forward GFLOPs per example x batch x steps."""
    return pretrain + passes * forward_gflops * batch * steps


def model_count(method: str, nfe: int, preset: Preset) -> tuple[float, float, int]:
    """(pretrain GFLOPs, passes, batch) of the model ``method`` samples from at ``nfe`` under ``preset``, counted on
    an untrained copy (FLOPs do not depend on the weights), prerequisites taken in as training takes them."""
    from ..train import build_model, prerequisites

    spec = get_method(method).spec_for(nfe)
    model = build_model(spec, preset)
    first = {key: build_model(dep, preset) for key, dep in prerequisites(spec, preset).items()}
    if first:
        model.use_prerequisites(first)
    return model.pretrain_gflops, float(model.train_passes), preset.train_config(spec.name).batch_size


def recount(rows: pd.DataFrame, presets: Mapping[str, Preset]) -> pd.DataFrame:
    """``rows`` with ``train_gflops`` counted as a bench now counts it, for every row that has training steps and
    network FLOPs (real-data rows and rows of unknown methods or presets are left as they are)."""
    out = rows.copy()
    counts: dict[tuple[Any, ...], tuple[float, float, int]] = {}
    for i, row in rows.iterrows():
        steps, gflops, nfe = row.get("train_steps"), row.get("gflops_per_image"), row.get("nfe")
        if row.get("preset") not in presets or not all(_finite(v) for v in (steps, gflops, nfe)) or not nfe:
            continue
        try:
            get_method(str(row["method"]))
        except (KeyError, ValueError):
            continue
        key = (row["method"], int(nfe), row["preset"])
        if key not in counts:
            counts[key] = model_count(str(row["method"]), int(nfe), presets[row["preset"]])
        pretrain, passes, batch = counts[key]
        out.at[i, "train_gflops"] = training_gflops(pretrain, passes, float(gflops) / float(nfe), batch, float(steps))
    return out


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
