"""A network of your own on the bench (``--model``): ``module:factory`` returning a model that keeps the contract, or
``diffusers:PATH``, a local diffusers checkpoint folder. It is never trained here: its rows name its weights' digest
and where they came from (``external``, or ``diffusers``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..solver_schedule import import_object
from ..weights import ShipsWeights

DIFFUSERS = "diffusers:"


def _refuse(message: str) -> None:
    """Bad input, even of the wrong type: a ValueError, which the command line prints as one line."""
    raise ValueError(message)


def _check_shape(model: ShipsWeights, ref: str, image_shape: tuple[int, ...]) -> None:
    shape = tuple(model.sample_shape or image_shape)
    if shape != tuple(image_shape):
        raise ValueError(f"--model {ref}: its samples have shape {shape}, but the dataset's images are "
                         f"{tuple(image_shape)}: the model was made for another image size (pick the matching "
                         "--preset/--dataset)")


def load_model(ref: str, image_shape: tuple[int, ...]) -> tuple[str, nn.Module]:
    """(label for rows, model) of ``--model``; a one-line ValueError saying what was expected otherwise."""
    if ref.startswith(DIFFUSERS):
        from .diffusers_model import load_diffusers_dir

        path = Path(ref[len(DIFFUSERS):])
        model = load_diffusers_dir(path, image_shape=tuple(image_shape))
        label = f"diffusers-{path.resolve().name}"
    elif ":" in ref:
        factory = import_object(ref, "--model")
        if not callable(factory):
            raise ValueError(f"--model {ref}: expected a factory function returning the model, got "
                             f"{type(factory).__name__}")
        try:
            model = factory()
        except TypeError as err:
            raise ValueError(f"--model {ref}: expected a factory callable with no arguments ({err})") from None
        label = ref.rpartition(":")[2]
    else:
        raise ValueError(f"--model {ref!r}: expected module:factory (a function returning your model) or "
                         "diffusers:PATH (a local diffusers checkpoint folder)")
    if not (isinstance(model, nn.Module) and isinstance(model, ShipsWeights)):
        _refuse(f"--model {ref}: the factory returned {type(model).__name__}; expected an nn.Module keeping the "
                "model contract (a subclass of trilemma_bench.weights.ShipsWeights with denoiser() and as_denoiser())")
    _check_shape(model, ref, image_shape)
    if model.weights_source == "untrained":  # the contract's default: say where these weights came from instead
        model.weights_source = "external"
    return label, model
