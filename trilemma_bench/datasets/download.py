"""Fetch an official release file once into the cache and verify it against its published checksum."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..paths import atomic_path
from .common import ChecksumMismatch, DatasetUnavailable

USER_AGENT = "trilemma-bench (dataset download)"  # some mirrors answer 403 to urllib's default agent
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file of an official release: where to get it and the checksum its publisher states.

    SHA-256 is preferred where published; MNIST, Fashion-MNIST and CIFAR-10 publish only MD5, which is
    still enough to catch truncated or substituted downloads.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256):
            raise ValueError(f"{self.name}: a remote file needs a published md5 or sha256")

    @property
    def algorithm(self) -> str:
        return "sha256" if self.sha256 else "md5"

    @property
    def expected(self) -> str:
        return (self.sha256 or self.md5 or "").lower()


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# Hashing a 170 MB archive costs ~0.3 s; remember files already verified in this process.
_verified: set[tuple[str, int, int, str]] = set()


def is_verified(path: Path, remote: RemoteFile) -> bool:
    """True if ``path`` exists and matches ``remote``'s checksum; a corrupt file is deleted with a warning
    so that the next fetch downloads it again rather than loading bad data."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, remote.expected)
    if key in _verified:
        return True
    got = file_digest(path, remote.algorithm)
    if got == remote.expected:
        _verified.add(key)
        return True
    warnings.warn(
        f"{path}: {remote.algorithm} {got} does not match the published {remote.expected}; "
        "deleting the corrupt file so it is downloaded again",
        stacklevel=2,
    )
    path.unlink(missing_ok=True)
    return False


class _Rejected(Exception):
    """One mirror's download failed or did not match its checksum: abandon its temporary file, try the next."""

    def __init__(self, message: str, *, corrupt: bool = False) -> None:
        super().__init__(message)
        self.corrupt = corrupt


def fetch(remote: RemoteFile, directory: Path) -> Path:
    """Return ``directory/remote.name``, downloading it first (trying each mirror) unless already verified.

    A download whose checksum differs is deleted and refused; it never replaces a good file.
    """
    path = directory / remote.name
    if is_verified(path, remote):
        return path
    failures: list[str] = []
    mismatches = 0
    for url in remote.urls:
        # Through a temporary file of its own: parallel runs sharing a cache never read a half-written file, and
        # a failed or corrupt download is deleted without ever replacing a good one.
        try:
            with atomic_path(path) as tmp:
                try:
                    got = _download(url, tmp, remote.algorithm)
                except (urllib.error.URLError, OSError, TimeoutError, ValueError) as err:
                    raise _Rejected(f"{url}: {err}") from err
                if got != remote.expected:
                    raise _Rejected(f"{url}: {remote.algorithm} {got} != published {remote.expected} "
                                    "(corrupt or wrong file; deleted)", corrupt=True)
        except _Rejected as err:
            failures.append(str(err))
            mismatches += err.corrupt
            continue
        _verified.add((str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns, remote.expected))
        return path
    detail = "\n  ".join(failures)
    if mismatches == len(remote.urls):
        raise ChecksumMismatch(
            f"refused {remote.name}: every download failed its checksum check:\n  {detail}\n"
            f"Retry, or place a good copy at {path} by hand (check it with {remote.algorithm}sum)."
        )
    raise DatasetUnavailable(f"could not download {remote.name} into {directory}:\n  {detail}")


def _download(url: str, dest: Path, algorithm: str) -> str:
    """Stream ``url`` to ``dest``, hashing on the way; return the hex digest."""
    h = hashlib.new(algorithm)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        while chunk := response.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()
