"""Where trilemma-bench keeps what it downloads, trains and measures, and how it writes a file there (whole)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# The committed reference results, written only when their maintainer asks (``--results results``), and where a
# user's runs go by default: git-ignored, so a bench never changes the published rows.
REFERENCE_DIR = Path("results")
LOCAL_DIR = Path("results/local")


def cache_dir() -> Path:
    """Root of the cache: datasets, checkpoints, feature extractors, reference statistics.

    ``$TRILEMMA_BENCH_CACHE`` overrides the default ``~/.cache/trilemma-bench``.
    """
    root = os.environ.get("TRILEMMA_BENCH_CACHE") or Path.home() / ".cache" / "trilemma-bench"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub_cache(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` to write to; when the block ends without an error it replaces
    ``path`` in one step (``os.replace``), else it is deleted. A reader, a parallel run or a crash at any point
    sees either the old file or the whole new one, never half of it. ``path``'s folder is created if missing.

    The temporary file is in the same folder because ``os.replace`` is atomic only within one file system, and
    hidden (leading dot, ``.tmp`` suffix) so globs for the real files never pick it up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _reserve_temp(path: Path) -> Path:
    # O_EXCL reserves a name no other process holds. Not tempfile.mkstemp: its files are mode 0600, which would
    # make a cache shared between users unreadable to all but its writer; os.open's 0o666 goes through the umask
    # like any ordinary file.
    while True:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
