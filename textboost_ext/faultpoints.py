"""Test-only pause points inside save windows (stdlib only).

The fault-injection tests kill a training run with SIGKILL at exact moments: between writing the LoRA
and its embedding, inside a state save, between the two renames of an overwrite. A test sets
``TEXTBOOST_PAUSE_AT=<point>`` and ``TEXTBOOST_PAUSE_FILE=<path>``; when the run reaches that point it
creates the file and sleeps, and the test kills it; ``<point>#N`` pauses at its N-th pass. Without the
variables a pause point is one dict lookup. Not a user feature: the names may change with the code.
"""

from __future__ import annotations

import os
import time

PAUSE_AT_ENV = "TEXTBOOST_PAUSE_AT"
PAUSE_FILE_ENV = "TEXTBOOST_PAUSE_FILE"


_passes: dict[str, int] = {}


def pause_point(name: str) -> None:
    """Sleep (for the test to kill us) when ``$TEXTBOOST_PAUSE_AT`` names this point."""
    wanted = os.environ.get(PAUSE_AT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("#")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] != int(nth or 1):
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        with open(marker, "a", encoding="utf-8") as handle:
            handle.write(f"{name} {os.getpid()}\n")
    time.sleep(600)
