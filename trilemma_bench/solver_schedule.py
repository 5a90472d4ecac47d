"""Schedule apart from solver (k-diffusion's ``sampler(model, x, sigmas)`` in spirit): a schedule gives the times for
a number of steps, a solver walks them. Any solver runs on any schedule; each solver has the schedule its reference
pairs it with. A user's own is ``module:function`` (see :func:`resolve_solver`, :func:`resolve_schedule`).

A schedule is ``schedule(model, steps) -> times``: ``steps + 1`` index times of ``model`` (a Denoiser), noisiest
first, ``None`` for the data itself (sigma = 0). A solver is ``walk(model, x, times) -> x_0`` with the number of steps
an NFE budget buys (one call per step, Heun two but the last).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import Tensor

from . import samplers
from .denoisers import Denoiser
from .samplers import Times

Schedule = Callable[[Denoiser, int], Times]
Walk = Callable[[Denoiser, Tensor, Times], Tensor]


def _one_per_step(nfe: int) -> int:
    if nfe < 1:
        raise ValueError(f"a solver needs at least one step, got nfe={nfe}")
    return nfe


def _heun_steps(nfe: int) -> int:
    if nfe < 3 or nfe % 2 == 0:
        raise ValueError(f"Heun makes 2N - 1 network calls for N steps (N >= 2): ask for an odd NFE of at least 3, "
                         f"got {nfe}")
    return (nfe + 1) // 2


@dataclass(frozen=True)
class Solver:
    """How a solver walks a schedule's times, and how many steps an NFE budget buys."""

    walk: Walk
    steps: Callable[[int], int] = field(default=_one_per_step)
    default_schedule: str = "uniform"


def uniform(model: Denoiser, steps: int) -> Times:
    """DDIM's: its code's timesteps strided T // steps apart, then the data."""
    return samplers.uniform_times(model.num_steps, steps)


def linspace(model: Denoiser, steps: int) -> Times:
    """diffusers' 'linspace' spacing from T - 1, then sigma 0 (DPMSolverMultistepScheduler's default)."""
    return [*map(float, samplers.dpmpp_2m_timesteps(model.num_steps, steps)), None]


def logsnr(model: Denoiser, steps: int) -> Times:
    """The official DPM-Solver's 'logSNR': lambda uniform from the grid's last time to its first (t = 1/K)."""
    return samplers.logsnr_times(model, steps)


def edm(model: Denoiser, steps: int) -> Times:
    """Karras et al. 2022, Eq. 5 (rho = 7, sigma 0.002..80 clamped to the network's range), then sigma 0; a
    discrete-time network is evaluated at the nearest grid time of each level (iDDPMPrecond)."""
    return samplers.edm_sigmas(model, steps, snap=model.discrete)[1]


SCHEDULES: dict[str, Schedule] = {"uniform": uniform, "linspace": linspace, "logsnr": logsnr, "edm": edm}
SOLVERS: dict[str, Solver] = {
    "ddim": Solver(samplers.ddim_walk, default_schedule="uniform"),
    "dpmpp-2m": Solver(partial(samplers.dpmpp_walk, order=2), default_schedule="linspace"),
    "dpmpp-3m": Solver(partial(samplers.dpmpp_walk, order=3), default_schedule="logsnr"),
    "heun": Solver(samplers.heun_walk, steps=_heun_steps, default_schedule="edm"),
}


def import_object(ref: str, what: str) -> Any:
    """``module:attribute`` -> the object, or a one-line ValueError saying what was expected."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {ref!r}: expected a name or module:attribute (e.g. my_package.samplers:my_walk)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{what} {ref!r}: cannot import module {module_name!r} ({err}); is it installed, or on "
                         "PYTHONPATH?") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ValueError(f"{what} {ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _refuse(message: str) -> None:
    """Bad input, even of the wrong type: a ValueError, which the command line prints as one line."""
    raise ValueError(message)


def _check_signature(fn: Callable[..., Any], ref: str, what: str, expected: str, args: int) -> None:
    try:
        inspect.signature(fn).bind(*range(args))
    except TypeError:
        raise ValueError(f"{what} {ref!r}: expected a function {expected}") from None
    except ValueError:
        pass  # a builtin without a signature: its first call will tell


def _name_of(fn: Any) -> str:
    inner = fn.func if isinstance(fn, partial) else fn
    return f"{getattr(inner, '__module__', '?')}:{getattr(inner, '__qualname__', type(inner).__name__)}"


def resolve_solver(ref: str | Walk | Solver) -> tuple[str, Solver]:
    """A solver by name (:data:`SOLVERS`), ``module:attribute``, or (from Python) the object itself: a
    :class:`Solver`, or a walk function ``walk(model, x, times)`` making one network call per step."""
    if isinstance(ref, str) and ref in SOLVERS:
        return ref, SOLVERS[ref]
    if isinstance(ref, str) and ":" not in ref:
        raise ValueError(f"unknown solver {ref!r}: choose one of {', '.join(SOLVERS)}, or give module:function")
    obj = import_object(ref, "--solver") if isinstance(ref, str) else ref
    ref = ref if isinstance(ref, str) else _name_of(obj.walk if isinstance(obj, Solver) else obj)
    if isinstance(obj, Solver):
        return ref, obj
    if not callable(obj):
        _refuse(f"--solver {ref!r}: expected a function walk(model, x, times) or a Solver, got {type(obj).__name__}")
    _check_signature(obj, ref, "--solver", "walk(model, x, times) -> x_0", 3)
    return ref, Solver(obj)


def resolve_schedule(ref: str | Schedule) -> tuple[str, Schedule]:
    """A schedule by name (:data:`SCHEDULES`), ``module:function`` or (from Python) the function itself:
    ``schedule(model, steps) -> times``."""
    if isinstance(ref, str) and ref in SCHEDULES:
        return ref, SCHEDULES[ref]
    if isinstance(ref, str) and ":" not in ref:
        raise ValueError(f"unknown schedule {ref!r}: choose one of {', '.join(SCHEDULES)}, or give module:function")
    obj = import_object(ref, "--schedule") if isinstance(ref, str) else ref
    ref = ref if isinstance(ref, str) else _name_of(obj)
    if not callable(obj):
        _refuse(f"--schedule {ref!r}: expected a function schedule(model, steps) -> times, got {type(obj).__name__}")
    _check_signature(obj, ref, "--schedule", "schedule(model, steps) -> times", 2)
    return ref, obj


def check_times(times: Sequence[float | None], model: Denoiser, schedule: str) -> list[float | None]:
    """A schedule's output as the solvers need it, or a ValueError naming what is wrong. Its length is not checked
    against the steps asked for: DDIM's stride gives one more where T // steps does not divide T, as its code does,
    and the bench counts the calls that result."""
    times = list(times)
    if len(times) < 2:
        raise ValueError(f"schedule {schedule!r} gave {len(times)} times: a walk needs at least 2 (steps + 1)")
    if any(t is None for t in times[:-1]):
        raise ValueError(f"schedule {schedule!r}: only the last time may be None (the data, sigma = 0)")
    values = [float(t) for t in times if t is not None]
    if any(not 0 <= t <= model.num_steps - 1 for t in values):
        raise ValueError(f"schedule {schedule!r}: times must lie in the index grid [0, {model.num_steps - 1}], "
                         f"got {min(values):g}..{max(values):g}")
    if any(b >= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"schedule {schedule!r}: times must decrease (noisiest first), got {values}")
    return times
