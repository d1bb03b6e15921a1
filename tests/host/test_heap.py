"""The embedded trainer's heap setting: glibc maps blocks from 4 MiB up and keeps smaller ones in the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from textboost_ext.host.heap import _glibc, bound_heap_growth

# A fresh interpreter per case (the setting is process-wide): malloc a block, report whether glibc mapped it
# (mallinfo2's hblkhd: bytes in mmapped blocks), free it.
PROBE = """
import ctypes, sys
from textboost_ext.host.heap import _glibc, bound_heap_growth
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = _glibc()
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "bounded":
    assert bound_heap_growth(environ={}) is not None
mapped = []
for mib in (3, 5):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(mib * 2**20)
    mapped.append(libc.mallinfo2().hblkhd > before)
    libc.free(ctypes.c_void_p(block))
print(mapped)
"""

needs_glibc = pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"),
                                 reason="glibc >= 2.33 only (mallinfo2); elsewhere the setting is a no-op")


def _mapped(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_glibc
def test_blocks_under_the_threshold_stay_in_the_heap_and_larger_ones_are_mapped() -> None:
    assert _mapped("default") == "[True, True]"  # glibc's own start: everything from 128 KiB is mapped
    assert _mapped("bounded") == "[False, True]"


def test_the_users_own_malloc_settings_win() -> None:
    assert bound_heap_growth(environ={"MALLOC_ARENA_MAX": "2"}) is None
