"""Write a file so that its final path only ever holds a whole file (stdlib only).

Every file the package writes for users (LoRA and embedding files, sidecars, model cards, sample
images and their index, the saved config) goes through ``atomic_output``: the content is written to a
hidden temp file in the same folder (same file system, so the rename is atomic), fsynced, then
``os.replace``d over the target. A crash or an exception leaves the previous file (or none) and no
temp file; a WebUI scanning the folder never picks up a half-written LoRA.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not supported (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for the caller to write; on success it replaces ``path``.

    The temp name starts with a dot and ends in ``.tmp`` (WebUIs and the adapter store skip it) and is
    created with the permissions a plain ``open(path, "w")`` would give (umask applies).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
