"""Your own sampler without editing the package: registered in code, or declared by an installed package's entry
point; the bench runs it like a built-in method, and a bad plugin gets a message naming it."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from trilemma_bench.methods import METHODS, MODELS, Method, get_method, plugins, register_method
from trilemma_bench.methods.plugins import METHOD_GROUP, MODEL_GROUP, load_plugins

PLUGIN = '''
from trilemma_bench.methods import get_method
from trilemma_bench.methods.base import Method

_ddim = get_method("ddim")
METHODS = [Method("plugin-ddim", "ddpm", "plugin-ddim-sampler", _ddim.sample_fn, (2, 5), "DDIM under another name")]
NOT_A_METHOD = "oops"
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_plugin"
    sys.modules.pop("my_plugin", None)


def _entry_points(methods: list[EntryPoint], models: list[EntryPoint] = ()):
    return lambda group: {METHOD_GROUP: methods, MODEL_GROUP: list(models)}[group]


def test_an_entry_point_plugin_adds_its_methods(plugin_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points", _entry_points(
        [EntryPoint("plugin-ddim", f"{plugin_module}:METHODS", METHOD_GROUP)]))
    methods, models = dict(METHODS), dict(MODELS)
    assert load_plugins(methods, models) == ["plugin-ddim"] and "plugin-ddim" in methods
    assert "plugin-ddim" not in METHODS  # the registry given was a copy


def test_a_bad_plugin_is_named_in_one_message(plugin_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in ((f"{plugin_module}:NOT_A_METHOD", "must be a trilemma_bench Method"),
                            (f"{plugin_module}:MISSING", "MISSING"), ("no_such_module:X", "no_such_module")):
        monkeypatch.setattr(plugins, "entry_points", _entry_points([EntryPoint("bad", value, METHOD_GROUP)]))
        with pytest.raises(ValueError, match=f"plugin method 'bad' .*{expected}"):
            load_plugins(dict(METHODS), dict(MODELS))
    monkeypatch.setattr(plugins, "entry_points", _entry_points([], [EntryPoint("m", "builtins:dict", MODEL_GROUP)]))
    with pytest.raises(ValueError, match="plugin model 'm' .*model contract"):
        load_plugins(dict(METHODS), dict(MODELS))


def test_a_registered_sampler_is_benched_like_a_built_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trilemma_bench as tb

    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    ddim = get_method("ddim")
    mine = Method("my-ddim", "ddpm", "my-ddim-sampler", ddim.sample_fn, (2, 5), "DDIM, registered by a user")
    with pytest.raises(ValueError, match="exists already"):
        register_method(Method("ddim", "ddpm", "x", ddim.sample_fn, (2,), "a clash"))
    with pytest.raises(ValueError, match="not registered"):
        register_method(Method("orphan", "no-such-model", "x", ddim.sample_fn, (2,), "no model"))
    register_method(mine)
    try:
        rows = tb.bench("my-ddim", preset="smoke", steps=20, nfe=[2, 5], num_samples=64, batch_size=32, threads=1,
                        device="cpu", results=tmp_path / "results")
        reference = tb.bench("ddim", preset="smoke", steps=20, nfe=[2, 5], num_samples=64, batch_size=32, threads=1,
                             device="cpu", results=tmp_path / "results")
    finally:
        METHODS.pop("my-ddim")
    assert set(rows["method"]) == {"my-ddim"} and set(rows["sampler"]) == {"my-ddim-sampler"}
    assert list(rows["nfe"]) == [2, 5]  # counted calls
    assert rows["fid"].tolist() == pytest.approx(reference["fid"].tolist(), rel=1e-12)  # the same sampler
