"""The one atomic-write helper: a target is only ever seen whole, old or new."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trilemma_bench.paths import atomic_path


def test_successful_write_replaces_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target  # same folder: os.replace stays atomic
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # nothing shows before the block ends
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_writer_failing_midway_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "weights.pt"
    target.write_bytes(b"complete old file")

    def write_half(path: Path) -> None:
        with open(path, "wb") as f:
            f.write(b"half of a ne")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        write_half(tmp)
    assert target.read_bytes() == b"complete old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_interrupt_leaves_no_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "x.npy"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:  # BaseException too: Ctrl-C mid-write
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # parents are created, the temporary is gone


def test_temporaries_are_unique_and_hidden(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    with atomic_path(target) as one, atomic_path(target) as two:  # two writers of one file at once
        assert one != two and one.name.startswith(".") and two.name.startswith(".")
        one.write_bytes(b"1")
        two.write_bytes(b"2")
    assert target.read_bytes() == b"1"  # the last to finish wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_written_file_has_ordinary_permissions(tmp_path: Path) -> None:
    # Not mkstemp's 0600: a cache shared between users must stay readable by them.
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_atomic_save_goes_through_the_helper(tmp_path: Path) -> None:
    import torch

    from trilemma_bench.metrics._cache import atomic_save

    path = tmp_path / "sub" / "payload.pt"
    atomic_save({"a": torch.arange(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["payload.pt"]
