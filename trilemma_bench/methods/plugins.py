"""Your own sampler or model, without editing the package: register it, or ship it as an installed plugin.

In code::

    from trilemma_bench.methods import Method, register_method
    register_method(Method("my-ddim", "ddpm", "my-ddim-sampler", my_sample_fn, (5, 10), "what it is"))

``my_sample_fn(net, model, x_T, nfe, noise)`` returns samples, calling ``net`` exactly ``nfe`` times (the bench
counts). An installed package can declare the same in its ``pyproject.toml``::

    [project.entry-points."trilemma_bench.methods"]
    my-ddim = "my_package.samplers:METHODS"     # a Method or a list of them

    [project.entry-points."trilemma_bench.models"]
    my-net = "my_package.models:MyModel"         # a LightningModule class keeping the model contract

and ``trilemma-bench bench --method my-ddim`` finds it. A plugin may add names, never replace the package's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

import lightning as L

from .base import Method

METHOD_GROUP = "trilemma_bench.methods"
MODEL_GROUP = "trilemma_bench.models"


def register_method(method: Method, methods: dict[str, Method], models: dict[str, type[L.LightningModule]]) -> None:
    """Add ``method`` to ``methods``; its model must be registered. Refuses a name already taken."""
    if not isinstance(method, Method):
        raise TypeError(f"a plugin method must be a trilemma_bench Method, got {type(method).__name__}")
    if method.name in methods:
        raise ValueError(f"method {method.name!r} exists already: a plugin adds names, it does not replace them")
    if method.model not in models:
        raise ValueError(f"method {method.name!r} samples from model {method.model!r}, which is not registered "
                         f"(models: {', '.join(sorted(models))})")
    methods[method.name] = method


def register_model(name: str, cls: type[L.LightningModule], models: dict[str, type[L.LightningModule]]) -> None:
    from ..weights import ShipsWeights

    if name in models:
        raise ValueError(f"model {name!r} exists already: a plugin adds names, it does not replace them")
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule) and issubclass(cls, ShipsWeights)):
        raise TypeError(f"plugin model {name!r} must be a LightningModule keeping the model contract "
                        "(a subclass of trilemma_bench.weights.ShipsWeights)")
    models[name] = cls


def load_plugins(methods: dict[str, Method], models: dict[str, type[L.LightningModule]]) -> list[str]:
    """Register every installed plugin's models, then methods; returns the names added. A plugin that fails to
    load is reported by name with its error, not by a stack trace from inside the registry."""
    added = []
    for ep in entry_points(group=MODEL_GROUP):
        try:
            register_model(ep.name, ep.load(), models)
        except Exception as err:  # noqa: BLE001 - any failure of someone else's package is reported as such
            raise ValueError(f"plugin model {ep.name!r} ({ep.value}) could not be registered: {err}") from None
        added.append(ep.name)
    for ep in entry_points(group=METHOD_GROUP):
        try:
            found = ep.load()
            for method in found if isinstance(found, Iterable) else [found]:
                register_method(method, methods, models)
                added.append(method.name)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"plugin method {ep.name!r} ({ep.value}) could not be registered: {err}") from None
    return added
