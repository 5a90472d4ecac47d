"""The IDX file format of the MNIST and Fashion-MNIST releases (LeCun et al.), plain or gzipped.

Layout: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{name}: IDX header says {shape} ({expected} bytes) but the file has {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    """Read an ``.idx`` / ``-ubyte`` file, gunzipping it first when it is gzipped."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse_idx(raw, name=str(path))
