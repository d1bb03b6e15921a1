"""Atomic file writing shared by the exporter, the trainer and the adapter store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from textboost_ext.atomic_write import atomic_output, atomic_write_bytes, atomic_write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_bytes_and_text(tmp_path: Path) -> None:
    out = atomic_write_bytes(tmp_path / "sub" / "f.json", b"{}")
    assert out.read_bytes() == b"{}" and _leftovers(out.parent) == []
    assert atomic_write_text(out, "é\n").read_bytes() == "é\n".encode("utf-8")  # replaces the old content
    assert _leftovers(out.parent) == []


def test_failure_keeps_the_previous_file_and_no_temp(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old" and _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_the_umask_like_a_plain_write(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
