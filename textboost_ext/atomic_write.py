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

from textboost_ext.faultpoints import pause_point


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise WriteFailedError(path, err) from None
    try:
        yield tmp
        # writers such as safetensors replace the file with a private (0600) one: give it the mode any
        # file we create gets, so a WebUI running as another user can read the LoRA
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        pause_point("atomic-write")  # fault tests: a whole temp file, not yet renamed
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception) and is_write_failure(err):
            raise WriteFailedError(path, err) from None
        raise
    _fsync_directory(path.parent)


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# How a full disk / file-size limit / read-only folder shows up from writers that do not raise OSError
# (safetensors' Rust writer, torch.save's stream writer).
_DISK_WORDS = ("No space left", "File too large", "Disk quota", "Read-only file system", "Permission denied",
               "os error 28", "os error 27", "os error 30", "os error 13", "code: 28", "code: 27", "failed writing",
               "unexpected pos")  # torch.save after a short write


def is_write_failure(err: BaseException) -> bool:
    return isinstance(err, OSError) or any(word in str(err) for word in _DISK_WORDS)


class WriteFailedError(OSError):
    """A file could not be written (disk full, size limit, permissions); the message names it and the fix."""

    def __init__(self, path: str | os.PathLike[str], cause: BaseException) -> None:
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else _short(cause)
        super().__init__(
            f"could not write {path}: {reason}. The disk may be full, a quota or file-size limit reached, or the "
            f"folder not writable: free space or fix the permissions (or choose another output_dir / adapters_dir) "
            f"and run again. Files written before are intact; nothing partial was left under that name."
        )
        self.path = Path(path)


def _short(err: BaseException) -> str:
    text = str(err)
    for word in _DISK_WORDS:
        if word in text:
            return {"os error 28": "No space left on device", "code: 28": "No space left on device",
                    "os error 27": "File too large", "code: 27": "File too large", "os error 30": "Read-only file system",
                    "os error 13": "Permission denied", "failed writing": "the writer failed (disk full?)",
                    "unexpected pos": "File too large or No space left on device (a write came up short)"}.get(word, word)
    return f"{type(err).__name__}: {text[:200]}"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
