"""Reading and writing the cached files of this package (classifiers, reference statistics) safely."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..paths import atomic_path


class InvalidCacheError(RuntimeError):
    """A cached file is unreadable, truncated, or was made for another configuration."""


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file, so a crash or a parallel reader never sees half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_payload(path: Path, what: str) -> dict[str, Any]:
    """Load a cached dict with ``weights_only=True`` (no pickled code runs), or raise InvalidCacheError."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, wrong format, pickled objects: all mean "not ours"
        # torch's own message goes on to suggest weights_only=False: not advice to give about a cache file.
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise InvalidCacheError(
            f"cached {what} {path} is unreadable ({type(err).__name__}: {reason})"
        ) from err
    if not isinstance(payload, dict):
        raise InvalidCacheError(f"cached {what} {path} holds a {type(payload).__name__}, not a dict")
    return payload


def digest_json(obj: Any, length: int = 10) -> str:
    """Short stable hash of a JSON-able object (dict keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def digest_tensors(tensors: dict[str, Tensor]) -> str:
    """SHA-1 over named tensors' bytes: detects a bit flip in cached weights and names a set of weights."""
    h = hashlib.sha1()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous().reshape(-1)
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(tensors[key].shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
