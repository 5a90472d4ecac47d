"""Cached reference features and statistics: computed once, keyed by everything that changes them,
refused or recomputed when corrupt. Runs on a synthetic stand-in for ``trilemma_bench.data`` and a
temporary cache; never the network or the user's cache."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from trilemma_bench.metrics import reference as ref
from trilemma_bench.metrics._cache import InvalidCacheError
from trilemma_bench.metrics.features import BatchedExtractor, RawExtractor


def _fake_data() -> types.ModuleType:
    mod = types.ModuleType("trilemma_bench.data")
    mod.DATASETS = {"toy2d": types.SimpleNamespace(shape=(2,), num_classes=25, is_image=False)}
    mod.source = "generated"
    mod.loads = 0
    sizes = {"train": 500, "val": 100, "test": 100}

    def load_split(name, split="train", **_):
        assert name == "toy2d"
        mod.loads += 1
        g = torch.Generator().manual_seed(len(split))
        return 3 * torch.randn(sizes[split], 2, generator=g) + 1, torch.zeros(sizes[split], dtype=torch.int64)

    mod.load_split = load_split
    mod.dataset_source = lambda name, **_: mod.source
    return mod


@pytest.fixture
def data(monkeypatch, tmp_path):
    mod = _fake_data()
    monkeypatch.setitem(sys.modules, "trilemma_bench.data", mod)
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path))
    return mod


class Squares(BatchedExtractor):
    """A cheap stand-in with a version and an accuracy, counting how often it runs."""

    images = False
    expected_shape = (2,)

    def __init__(self, version: int = 1) -> None:
        super().__init__("cpu")
        self.name, self.dim, self.accuracy, self.version, self.calls = "squares", 3, 0.9, version, 0

    def _features(self, x):
        self.calls += 1
        return torch.cat([x, (x**2).sum(1, keepdim=True)], 1)

    def fingerprint(self):
        return {"kind": "squares", "version": self.version}


def test_stats_match_direct_computation_and_are_cached(data, tmp_path):
    s = ref.reference_stats("toy2d")  # default extractor for toy2d: raw points
    x, _ = _fake_data().load_split("toy2d", "train")
    assert s["n"] == 500 and s["extractor"] == "raw" and s["accuracy"] is None and s["source"] == "generated"
    torch.testing.assert_close(s["mu"], x.double().mean(0))
    torch.testing.assert_close(s["sigma"], torch.cov(x.double().T))
    assert s["mu"].dtype == torch.float64
    path = Path(s["path"])
    assert path.parent == tmp_path / "reference" and path.name.startswith("toy2d-train-raw-all-")

    loads = data.loads
    f = ref.reference_features("toy2d")
    assert data.loads == loads  # served from the cache: no data loaded, nothing extracted
    assert f.dtype == torch.float32 and torch.equal(f, x)


def test_second_call_does_not_extract(data):
    ext = Squares()
    a = ref.reference_stats("toy2d", "val", ext)
    calls = ext.calls
    b = ref.reference_stats("toy2d", "val", ext)
    assert ext.calls == calls > 0
    assert a["accuracy"] == 0.9 and a["extractor"] == "squares" and a["path"] == b["path"]
    torch.testing.assert_close(a["sigma"], b["sigma"], rtol=0, atol=0)


def test_key_covers_what_changes_the_numbers(data):
    base = ref.reference_stats("toy2d", "train", Squares())["path"]
    paths = {
        "split": ref.reference_stats("toy2d", "test", Squares())["path"],
        "subset": ref.reference_stats("toy2d", "train", Squares(), max_samples=100)["path"],
        "extractor version": ref.reference_stats("toy2d", "train", Squares(version=2))["path"],
        "extractor": ref.reference_stats("toy2d", "train", "raw")["path"],
    }
    data.source = "official release"
    paths["source"] = ref.reference_stats("toy2d", "train", Squares())["path"]
    assert len({base, *paths.values()}) == 1 + len(paths)
    assert "-squares-100-" in paths["subset"]


def test_subset_is_a_seeded_random_draw(data):
    f = ref.reference_features("toy2d", "train", "raw", max_samples=50)
    x, _ = _fake_data().load_split("toy2d", "train")
    idx = torch.randperm(500, generator=torch.Generator().manual_seed(ref.SUBSET_SEED))[:50].sort().values
    assert torch.equal(f, x[idx])
    assert ref.reference_stats("toy2d", "train", "raw", max_samples=50)["n"] == 50
    with pytest.raises(ValueError, match="max_samples"):
        ref.reference_stats("toy2d", max_samples=1)


def test_corrupt_cache_is_recomputed_or_refused(data, caplog):
    s = ref.reference_stats("toy2d", "val", "raw")
    path = Path(s["path"])
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash mid-write
    with pytest.raises(InvalidCacheError, match="unreadable"):
        ref.reference_stats("toy2d", "val", "raw", recompute_if_invalid=False)
    again = ref.reference_stats("toy2d", "val", "raw")
    assert "recomputing" in caplog.text
    torch.testing.assert_close(again["mu"], s["mu"])
    ref.reference_stats("toy2d", "val", "raw", recompute_if_invalid=False)  # the rewritten file is valid


def test_tampered_cache_is_refused(data):
    path = Path(ref.reference_stats("toy2d", "val", "raw")["path"])
    payload = torch.load(path, weights_only=True)
    payload["features"] = payload["features"] + 1  # no longer the features mu was computed from
    torch.save(payload, path)
    with pytest.raises(InvalidCacheError, match="mu is not the mean"):
        ref.reference_features("toy2d", "val", "raw", recompute_if_invalid=False)
    payload["key"] = {**payload["key"], "source": "elsewhere"}  # a file copied in from another setup
    torch.save(payload, path)
    with pytest.raises(InvalidCacheError, match="another configuration"):
        ref.reference_features("toy2d", "val", "raw", recompute_if_invalid=False)


def test_bad_extractor_argument(data):
    with pytest.raises(ValueError, match="kind name, a FeatureExtractor"):
        ref.reference_stats("toy2d", extractor_kind=42)
    assert isinstance(ref.resolve_extractor(None, "toy2d"), RawExtractor)
